// A worker's pycnn for the Node tests of web/mesh.js and web/pool.js: the
// bridge trainShard is given (compute, apply, settle, stopping, end, solo,
// idle), faked so that it records what it is given.

export const STEPS = 5;
export const floats = (values) => new Uint8Array(new Float32Array(values).buffer);
export const read = (bytes) => Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
export const later = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));
export const reply = (phase, more = {}) => ({ events: [], done: phase !== "training" && phase !== "testing", evaluating: false, state: { run: { phase } }, ...more });

// A worker's pycnn, faked: part k of a step is [k + 1, 10 (k + 1)] over 32 images;
// the run ends after `steps` applied steps (or diverges at `divergeAt`); Stop is
// requested after step `stopAt` (the first worker's Python then says "stopping").
export function fakePy(shard, { steps = STEPS, divergeAt = null, evaluateAt = null, stopAt = null } = {}) {
  const py = {
    shard, computed: 0, applied: [], solos: [], ended: 0, stopFlag: false, settled: 0,
    compute() {
      py.computed++;
      const k = py.alone ? 0 : shard;
      return { grads: floats(py.alone ? [3, 30] : [k + 1, 10 * (k + 1)]), count: 32, loss: 0.25, correct: 30, seconds: 0.001 };
    },
    apply(stats, grads) {
      if (py.stopFlag) return reply("stopped"); // Python ends a stopped run at its next step
      py.applied.push({ stats, grads: grads.map((g) => (g ? read(g) : null)) });
      const n = py.applied.length;
      if (n === stopAt) py.stopFlag = true; // Stop pressed after step `stopAt`
      if (n === divergeAt) return reply("diverged");
      return n === steps ? reply("done") : reply("training", { evaluating: n === evaluateAt });
    },
    async settle(slice) {
      py.settled++;
      await later(20); // the test-set evaluation takes a while; the others wait
      return { ...slice, evaluating: false };
    },
    stopping: () => py.stopFlag,
    end() {
      py.ended++;
      return reply("stopped");
    },
    solo(err) {
      py.solos.push(err);
      py.alone = true;
    },
    idle() {},
  };
  return py;
}
