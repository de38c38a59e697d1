// web/parallel.js under Node: the workers' all-reduce (Mesh over real
// MessageChannels), each worker's step loop (trainShard, with pycnn replaced by
// fakes that record what they are given), and the page's WorkerPool with fake
// workers that run that same loop: every worker gets every part of every step,
// Stop and divergence end every worker, and when an extra worker dies, fails
// or falls silent the first one finishes alone and the page is told.
// Run by tests/test_parallel_js.py (node --test).

import assert from "node:assert/strict";
import test from "node:test";

const STEPS = 5;
const floats = (values) => new Uint8Array(new Float32Array(values).buffer);
const read = (bytes) => Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
const later = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

// A worker's pycnn, faked: part k of a step is [k + 1, 10 (k + 1)] over 32 images;
// the run ends after `steps` applied steps (or diverges at `divergeAt`).
function fakePy(shard, { steps = STEPS, divergeAt = null, evaluateAt = null, stopAt = null } = {}) {
  const py = {
    shard, computed: 0, applied: [], solos: [], figures: [], stopped: 0, stopFlag: false, settled: 0,
    compute() {
      py.computed++;
      const k = py.alone ? 0 : shard;
      return { grads: floats(py.alone ? [3, 30] : [k + 1, 10 * (k + 1)]), count: 32, loss: 0.25, correct: 30 };
    },
    apply(stats, grads) {
      py.applied.push({ stats, grads: grads.map((g) => (g ? read(g) : null)) });
      const n = py.applied.length;
      if (n === divergeAt) return { done: true, diverged: "the loss became nan", evaluating: false, model: { name: "pretrained" } };
      return { done: n === steps, diverged: null, evaluating: n === evaluateAt, model: n === steps ? { name: "seed" } : null };
    },
    async settle(slice) {
      py.settled++;
      await later(20); // the test-set evaluation takes a while; the others wait
      return { ...slice, evaluating: false };
    },
    stopRequested: () => py.stopFlag || (py.applied.length === stopAt && (py.stopFlag = true)), // Stop pressed after step `stopAt`
    stop() {
      py.stopped++;
      return { kept: false, model: { name: "pretrained" } };
    },
    solo(err) {
      py.solos.push(err);
      py.alone = true;
    },
    idle() {},
    stats(figures) {
      py.figures.push(figures);
    },
  };
  return py;
}

const { Mesh, MeshBroken, meshPorts, trainShard, WorkerPool } = await import("../web/parallel.js");

test("every worker gets every other worker's part of each step, in shard order", async () => {
  const links = meshPorts(3);
  const meshes = links.map((ports, k) => new Mesh(k, ports));
  const got = await Promise.all(meshes.map(async (mesh, k) => {
    const steps = [];
    for (let step = 0; step < 3; step++) {
      if (k === 2) await later(); // one worker lags: the others' next parts wait for their step
      steps.push(await mesh.exchange(step, { grads: floats([k, step]), count: k + 1, loss: 0.5, correct: k, ms: 1 }));
    }
    mesh.close();
    return steps;
  }));
  for (const [k, steps] of got.entries()) {
    for (const [step, parts] of steps.entries()) {
      assert.deepEqual(parts.map((p) => p.count), [1, 2, 3]);
      assert.deepEqual(parts.map((p) => (p.grads ? read(p.grads) : null)), [0, 1, 2].map((j) => (j === k ? null : [j, step])));
    }
  }
});

test("a silent worker breaks the exchange after the timeout, naming it", async () => {
  const links = meshPorts(2);
  const first = new Mesh(0, links[0], 50);
  new Mesh(1, links[1]); // never sends
  await assert.rejects(first.exchange(0, { grads: floats([1]), count: 1, loss: 0, correct: 0 }),
    (err) => err instanceof MeshBroken && !err.stop && /worker 2 sent nothing for 0.05 s/.test(err.message));
  first.close();
});

test("two workers step together, each applying both parts, and end together", async () => {
  const links = meshPorts(2);
  const pys = [fakePy(0, { evaluateAt: 2 }), fakePy(1)];
  const results = await Promise.all(pys.map((py, k) => trainShard(new Mesh(k, links[k]), py)));
  assert.deepEqual(results.map((r) => r.reason), ["done", "done"]);
  for (const [k, py] of pys.entries()) {
    assert.equal(py.applied.length, STEPS);
    for (const step of py.applied) {
      assert.deepEqual(step.stats, [{ count: 32, loss: 0.25, correct: 30 }, { count: 32, loss: 0.25, correct: 30 }]);
      assert.deepEqual(step.grads, k === 0 ? [null, [2, 20]] : [[1, 10], null]);
    }
  }
  assert.equal(pys[0].settled, 1); // the first worker evaluated after step 2 while the other waited
  assert.equal(pys[0].figures.at(-1).workers, 2);
  assert.ok(pys[0].figures.at(-1).stepMs >= pys[0].figures.at(-1).waitMs);
});

