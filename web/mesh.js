// Data-parallel training over several workers, each running Pyodide and pycnn.
//
// The page's own worker (the "first" one: it holds MNIST, evaluates the test
// set and keeps the model used for drawing) plus extra workers started ahead
// of time. For a run of K workers the page links every pair of workers with a
// MessageChannel, the first worker hands every other one its shard of the
// training set and its starting weights, and then each worker runs the same
// steps on its own (trainShard below): compute the gradient of its part of the
// global batch, send it to every other worker as a transferred byte array,
// wait for theirs, and take the optimizer step with all of them, added up in
// shard order by pycnn (pycnn.web.apply_gradients), so the replicas stay
// bit-identical. The page is not on a step's path: it only sets a run up,
// passes Stop to the first worker and watches for workers that fail. The batch
// schedule itself is pycnn's (pycnn/parallel.py). If an extra worker fails to
// start, dies or falls silent, the first one goes on alone on the same
// schedule (pycnn.web.go_solo), and the page says so.

export const SILENCE_TIMEOUT_MS = 60_000; // the first worker waits this long for another's gradients
const START_TIMEOUT_MS = 90_000; // an extra worker whose Python has not started by then counts as failed

// ---------------------------------------------------------------- in each worker

// Why a step's exchange ended without the other workers' parts.
export class MeshBroken extends Error {
  constructor(message, { stop = false, fromPage = false } = {}) {
    super(message);
    this.stop = stop; // the run was stopped (Stop, or the first worker said so)
    this.fromPage = fromPage; // the page broke the mesh: it already knows why
  }
}

// This worker's links to the other workers of a run: ports[k] is a MessagePort
// to shard k's worker (null at this worker's own shard). exchange() is the all-reduce's
// only communication: every worker sends its part to every other one.
export class Mesh {
  constructor(shard, ports, timeoutMs = 0) {
    this.shard = shard;
    this.ports = ports;
    this.timeoutMs = timeoutMs;
    this.inbox = new Map(); // step -> parts received so far, by shard
    this.waiter = null;
    this.broken = null;
    ports.forEach((port, k) => {
      if (port) port.onmessage = (event) => this.receive(k, event.data);
    });
  }

  receive(from, msg) {
    if (msg.stop) {
      this.interrupt(new MeshBroken("the run was stopped", { stop: true }));
      return;
    }
    if (!this.inbox.has(msg.step)) this.inbox.set(msg.step, []);
    this.inbox.get(msg.step)[from] = msg;
    this.waiter?.check();
  }

  // Send this worker's part of `step` ({grads: Uint8Array, count, loss, correct, ms})
  // to every other worker; resolves to every worker's part in shard order (this
  // one's included, without its grads: they stay in Python). Rejects with MeshBroken.
  exchange(step, part) {
    if (this.broken) return Promise.reject(this.broken);
    const { grads, ...stats } = part;
    const others = this.ports.map((port, k) => (port ? k : -1)).filter((k) => k >= 0);
    others.forEach((k, i) => {
      // The last receiver gets the array itself; the others a copy each.
      const bytes = i === others.length - 1 ? grads : grads.slice();
      this.ports[k].postMessage({ step, ...stats, grads: bytes }, [bytes.buffer]);
    });
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const got = this.inbox.get(step) || [];
          if (others.some((k) => !got[k])) return;
          this.inbox.delete(step);
          this.done(waiter);
          got[this.shard] = { ...stats, grads: null };
          resolve(got);
        },
        fail: (error) => {
          this.done(waiter);
          reject(error);
        },
        timer: this.timeoutMs ? setTimeout(() => {
          const got = this.inbox.get(step) || [];
          const silent = others.filter((k) => !got[k]).map((k) => k + 1);
          this.interrupt(new MeshBroken(`worker ${silent.join(" and ")} sent nothing for ${this.timeoutMs / 1000} s`));
        }, this.timeoutMs) : null,
      };
      this.waiter = waiter;
      waiter.check();
    });
  }

  done(waiter) {
    clearTimeout(waiter.timer);
    if (this.waiter === waiter) this.waiter = null;
  }

  // End the run for the other workers too, at this step.
  announceStop() {
    for (const port of this.ports) port?.postMessage({ stop: true });
  }

  // No more exchanges: the waiting one and every later one reject with `error`.
  interrupt(error) {
    this.broken = this.broken || error;
    this.waiter?.fail(this.broken);
  }

  close() {
    this.interrupt(new MeshBroken("the run is over", { stop: true }));
    for (const port of this.ports) port?.close();
  }
}

