// web/parallel.js under Node with fake workers: the coordinator sums the parts
// and hands every worker the same sum, and when an extra worker dies mid-run
// the first worker finishes alone and the page is told.
// Run by tests/test_parallel_js.py (node --test).

import assert from "node:assert/strict";
import test from "node:test";

const STEPS = 5;
const floats = (values) => new Uint8Array(new Float32Array(values).buffer);
const read = (bytes) => Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));

// An extra worker: replies like worker.js's par_* handlers; part k of a step is [k, 10 k].
class FakeWorker {
  static made = [];
  constructor() {
    this.received = [];
    this.dieAtStep = null;
    this.steps = 0;
    FakeWorker.made.push(this);
  }
  postMessage(msg) {
    this.received.push(msg);
    setTimeout(() => {
      if (msg.type === "par_step" && ++this.steps === this.dieAtStep) {
        this.onerror({ preventDefault() {}, message: "out of memory" });
        return;
      }
      if (msg.type === "par_step" && this.steps === this.failAtStep) {
        this.onmessage({ data: { id: msg.id, error: "MemoryError" } });
        return;
      }
      const result = msg.type === "par_step"
        ? { part: { grads: floats([2, 20]), count: 32, loss: 0.25, correct: 30 }, computeMs: 10, applyMs: 1 }
        : { ready: true };
      this.onmessage({ data: { id: msg.id, result } });
    }, 1);
  }
  terminate() {}
}
globalThis.Worker = FakeWorker;
const { WorkerPool, reduceParts } = await import("../web/parallel.js");

// The page's own worker, as a call(type, args) function; it ends the run after STEPS applied steps.
function firstWorker({ divergeAt = null, onStep = () => {} } = {}) {
  const calls = [];
  let applied = 0;
  const call = async (type, args = {}) => {
    calls.push({ type, ...args });
    if (type === "par_stop") return { kept: false, model: { name: "pretrained" } };
    if (type === "params") return floats([0, 0]);
    if (type === "shard_data") return { images: new Uint8Array(784), labels: new Uint8Array(1), shape: [1, 28, 28] };
    if (type === "par_step") {
      onStep(applied);
      if (args.grads && ++applied === divergeAt) return { slice: { done: true, diverged: "the loss became nan", model: { name: "pretrained" } } };
      if (args.grads && applied === STEPS) return { slice: { done: true, diverged: null, model: { name: "seed" } } };
      return { slice: null, part: { grads: floats([1, 10]), count: 32, loss: 0.5, correct: 31 }, computeMs: 10, applyMs: 1 };
    }
    return {};
  };
  return { call, calls };
}

const hooks = () => {
  const seen = { notes: [], stats: [] };
  return { seen, note: (t) => seen.notes.push(t), stats: (s) => seen.stats.push(s) };
};

test("reduceParts adds the gradient arrays and the counts", () => {
  const out = reduceParts([{ grads: floats([1, 2]), count: 3, loss: 0.5, correct: 2 },
    { grads: floats([0.5, -2]), count: 1, loss: 0.25, correct: 1 }]);
  assert.deepEqual(Array.from(out.grads), [1.5, 0]);
  assert.deepEqual(out.batch, { count: 4, loss: 0.75, correct: 3 });
});

test("every worker gets the same summed gradients each step", async () => {
  const first = firstWorker();
  const pool = new WorkerPool(first.call, "worker.js");
  pool.resize(1);
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  assert.equal(first.calls.find((c) => c.type === "par_start").config.shards, 2);
  const peer = FakeWorker.made.at(-1);
  const peerSteps = peer.received.filter((m) => m.type === "par_step" && m.grads);
  const firstSteps = first.calls.filter((c) => c.type === "par_step" && c.grads);
  assert.equal(firstSteps.length, STEPS);
  assert.equal(peerSteps.length, STEPS);
  for (const [a, b] of firstSteps.map((c, i) => [c, peerSteps[i]])) {
    assert.deepEqual(read(a.grads), [3, 30]);
    assert.deepEqual(read(b.grads), [3, 30]);
    assert.deepEqual(a.batch, { count: 64, loss: 0.75, correct: 61 });
  }
  assert.equal(h.seen.notes.length, 0);
  assert.equal(h.seen.stats.at(-1).workers, 2);
});

test("a worker that dies mid-run leaves the run to the first one, which says so", async () => {
  const first = firstWorker();
  const pool = new WorkerPool(first.call, "worker.js");
  pool.resize(1);
  FakeWorker.made.at(-1).dieAtStep = 3;
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  const types = first.calls.map((c) => c.type);
  assert.ok(types.includes("par_solo"), types.join(" "));
  // After going solo the first worker recomputes the unfinished step alone: no gradients with that request.
  const afterSolo = first.calls.slice(types.indexOf("par_solo") + 1);
  assert.equal(afterSolo[0].type, "par_step");
  assert.equal(afterSolo[0].grads, undefined);
  assert.deepEqual(read(afterSolo[1].grads), [1, 10]); // its own part is now the whole sum
  assert.match(h.seen.notes.join(" "), /A worker stopped \(out of memory\); training goes on in 1 worker/);
  assert.equal(pool.extras.length, 0);
});

test("Stop ends the run at the next step and the extra workers drop their runs", async () => {
  let pool;
  const first = firstWorker({ onStep: (applied) => applied === 2 && pool.stop() });
  pool = new WorkerPool(first.call, "worker.js");
  pool.resize(1);
  const result = await pool.train({ preset: "seed" }, hooks());
  assert.equal(result.reason, "stopped");
  assert.equal(result.kept, false);
  const types = first.calls.map((c) => c.type);
  assert.ok(types.includes("stop") && types.at(-1) === "par_stop", types.join(" "));
  assert.ok(types.filter((t) => t === "par_step").length <= 4, types.join(" "));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(FakeWorker.made.at(-1).received.at(-1).type, "par_stop");
});

test("a diverged run ends with the first worker's message", async () => {
  const first = firstWorker({ divergeAt: 2 });
  const pool = new WorkerPool(first.call, "worker.js");
  pool.resize(1);
  const result = await pool.train({ preset: "seed" }, hooks());
  assert.deepEqual(result, { reason: "diverged", message: "the loss became nan", model: { name: "pretrained" } });
});

test("a worker whose step fails is closed and the first one goes on alone", async () => {
  const first = firstWorker();
  const pool = new WorkerPool(first.call, "worker.js");
  pool.resize(1);
  const peer = FakeWorker.made.at(-1);
  peer.failAtStep = 2;
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  assert.ok(first.calls.some((c) => c.type === "par_solo"));
  assert.match(h.seen.notes.join(" "), /A worker stopped \(MemoryError\)/);
  assert.equal(pool.extras.length, 0);
  assert.equal(first.calls.filter((c) => c.type === "par_step" && c.grads).length, STEPS);
});