test("Stop on the first worker ends the other worker's run at the same step", async () => {
  const links = meshPorts(2);
  const pys = [fakePy(0, { stopAt: 2 }), fakePy(1)];
  const results = await Promise.all(pys.map((py, k) => trainShard(new Mesh(k, links[k]), py)));
  assert.deepEqual(results.map((r) => r.reason), ["stopped", "stopped"]);
  assert.deepEqual(pys.map((py) => py.applied.length), [2, 2]);
  assert.deepEqual(pys.map((py) => py.stopped), [1, 1]);
});

test("a diverged step ends every worker with the message", async () => {
  const links = meshPorts(2);
  const pys = [fakePy(0, { divergeAt: 3 }), fakePy(1, { divergeAt: 3 })];
  const results = await Promise.all(pys.map((py, k) => trainShard(new Mesh(k, links[k]), py)));
  assert.deepEqual(results.map((r) => [r.reason, r.slice.diverged]), [["diverged", "the loss became nan"], ["diverged", "the loss became nan"]]);
});

test("when the other worker falls silent the first one recomputes the step alone and finishes", async () => {
  const links = meshPorts(2);
  const first = fakePy(0);
  const other = fakePy(1, { steps: 2 }); // it leaves the run after two steps
  const [out] = await Promise.all([trainShard(new Mesh(0, links[0], 50), first), trainShard(new Mesh(1, links[1]), other)]);
  assert.equal(out.reason, "done");
  assert.equal(first.solos.length, 1);
  assert.match(first.solos[0].message, /worker 2 sent nothing/);
  assert.equal(first.solos[0].fromPage, false);
  assert.equal(first.computed, STEPS + 1); // step 3 was computed twice: with the other worker, then alone
  assert.deepEqual(first.applied.at(-1), { stats: [{ count: 32, loss: 0.25, correct: 30 }], grads: [null] });
});

// ---------------------------------------------------------------- the page's WorkerPool

// An extra worker: answers worker.js's requests, and runs trainShard with a fake pycnn.
class FakeWorker {
  static made = [];
  static options = {};
  constructor() {
    this.received = [];
    this.options = { ...FakeWorker.options };
    this.py = null;
    this.mesh = null;
    FakeWorker.made.push(this);
  }
  reply(id, result) {
    setTimeout(() => this.dead || this.onmessage({ data: { id, result } }), 1);
  }
  postMessage(msg) {
    this.received.push(msg);
    if (msg.type === "init_replica") {
      if (this.options.failToStart) setTimeout(() => this.onmessage({ data: { id: msg.id, error: "no network" } }), 1);
      else this.reply(msg.id, { ready: true });
    } else if (msg.type === "replica_start") {
      this.py = fakePy(msg.shard, this.options);
      this.mesh = new Mesh(msg.shard, msg.ports);
      this.reply(msg.id, { shard: msg.shard });
    } else if (msg.type === "par_run") {
      const { py } = this;
      const compute = py.compute;
      py.compute = () => {
        if (py.computed + 1 === this.options.dieAtStep) { // the worker dies: it sends nothing more
          this.dead = true;
          for (const port of this.mesh.ports) port?.close();
          setTimeout(() => this.onerror({ preventDefault() {}, message: "out of memory" }), 1);
          throw new Error("dead");
        }
        if (py.computed + 1 === this.options.failAtStep) throw new Error("MemoryError");
        return compute();
      };
      trainShard(this.mesh, py).then((out) => this.reply(msg.id, { reason: out.reason }),
        (err) => this.dead || this.onmessage({ data: { id: msg.id, error: err.message } }));
    } else if (msg.type === "par_stop") {
      this.mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true }));
      this.reply(msg.id, { kept: false });
    }
  }
  terminate() {
    this.terminated = true;
    this.mesh?.interrupt(new MeshBroken("terminated", { stop: true }));
  }
}
globalThis.Worker = FakeWorker;

// The page's own worker, as a call(type, args) function running the same loop.
function firstWorker(options = {}) {
  const calls = [];
  const py = fakePy(0, options);
  let mesh = null;
  let pool = null;
  const call = async (type, args = {}) => {
    calls.push({ type, ...args });
    if (type === "train") return { reason: "done", message: null, model: { name: "seed" } };
    if (type === "par_start") mesh = new Mesh(0, args.ports, options.timeoutMs || 0);
    if (type === "params") return floats([0, 0]);
    if (type === "shard_data") return { images: new Uint8Array(784), labels: new Uint8Array(1), shape: [1, 28, 28] };
    if (type === "stop") {
      py.stopFlag = true;
      mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true }));
    }
    if (type === "par_solo") mesh?.interrupt(new MeshBroken(args.reason, { fromPage: true }));
    if (type === "par_run") {
      const solo = py.solo;
      py.solo = (err) => {
        solo(err);
        if (!err.fromPage) pool.wentSolo(err.message); // worker.js posts "train-solo"; app.js passes it on
      };
      const out = await trainShard(mesh, py);
      return out.reason === "stopped" ? out : { reason: out.reason, message: out.slice.diverged, model: out.slice.model };
    }
    return {};
  };
  return { call, calls, py, attach: (p) => (pool = p) };
}

