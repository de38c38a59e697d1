// The page's side of data-parallel training under Node (web/pool.js,
// web/peer.js), talking through the real Comlink to fake workers that run the
// real trainShard (web/mesh.js) over a fake pycnn: the pool links the
// workers, Stop and divergence end every worker, and when an extra worker
// dies, fails or falls silent the first one finishes alone and the page is
// told. Run by tests/test_parallel_js.py.

import assert from "node:assert/strict";
import { register } from "node:module";
import test from "node:test";
import { fakePy, floats, later, reply, STEPS } from "./fake_pycnn.mjs";

register("./web_vendor_hooks.mjs", import.meta.url); // ./vendor/comlink.mjs is node_modules' Comlink

const { Mesh, MeshBroken, trainShard } = await import("../web/mesh.js");

const Comlink = await import("../node_modules/comlink/dist/esm/comlink.mjs"); // the file web/ imports as ./vendor/comlink.mjs

// A fake web/worker.js: the methods the page calls, over the real Comlink, each
// worker stepping with the real trainShard over a fake pycnn.
function fakeApi(worker) {
  const o = worker.options;
  let mesh = null;
  const first = () => (worker.py ??= fakePy(0, o));
  return {
    async initReplica() {
      await later(1);
      if (o.failToStart) throw new Error("no network");
      return {};
    },
    async train(config, onStart) {
      worker.calls.push("train");
      await onStart({ chart_end: 10 });
      return reply("done");
    },
    parStart(config, workers, ports, onStart) {
      worker.calls.push("parStart");
      worker.workers = workers;
      mesh = new Mesh(0, ports, o.timeoutMs || 0);
      onStart({ chart_end: 10 });
    },
    params: () => floats([0, 0]),
    shardData: () => ({ images: new Uint8Array(784), labels: new Uint8Array(1), shape: [1, 28, 28] }),
    async parRun(onProgress, onSolo) {
      const py = first();
      const solo = py.solo;
      let silent = null;
      py.solo = (err) => {
        solo(err);
        if (!err.fromPage) onSolo((silent = err.message));
      };
      return { ...(await trainShard(mesh, py)), solo: silent };
    },
    parSolo: (reason) => mesh?.interrupt(new MeshBroken(reason, { fromPage: true })),
    parAbort: () => mesh?.close(),
    stop() {
      first().stopFlag = true;
      mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true }));
    },
    replicaStart(config, images, labels, shape, shard, params, ports) {
      worker.shard = shard;
      worker.py = fakePy(shard, o);
      mesh = new Mesh(shard, ports);
    },
    async replicaRun() {
      const { py } = worker;
      const compute = py.compute;
      py.compute = () => {
        if (py.computed + 1 === o.dieAtStep) { // the worker dies: it sends nothing more
          for (const port of mesh.ports) port?.close();
          setTimeout(() => worker.die("out of memory"), 1);
          throw Object.assign(new Error("dead"), { dead: true });
        }
        if (py.computed + 1 === o.failAtStep) throw new Error("MemoryError");
        return compute();
      };
      try {
        await trainShard(mesh, py);
      } catch (err) {
        if (err.dead) await new Promise(() => {}); // a dead worker never answers
        throw err;
      }
      return {};
    },
    parStop: () => mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true })),
    hang: () => new Promise(() => {}),
  };
}

// A Worker as web/peer.js sees one: Comlink's endpoint, plus "error" events.
class FakeWorker extends EventTarget {
  static made = [];
  static options = {};
  constructor(url, { name }) {
    super();
    Object.assign(this, { name, options: { ...FakeWorker.options }, calls: [], py: null });
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    port1.addEventListener("message", (event) => this.dispatchEvent(Object.assign(new Event("message"), { data: event.data })));
    port1.start();
    Comlink.expose(fakeApi(this), port2);
    FakeWorker.made.push(this);
  }
  postMessage(message, transfer) {
    this.port.postMessage(message, transfer);
  }
  die(message) {
    this.dispatchEvent(Object.assign(new Event("error", { cancelable: true }), { message }));
  }
  terminate() {
    this.terminated = true;
    this.port.close();
  }
}
globalThis.Worker = FakeWorker;
test.after(() => {
  for (const worker of FakeWorker.made) worker.terminate(); // open ports would keep Node running
});

const { Peer } = await import("../web/peer.js");
const { WorkerPool } = await import("../web/pool.js");

async function poolWith(firstOptions = {}, extraOptions = {}) {
  FakeWorker.options = firstOptions;
  const first = new Peer("worker.js", "pycnn worker 1");
  FakeWorker.options = extraOptions;
  const pool = new WorkerPool(first, "worker.js");
  pool.resize(1);
  await pool.extras[0].ready.catch(() => {});
  return { pool, first: FakeWorker.made.at(-2), extra: FakeWorker.made.at(-1) };
}

