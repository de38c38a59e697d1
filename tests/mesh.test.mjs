// web/mesh.js under Node: the workers' all-reduce (Mesh over real
// MessageChannels) and trainShard, each worker's step loop, with pycnn
// replaced by fakes that record what they are given: every worker gets every
// part of every step, Stop and divergence end every worker, and a silent
// worker leaves the first one to finish alone. Run by tests/test_parallel_js.py.

import assert from "node:assert/strict";
import test from "node:test";
import { fakePy, floats, later, read, STEPS } from "./fake_pycnn.mjs";

const { Mesh, MeshBroken, meshPorts, trainShard } = await import("../web/mesh.js");

test("every worker gets every other worker's part of each step, in shard order", async () => {
  const links = meshPorts(3);
  const meshes = links.map((ports, k) => new Mesh(k, ports));
  const got = await Promise.all(meshes.map(async (mesh, k) => {
    const steps = [];
    for (let step = 0; step < 3; step++) {
      if (k === 2) await later(); // one worker lags: the others' next parts wait for their step
      steps.push(await mesh.exchange(step, { grads: floats([k, step]), count: k + 1, loss: 0.5, correct: k, seconds: 0.001 }));
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
  assert.deepEqual(results.map((r) => r.state.run.phase), ["done", "done"]);
  for (const [k, py] of pys.entries()) {
    assert.equal(py.applied.length, STEPS);
    for (const step of py.applied) {
      // Each worker's figures (its compute seconds too) reach every worker, for Python's speed-up.
      assert.deepEqual(step.stats, [0, 1].map(() => ({ count: 32, loss: 0.25, correct: 30, seconds: 0.001 })));
      assert.deepEqual(step.grads, k === 0 ? [null, [2, 20]] : [[1, 10], null]);
    }
  }
  assert.equal(pys[0].settled, 1); // the first worker evaluated after step 2 while the other waited
});

test("Stop on the first worker ends the other worker's run at the same step", async () => {
  const links = meshPorts(2);
  const pys = [fakePy(0, { stopAt: 2 }), fakePy(1)];
  const results = await Promise.all(pys.map((py, k) => trainShard(new Mesh(k, links[k]), py)));
  assert.deepEqual(results.map((r) => r.state.run.phase), ["stopped", "stopped"]);
  assert.deepEqual(pys.map((py) => py.applied.length), [2, 2]);
  assert.deepEqual(pys.map((py) => py.ended), [1, 1]);
});

test("a diverged step ends every worker", async () => {
  const links = meshPorts(2);
  const pys = [fakePy(0, { divergeAt: 3 }), fakePy(1, { divergeAt: 3 })];
  const results = await Promise.all(pys.map((py, k) => trainShard(new Mesh(k, links[k]), py)));
  assert.deepEqual(results.map((r) => r.state.run.phase), ["diverged", "diverged"]);
  assert.deepEqual(pys.map((py) => py.applied.length), [3, 3]);
});

test("when the other worker falls silent the first one recomputes the step alone and finishes", async () => {
  const links = meshPorts(2);
  const first = fakePy(0);
  const other = fakePy(1, { steps: 2 }); // it leaves the run after two steps
  const [out] = await Promise.all([trainShard(new Mesh(0, links[0], 50), first), trainShard(new Mesh(1, links[1]), other)]);
  assert.equal(out.state.run.phase, "done");
  assert.equal(first.solos.length, 1);
  assert.match(first.solos[0].message, /worker 2 sent nothing/);
  assert.equal(first.solos[0].fromPage, false);
  assert.equal(first.computed, STEPS + 1); // step 3 was computed twice: with the other worker, then alone
  assert.deepEqual(first.applied.at(-1), { stats: [{ count: 32, loss: 0.25, correct: 30, seconds: 0.001 }], grads: [null] });
});