// One worker's side of a data-parallel run: steps until the run ends. `py` is
// the worker's bridge to pycnn.web: compute() -> part {grads, count, loss,
// correct}; apply(stats, grads) -> slice (train_slice's reply for the step);
// settle(slice) -> the slice after the epoch's test evaluation, if one is due
// (or {stopped: true}); stopRequested() (the first worker only); stop() ->
// pycnn.web.stop()'s reply; solo(error) when the other workers are gone;
// idle() once a step, while the others compute; stats(figures) after each
// step. `mesh` is null once the worker is alone.
// Resolves {reason: "done" | "diverged" | "stopped", slice | stopped reply}.
export async function trainShard(mesh, py) {
  const figures = { steps: 0, busy: 0, wall: 0, wait: 0 };
  const stopped = () => {
    if (py.stopRequested()) mesh?.announceStop(); // Stop reached this worker (the first): tell the others
    mesh?.close();
    return { reason: "stopped", ...py.stop() };
  };
  for (let step = 0; ; step++) {
    if (py.stopRequested()) return stopped();
    const t0 = performance.now();
    const part = py.compute();
    const t1 = performance.now();
    let parts = [{ ...part, grads: null }];
    if (!mesh) py.idle();
    else {
      try {
        const exchanged = mesh.exchange(step, { ...part, ms: t1 - t0 });
        py.idle(); // while the other workers finish their parts
        parts = await exchanged;
      } catch (err) {
        if (!(err instanceof MeshBroken)) throw err;
        if (err.stop) return stopped();
        mesh.close();
        mesh = null;
        py.solo(err);
        step--; // the first worker computes this step again, over the whole global batch
        continue;
      }
    }
    const t2 = performance.now();
    let slice = py.apply(parts.map(({ count, loss, correct }) => ({ count, loss, correct })), parts.map((p) => p.grads));
    const t3 = performance.now();
    if (slice.evaluating && !slice.done) {
      slice = await py.settle(slice);
      if (slice.stopped) return stopped();
    } else {
      // Busy time: every worker's compute (they report theirs) plus one update.
      figures.steps++;
      figures.busy += parts.reduce((sum, p) => sum + (p.ms ?? t1 - t0), 0) + (t3 - t2);
      figures.wall += t3 - t0;
      figures.wait += t2 - t1;
      py.stats({ workers: parts.length, speedup: figures.busy / figures.wall, waitMs: figures.wait / figures.steps,
        stepMs: figures.wall / figures.steps });
    }
    if (slice.done) {
      mesh?.close();
      return { reason: slice.diverged ? "diverged" : "done", slice };
    }
  }
}

// ---------------------------------------------------------------- in the page

// One extra worker: requests {id, type, ...args} get exactly one reply, as with the first worker.
class Peer {
  constructor(url, name) {
    this.pending = new Map();
    this.nextId = 1;
    this.dead = null;
    this.worker = new Worker(url, { type: "module", name }); // the name shows in the browser's devtools
    this.worker.onmessage = (event) => {
      const msg = event.data;
      const waiter = msg.id === undefined ? null : this.pending.get(msg.id);
      if (!waiter) return; // progress reports of extra workers are not shown
      this.pending.delete(msg.id);
      clearTimeout(waiter.timer);
      if ("error" in msg) waiter.reject(new Error(msg.error));
      else waiter.resolve(msg.result);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.fail(new Error(event.message || "the worker stopped"));
    };
    this.worker.onmessageerror = () => this.fail(new Error("a message from the worker could not be read"));
  }

  call(type, args = {}, transfer = [], timeoutMs = 0) {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = timeoutMs ? setTimeout(() => this.fail(new Error(`no reply within ${timeoutMs / 1000} s`)), timeoutMs) : null;
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, type, ...args }, transfer);
    });
  }

  fail(error) {
    this.dead = this.dead || error;
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.pending.clear();
  }

  terminate() {
    this.worker.terminate();
    this.fail(new Error("the worker was closed"));
  }
}

// A MessageChannel between every pair of K workers: links[k][j] is worker k's port to worker j.
export function meshPorts(count) {
  const links = Array.from({ length: count }, () => Array(count).fill(null));
  for (let k = 0; k < count; k++) {
    for (let j = k + 1; j < count; j++) {
      const channel = new MessageChannel();
      links[k][j] = channel.port1;
      links[j][k] = channel.port2;
    }
  }
  return links;
}