const hooks = () => {
  const notes = [];
  const started = [];
  return { notes, started, note: (t) => notes.push(t), onStart: (r) => started.push(r), onProgress: () => {}, cancelled: () => false };
};

test("the pool links the workers, and both train every step with both parts", async () => {
  const { pool, first, extra } = await poolWith();
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.state.run.phase, "done");
  assert.equal(first.workers, 2);
  assert.deepEqual(h.started, [{ chart_end: 10 }]);
  await later(10); // its last step ends just after the first worker's
  assert.equal(extra.shard, 1);
  assert.equal(first.py.applied.length, STEPS);
  assert.equal(extra.py.applied.length, STEPS);
  assert.deepEqual(first.py.applied.at(-1).grads, [null, [2, 20]]);
  assert.deepEqual(h.notes, []);
});

test("a worker that dies mid-run leaves the run to the first one, which says so", async () => {
  const { pool, first, extra } = await poolWith({}, { dieAtStep: 3 });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.state.run.phase, "done");
  assert.equal(first.py.solos.length, 1);
  assert.equal(first.py.solos[0].fromPage, true);
  assert.deepEqual(first.py.applied.at(-1).grads, [null]); // alone: its own part is the whole batch
  assert.match(h.notes.join(" "), /A worker stopped \(out of memory\); training goes on in 1 worker/);
  assert.equal(pool.extras.length, 0);
  assert.ok(extra.terminated);
});

test("a worker whose step fails is closed and the first one goes on alone", async () => {
  const { pool, first } = await poolWith({}, { failAtStep: 2 });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.state.run.phase, "done");
  assert.match(h.notes.join(" "), /A worker stopped \(MemoryError\)/);
  assert.equal(pool.extras.length, 0);
  assert.equal(first.py.applied.length, STEPS);
});

test("a silent worker is closed when the first one gives up waiting for it", async () => {
  const { pool } = await poolWith({ timeoutMs: 50 }, { steps: 2 });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.state.run.phase, "done");
  assert.match(h.notes.join(" "), /A worker stopped \(worker 2 sent nothing for 0.05 s\)/);
  assert.equal(pool.extras.length, 0);
});

test("Stop ends the run at the next step and the extra worker drops its run", async () => {
  const { pool, first, extra } = await poolWith({ stopAt: 2 });
  const result = await pool.train({ preset: "seed" }, hooks());
  assert.equal(result.state.run.phase, "stopped");
  await later(10);
  assert.equal(first.py.applied.length, 2);
  assert.equal(extra.py.ended, 1);
  assert.ok(extra.py.applied.length <= 3);
  assert.equal(pool.extras.length, 1); // kept for the next run
});

test("Stop pressed on the page interrupts a first worker waiting for the others", async () => {
  const { pool, first } = await poolWith({}, { dieAtStep: 99, steps: 2 }); // the other worker stops answering after two steps
  const running = pool.train({ preset: "seed" }, hooks());
  await later(30);
  await pool.first.call("stop");
  const result = await running;
  assert.equal(result.state.run.phase, "stopped");
  assert.equal(first.py.applied.length, 2);
});

test("a diverged run ends every worker's run", async () => {
  const { pool, first, extra } = await poolWith({ divergeAt: 2 }, { divergeAt: 2 });
  const result = await pool.train({ preset: "seed" }, hooks());
  assert.equal(result.state.run.phase, "diverged");
  await later(10);
  assert.deepEqual([first.py.applied.length, extra.py.applied.length], [2, 2]);
});

test("a worker that cannot start leaves training to the first one", async () => {
  const { pool, first } = await poolWith({}, { failToStart: true });
  const h = hooks();
  const result = await pool.train({ preset: "seed" }, h);
  assert.equal(result.state.run.phase, "done");
  assert.deepEqual(first.calls, ["train"]);
  assert.match(h.notes[0], /worker 2 could not start \(no network\): training with 1 worker\./);
});

test("Stop pressed while the extra workers start means no run at all", async () => {
  const { pool, first } = await poolWith();
  const h = { ...hooks(), cancelled: () => true };
  assert.equal(await pool.train({ preset: "seed" }, h), null);
  assert.deepEqual(first.calls, []);
});

test("a call to a worker that died fails with the reason instead of waiting forever", async () => {
  const peer = new Peer("worker.js", "pycnn worker 9");
  const pending = peer.call("hang");
  FakeWorker.made.at(-1).die("out of memory");
  await assert.rejects(pending, /out of memory/);
  await assert.rejects(peer.call("params"), /out of memory/); // and so does every later call
  await assert.rejects(new Peer("worker.js", "pycnn worker 10").timed(20, "hang"), /no reply within 0.02 s/);
});
