// Data-parallel training over several workers, each running Pyodide and pycnn.
//
// The page's own worker (the "first" one: it holds MNIST, evaluates the test
// set and keeps the model used for drawing) plus extra workers started ahead
// of time. For a run of K workers, the first one hands every other worker its
// shard of the training set and its starting weights; then each step is one
// round: every worker applies the previous step's summed gradients (the
// identical optimizer step everywhere, so the replicas stay bit-identical),
// computes the gradient of its part of the next global batch, and replies
// with it as a Float32Array (transferred, not copied). This module sums those
// arrays and the batch counts; the batch schedule itself is pycnn's
// (pycnn/parallel.py). If an extra worker fails to start or dies, the first
// one goes on alone on the same schedule (pycnn.web.go_solo), and says so.

const REPLY_TIMEOUT_MS = 60_000; // an extra worker silent this long during a run counts as dead
const START_TIMEOUT_MS = 90_000; // and one whose Python has not started by then, as failed

// One extra worker: requests {id, type, ...args} get exactly one reply, as with the first worker.
class Peer {
  constructor(url) {
    this.pending = new Map();
    this.nextId = 1;
    this.dead = null;
    this.worker = new Worker(url, { type: "module" });
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

// Sum the workers' gradient parts (share-weighted already, so the sum is the
// whole batch's mean gradient) and their counts. The only arithmetic here.
export function reduceParts(parts) {
  const grads = new Float32Array(parts[0].grads.byteLength / 4);
  const batch = { count: 0, loss: 0, correct: 0 };
  for (const part of parts) {
    const g = new Float32Array(part.grads.buffer, part.grads.byteOffset, part.grads.byteLength / 4);
    if (g.length !== grads.length) throw new Error("the workers' models differ in size");
    for (let i = 0; i < g.length; i++) grads[i] += g[i];
    batch.count += part.count;
    batch.loss += part.loss;
    batch.correct += part.correct;
  }
  return { grads, batch };
}

export class WorkerPool {
  // callFirst(type, args, transfer) sends a request to the page's own worker.
  constructor(callFirst, url) {
    this.callFirst = callFirst;
    this.url = url;
    this.extras = []; // {peer, ready: Promise<Peer>}
    this.stopRequested = false;
  }

  // Keep `count` extra workers started (each loads Pyodide: about 4 s, and over 100 MB).
  resize(count) {
    while (this.extras.length > count) this.extras.pop().peer.terminate();
    while (this.extras.length < count) {
      const peer = new Peer(this.url);
      const ready = peer.call("init_replica", {}, [], START_TIMEOUT_MS).then(() => peer);
      ready.catch(() => {}); // reported when a run needs it
      this.extras.push({ peer, ready });
    }
  }

  drop(extra) {
    extra.peer.terminate();
    this.extras = this.extras.filter((e) => e !== extra);
  }

  stop() {
    this.stopRequested = true;
    return this.callFirst("stop"); // heard by the first worker between evaluation chunks too
  }

  // Train with the first worker and every extra one, once they have started. hooks:
  // note(text) for fallbacks, stats({workers, speedup, commMs, stepMs}).
  // Resolves like the first worker's "train" request: {reason, message, model} or {reason: "stopped", kept, model}.
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
        this.drop(extra);
      }
    }
    if (notes.length) hooks.note(`${notes.join("; ")}: training with ${peers.length + 1} worker${peers.length ? "s" : ""}.`);
    if (this.stopRequested) return { reason: "stopped", kept: false, model: null };
    if (!peers.length) return this.callFirst("train", { config });
    try {
      return await this.run(config, peers, hooks);
    } finally {
      for (const peer of peers) if (!peer.dead) peer.call("par_stop").catch(() => {});
    }
  }

  async run(config, peers, hooks) {
    const shards = peers.length + 1;
    await this.callFirst("par_start", { config: { ...config, shards } });
    try {
      return await this.steps(config, shards, peers, hooks);
    } catch (err) {
      this.callFirst("par_stop").catch(() => {}); // the first worker failed: end its run too, if it can
      throw err;
    }
  }

  async steps(config, shards, peers, hooks) {
    let alive = peers;
    const params = await this.callFirst("params");
    for (const [i, peer] of peers.entries()) {
      const shard = await this.callFirst("shard_data", { shard: i + 1 });
      const start = { config: { ...config, shards }, ...shard, shard: i + 1, params: params.slice() };
      try {
        await peer.call("replica_start", start, [shard.images.buffer, shard.labels.buffer, start.params.buffer], REPLY_TIMEOUT_MS);
      } catch (err) {
        alive = await this.goSolo(peers, [[peer, err]], hooks);
        break;
      }
    }
    let reduced = null;
    let busy = 0;
    let wall = 0;
    let comm = 0;
    let rounds = 0;
    for (;;) {
      if (this.stopRequested) return { reason: "stopped", ...(await this.callFirst("par_stop")) };
      const t0 = performance.now();
      const asks = [this.callFirst, ...alive.map((p) => (type, args, transfer) => p.call(type, args, transfer, REPLY_TIMEOUT_MS))];
      const settled = await Promise.allSettled(asks.map((ask, k) => {
        if (!reduced) return ask("par_step", {});
        // Each worker gets its own copy of the sum; the last one gets the original.
        const grads = k === asks.length - 1 ? reduced.grads : reduced.grads.slice();
        return ask("par_step", { grads: new Uint8Array(grads.buffer), batch: reduced.batch }, [grads.buffer]);
      }));
      if (settled[0].status === "rejected") throw settled[0].reason; // the first worker failed: the run is over
      const first = settled[0].value;
      if (first.stopped) return { reason: "stopped", ...(await this.callFirst("par_stop")) };
      if (first.slice && first.slice.done) {
        const s = first.slice;
        return { reason: s.diverged ? "diverged" : "done", message: s.diverged, model: s.model };
      }
      const failed = alive.map((peer, i) => [peer, settled[i + 1].reason]).filter(([, reason]) => reason);
      if (failed.length) {
        alive = await this.goSolo(alive, failed, hooks);
        reduced = null; // the first worker recomputes the unfinished step alone
        continue;
      }
      const replies = settled.map((r) => r.value);
      reduced = reduceParts(replies.map((r) => r.part));
      const ms = performance.now() - t0;
      if (!first.evaluated) {
        const work = replies.map((r) => r.computeMs + (r.applyMs || 0));
        busy += work.reduce((a, b) => a + b, 0) - (first.applyMs || 0) * alive.length; // one worker would update once
        wall += ms;
        comm += ms - Math.max(...work);
        rounds++;
        hooks.stats({ workers: alive.length + 1, speedup: busy / wall, commMs: comm / rounds, stepMs: wall / rounds });
      }
    }
  }

  // Extra workers failed ([peer, error] pairs): close them, end the others'
  // runs, and let the first worker finish the run alone, on the same schedule.
  async goSolo(peers, failed, hooks) {
    for (const [peer] of failed) {
      const extra = this.extras.find((e) => e.peer === peer);
      if (extra) this.drop(extra);
      else peer.terminate();
    }
    for (const peer of peers) if (!peer.dead) peer.call("par_stop").catch(() => {});
    await this.callFirst("par_solo");
    const who = failed.length === 1 ? "A worker" : `${failed.length} workers`;
    hooks.note(`${who} stopped (${failed[0][1].message}); training goes on in 1 worker, on the same batches.`);
    return [];
  }
}