export class WorkerPool {
  // callFirst(type, args, transfer) sends a request to the page's own worker.
  constructor(callFirst, url) {
    this.callFirst = callFirst;
    this.url = url;
    this.extras = []; // {peer, ready: Promise<Peer>}
    this.stopRequested = false;
    this.run = null; // the running run: {peers, hooks, solo}
  }

  // Keep `count` extra workers started (each loads Pyodide: about 4 s, and over 100 MB).
  resize(count) {
    while (this.extras.length > count) this.extras.pop().peer.terminate();
    while (this.extras.length < count) {
      const peer = new Peer(this.url, `pycnn worker ${this.extras.length + 2}`);
      const ready = peer.call("init_replica", {}, [], START_TIMEOUT_MS).then(() => peer);
      ready.catch(() => {}); // reported when a run needs it
      this.extras.push({ peer, ready });
    }
  }

  drop(peer) {
    peer.terminate();
    this.extras = this.extras.filter((e) => e.peer !== peer);
  }

  stop() {
    this.stopRequested = true;
    return this.callFirst("stop"); // heard by the first worker between steps and evaluation chunks
  }

  // Train with the first worker and every extra one, once they have started. hooks:
  // note(text) for fallbacks. Resolves like the first worker's "train" request:
  // {reason, message, model} or {reason: "stopped", kept, model}.
  async train(config, hooks) {
    this.stopRequested = false;
    const notes = [];
    const peers = [];
    for (const [i, extra] of [...this.extras].entries()) {
      try {
        const peer = await extra.ready;
        if (peer.dead) throw peer.dead; // it stopped while the page was idle
        peers.push(peer);
      } catch (err) {
        notes.push(`worker ${i + 2} could not start (${err.message})`);
        this.drop(extra.peer);
      }
    }
    if (notes.length) hooks.note(`${notes.join("; ")}: training with ${peers.length + 1} worker${peers.length ? "s" : ""}.`);
    if (this.stopRequested) return { reason: "stopped", kept: false, model: null };
    if (!peers.length) return this.callFirst("train", { config });
    this.run = { peers, hooks, solo: false };
    let result = null;
    try {
      result = await this.runWith(config, peers);
      return result;
    } finally {
      // A run that ended by itself (done or diverged) ended on every worker at the same step.
      const ended = result && result.reason !== "stopped";
      for (const peer of this.run.peers) if (!peer.dead && !ended) peer.call("par_stop").catch(() => {});
      this.run = null;
    }
  }

  async runWith(config, peers) {
    const shards = peers.length + 1;
    const links = meshPorts(shards);
    const ports = (k) => links[k].filter(Boolean);
    await this.callFirst("par_start", { config: { ...config, shards }, ports: links[0] }, ports(0));
    try {
      const params = await this.callFirst("params");
      for (const [i, peer] of peers.entries()) {
        const shard = await this.callFirst("shard_data", { shard: i + 1 });
        const start = { config: { ...config, shards }, ...shard, shard: i + 1, params: params.slice(), ports: links[i + 1] };
        try {
          await peer.call("replica_start", start, [shard.images.buffer, shard.labels.buffer, start.params.buffer, ...ports(i + 1)], SILENCE_TIMEOUT_MS);
        } catch (err) {
          this.lost(peer, err);
          break;
        }
      }
      if (!this.run.solo) for (const peer of peers) peer.call("par_run").catch((err) => this.lost(peer, err));
      return await this.callFirst("par_run");
    } catch (err) {
      this.callFirst("par_stop").catch(() => {}); // the first worker failed: end its run too, if it can
      throw err;
    }
  }

  // An extra worker failed (it died, or its Python raised) during a run: close
  // it, end the others' runs, and let the first worker finish alone.
  lost(peer, err) {
    const run = this.run;
    if (!run || !run.peers.includes(peer)) return;
    if (run.solo) {
      this.drop(peer);
      return;
    }
    this.callFirst("par_solo", { reason: err.message }).catch(() => {});
    this.wentSolo(err.message, [peer]);
  }

  // The first worker goes on alone: told by lost(), or on its own when the
  // others fell silent (then every other worker of the run is closed).
  wentSolo(reason, failed = this.run ? this.run.peers : []) {
    const run = this.run;
    if (!run || run.solo) return;
    run.solo = true;
    for (const peer of run.peers) {
      if (failed.includes(peer)) this.drop(peer);
      else peer.call("par_stop").catch(() => {});
    }
    run.hooks.note(`A worker stopped (${reason}); training goes on in 1 worker, on the same batches.`);
  }
}
