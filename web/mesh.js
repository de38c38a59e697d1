// The transport of data-parallel training, inside each worker: a Mesh of
// MessagePorts to the other workers of a run, and trainShard, the step loop
// that moves gradient bytes between pycnn.web calls.
//
// Each worker computes the gradient of its part of the global batch
// (pycnn.web.compute_gradients), sends it to every other worker as a
// transferred byte array, waits for theirs, and hands all of them to
// pycnn.web.apply_gradients, which adds them in shard order, so the replicas
// stay bit-identical. The page is not on a step's path (web/pool.js only sets
// a run up). What a run is doing (training, stopping, done) is Python's
// Session's to say; this file only knows whether the links still hold.

export const SILENCE_TIMEOUT_MS = 60_000; // the first worker waits this long for another's gradients

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

  // Send this worker's part of `step` ({grads: Uint8Array, count, loss, correct, seconds})
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

/**
 * One worker's side of a data-parallel run: steps until the run ends. `py` is
 * the worker's bridge to pycnn.web:
 *   compute() -> part {grads: Uint8Array, count, loss, correct, seconds}
 *   apply(stats, grads) -> apply_gradients' reply {events, done, evaluating, state}
 *   settle(slice) -> the reply that ends the epoch's test pass (first worker)
 *   stopping() -> true once Python's run was asked to stop (its state's phase)
 *   end() -> the reply that ends this worker's run after a stop
 *   solo(error) when the other workers are gone; idle() while they compute.
 * `mesh` is null once the worker is alone. Resolves to the last reply.
 */
export async function trainShard(mesh, py) {
  const stopped = () => {
    if (py.stopping()) mesh?.announceStop(); // Stop reached this worker (the first): tell the others
    mesh?.close();
    return py.end();
  };
  for (let step = 0; ; step++) {
    if (py.stopping()) return stopped();
    const part = py.compute();
    let parts = [{ ...part, grads: null }];
    if (!mesh) py.idle();
    else {
      try {
        const exchanged = mesh.exchange(step, part);
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
    const stats = parts.map(({ count, loss, correct, seconds }) => ({ count, loss, correct, seconds }));
    let slice = py.apply(stats, parts.map((p) => p.grads));
    if (slice.evaluating && !slice.done) slice = await py.settle(slice);
    if (slice.done) {
      if (slice.state?.run?.phase === "stopped") mesh?.announceStop(); // stopped during the test pass
      mesh?.close();
      return slice;
    }
  }
}