async function poolWith(first, extraOptions = {}) {
  FakeWorker.options = extraOptions;
  const pool = new WorkerPool(first.call, "worker.js");
  first.attach(pool);
  pool.resize(1);
  await pool.extras[0].ready.catch(() => {});
  return pool;
}

const hooks = () => {
  const notes = [];
  return { notes, note: (t) => notes.push(t) };
};

test("the pool links the workers, and both train every step with both parts", async () => {
  const first = firstWorker();
  const pool = await poolWith(first);
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.deepEqual(result, { reason: "done", message: null, model: { name: "seed" } });
  assert.equal(first.calls.find((c) => c.type === "par_start").config.shards, 2);
  const peer = FakeWorker.made.at(-1);
  await later(10); // its last step ends just after the first worker's
  assert.equal(peer.received.find((m) => m.type === "replica_start").shard, 1);
  assert.equal(first.py.applied.length, STEPS);
  assert.equal(peer.py.applied.length, STEPS);
  assert.deepEqual(first.py.applied.at(-1).grads, [null, [2, 20]]);
  assert.deepEqual(h.notes, []);
});

test("a worker that dies mid-run leaves the run to the first one, which says so", async () => {
  const first = firstWorker();
  const pool = await poolWith(first, { dieAtStep: 3 });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  assert.ok(first.calls.some((c) => c.type === "par_solo"));
  assert.equal(first.py.solos.length, 1);
  assert.equal(first.py.solos[0].fromPage, true);
  assert.deepEqual(first.py.applied.at(-1).grads, [null]); // alone: its own part is the whole batch
  assert.match(h.notes.join(" "), /A worker stopped \(out of memory\); training goes on in 1 worker/);
  assert.equal(pool.extras.length, 0);
  assert.ok(FakeWorker.made.at(-1).terminated);
});

test("a worker whose step fails is closed and the first one goes on alone", async () => {
  const first = firstWorker();
  const pool = await poolWith(first, { failAtStep: 2 });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  assert.match(h.notes.join(" "), /A worker stopped \(MemoryError\)/);
  assert.equal(pool.extras.length, 0);
  assert.equal(first.py.applied.length, STEPS);
});

test("a silent worker is closed when the first one gives up waiting for it", async () => {
  const first = firstWorker({ timeoutMs: 50 });
  const pool = await poolWith(first, { steps: 2 });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  assert.match(h.notes.join(" "), /A worker stopped \(worker 2 sent nothing for 0.05 s\)/);
  assert.equal(pool.extras.length, 0);
});

test("Stop ends the run at the next step and the extra worker drops its run", async () => {
  const first = firstWorker({ stopAt: 2 });
  const pool = await poolWith(first);
  const result = await pool.train({ preset: "seed" }, hooks());
  assert.deepEqual(result, { reason: "stopped", kept: false, model: { name: "pretrained" } });
  const peer = FakeWorker.made.at(-1);
  await later(10);
  assert.equal(peer.py.stopped, 1);
  assert.ok(peer.py.applied.length <= 3);
  assert.equal(pool.extras.length, 1); // kept for the next run
});

test("Stop pressed on the page interrupts a first worker waiting for the others", async () => {
  const first = firstWorker();
  const pool = await poolWith(first, { dieAtStep: 99, steps: 2 }); // the other worker stops answering after two steps
  const running = pool.train({ preset: "seed" }, hooks());
  await later(30);
  await pool.stop();
  const result = await running;
  assert.equal(result.reason, "stopped");
  assert.equal(first.py.applied.length, 2);
});

test("a diverged run ends with the first worker's message", async () => {
  const first = firstWorker({ divergeAt: 2 });
  const pool = await poolWith(first, { divergeAt: 2 });
  const result = await pool.train({ preset: "seed" }, hooks());
  assert.deepEqual(result, { reason: "diverged", message: "the loss became nan", model: { name: "pretrained" } });
});

test("a worker that cannot start leaves training to the first one", async () => {
  const first = firstWorker();
  const pool = await poolWith(first, { failToStart: true });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.reason, "done");
  assert.deepEqual(first.calls.map((c) => c.type), ["train"]);
  assert.match(h.notes[0], /worker 2 could not start \(no network\): training with 1 worker\./);
});
