// The pycnn worker: Python (Pyodide) running pycnn.web, exposed to the page
// through Comlink (web/peer.js is the page's side). Each method calls
// pycnn.web and returns its plain reply; mutating calls carry the Session's
// `state` dict, which the page's store renders. Whether a run is training,
// stopping or done, and whether an evaluation was cancelled, is the Session's
// to say: the loops here call Python until its reply says the work ended.
//
// Besides calling Python, this file keeps models in IndexedDB (web/keep.js) and
// carries data-parallel gradients between workers (web/mesh.js). The page's own
// worker starts with init(); the extra workers of data-parallel training with
// initReplica(), and then only train.

import * as Comlink from "./vendor/comlink.mjs";
import * as keep from "./keep.js";
import { Mesh, MeshBroken, SILENCE_TIMEOUT_MS, trainShard } from "./mesh.js";
import { fetchBytes, python, readManifest, startPython } from "./runtime.js";

const SLICE_SECONDS = 0.2; // one train_slice or evaluation_slice call; messages (Stop, predictions) run between them
const REPORT_MS = 500; // a data-parallel run reports its progress at most this often

let call = null; // call(name, ...args): pycnn.web[name] (web/runtime.js)
let mesh = null; // the links to the other workers of the data-parallel run in progress

const tick = () => new Promise((resolve) => setTimeout(resolve, 0)); // let queued messages run
const bytesOut = (bytes) => Comlink.transfer(bytes, [bytes.buffer]);
const hasEpoch = (reply) => reply.events?.some((e) => e.kind === "epoch");

// A run that ended done or stopped after its first step left its model for drawing; keep it for a reload.
async function runEnded(reply) {
  await keep.dropCheckpoint();
  const { run, model } = reply.state ?? {};
  if (["done", "stopped"].includes(run?.phase) && model?.source === "trained") await keep.keepModel(call("model_bytes"));
  return reply;
}

// After an epoch of a running run ends, keep its model for a reload.
async function afterSlice(reply) {
  if (hasEpoch(reply) && !reply.done) {
    const checkpoint = call("checkpoint");
    if (checkpoint) await keep.keepCheckpoint(checkpoint);
  }
}

// What the page is sent as a run goes: the replies' events, the latest state, the live views.
const progress = (events, reply) => ({ events, state: reply.state, done: reply.done, filters: call("filters"), chart: call("chart") });

// A run that failed in JS or Python: the Session drops it (the model stays as it was), so the page is idle again.
function abandon() {
  try {
    call("end_run");
  } catch { /* nothing more can be done: the error is reported */ }
}

const api = {
  // The page's own worker: Python, the pretrained model (or the one this browser kept).
  async init(status = () => {}) {
    const t0 = performance.now();
    const timings = {};
    const mark = (name) => (timings[name] = Math.round(performance.now() - t0));
    status("Reading the site manifest…");
    const manifest = await readManifest();
    if (!manifest.pretrained) {
      throw new Error("this site was built without pretrained weights (static/pretrained.npz); create them with the CLI (see the README) and rebuild");
    }
    // The weights download while Python starts; MNIST waits until the page needs it.
    const [pyodide, weights] = await Promise.all([startPython(manifest, status, mark), fetchBytes(manifest.pretrained, "pretrained weights")]);
    call = python(pyodide, pyodide.pyimport("pycnn.web"));
    status("Loading the pretrained model…");
    let reply;
    try {
      reply = call("load_pretrained", weights);
    } catch (err) {
      throw new Error(`the pretrained weights (${manifest.pretrained}) could not be loaded: ${err.message}`, { cause: err });
    }
    reply = (await keep.restore(call)) || reply;
    mark("ready");
    return { ...reply, state: call("state"), defaults: call("defaults"), timings, manifest };
  },

  // An extra worker: Python and pycnn only; its data comes with replicaStart.
  async initReplica() {
    const pyodide = await startPython(await readManifest());
    call = python(pyodide, pyodide.pyimport("pycnn.web"));
    return {};
  },

  state: () => ({ state: call("state") }),

  // MNIST's four .gz files as fetched (web/mnist.js); Python decompresses and parses them.
  setMnist: (trainImages, trainLabels, testImages, testLabels) => call("set_mnist", trainImages, trainLabels, testImages, testLabels),

  predict: (pixels, width, height) => call("predict", pixels, width, height),

  // A model file chosen or dropped by the visitor: refused files leave the model as it was.
  async loadModel(bytes) {
    const reply = call("load_model_file", bytes, "file");
    return { ...reply, kept: await keep.keepModel(bytes) };
  },

  async usePretrained() {
    const reply = call("use_pretrained");
    await keep.forgetModel();
    return reply;
  },

  async restorePrevious() {
    const reply = call("restore_previous");
    if (reply.state.model.source === "pretrained") await keep.forgetModel();
    else await keep.keepModel(call("model_bytes"));
    return reply;
  },

  modelBytes: () => bytesOut(call("model_bytes")),

  // Evaluate the model used for drawing, in slices, until Python reports the
  // result or that it was cancelled (training began, or the model changed).
  async evaluate(onProgress = () => {}) {
    let reply = call("start_evaluation");
    for (;;) {
      onProgress(reply);
      await tick();
      reply = call("evaluation_slice", SLICE_SECONDS);
      if (reply.cancelled || reply.report) return reply;
    }
  },

  evaluationCell: (label, predicted) => call("evaluation_cell", label, predicted),
  trainingSample: (n) => call("training_sample", n),
  views: () => ({ filters: call("filters"), chart: call("chart") }),

  // The Code card (web/code.js), in a worker of its own that it may stop: pycnn.homework.
  homework: () => call("homework"),
  checkCode: (source, names) => call("check_code", source, names),
  exerciseCode: (source, name, solved) => call("exercise_code", source, name, solved),
  exerciseLines: (source) => call("exercise_lines", source),

  // Seeing learning happen (pycnn.session_insight; web/saliency.js, anatomy.js, handwriting.js and health.js draw the replies).
  saliency: (pixels, width, height, target) => call("saliency", pixels, width, height, target ?? null),
  stepApart: (pixels, width, height, label, optimizer, lr) => call("step_apart", pixels, width, height, label, optimizer, lr ?? null),
  stepApartTest: (index, optimizer, lr) => call("step_apart_test", index, optimizer, lr ?? null),
  stepApartMistake: (k, optimizer, lr) => call("step_apart_mistake", k, optimizer, lr ?? null),
  userDigit: (pixels, width, height) => call("user_digit", pixels, width, height),
  digitsFile: (images, labels) => bytesOut(call("digits_file", images, labels)),
  readDigitsFile: (bytes) => call("read_digits_file", bytes),
  health: () => call("health"),
  setLr: (lr) => call("set_lr", lr), // heard between two slices of the run: applies from its next step
  async fineTune(images, labels, seconds) {
    const reply = call("fine_tune", images, labels, seconds);
    await keep.keepModel(call("model_bytes")); // the fine-tuned model is the one to restore after a reload
    return reply;
  },

  // One worker: train in slices until Python says the run is over (done,
  // stopped or diverged). onStart(reply) once the run is set up; onProgress
  // after each slice. Returns the last reply.
  async train(config, onStart = () => {}, onProgress = () => {}) {
    const start = call("start_training", config, 1);
    try {
      await onStart(start); // heard before the first progress report
      for (;;) {
        await tick();
        const reply = call("train_slice", SLICE_SECONDS);
        onProgress(progress(reply.events, reply));
        await afterSlice(reply);
        if (reply.done) return await runEnded(reply);
      }
    } catch (err) {
      abandon();
      await keep.dropCheckpoint();
      throw err;
    }
  },

  // Heard between slices and steps; a first worker waiting for the others' gradients stops waiting.
  stop() {
    const reply = call("request_stop");
    mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true }));
    return reply;
  },

  // ---- data-parallel training: the first worker (shard 0)

  // A run of `workers` shards; ports link this worker to the others.
  async parStart(config, workers, ports, onStart = () => {}) {
    const reply = call("start_training", config, workers);
    mesh = new Mesh(0, ports, SILENCE_TIMEOUT_MS);
    await onStart(reply);
    return reply;
  },

  params: () => bytesOut(call("params")),

  shardData(k) {
    const data = call("shard_data", k);
    return Comlink.transfer(data, [data.images.buffer, data.labels.buffer]);
  },

  // Step with the others until the run ends; onSolo(reason) when this worker
  // went on alone because the others fell silent. Returns the last reply, with
  // `solo`: that reason, or null.
  async parRun(onProgress = () => {}, onSolo = () => {}) {
    const mine = mesh;
    let fellSilent = null; // why this worker went on alone, if the others fell silent
    let events = [];
    let last = null;
    let shownAt = performance.now();
    const report = () => {
      if (!last) return;
      onProgress(progress(events, last));
      events = [];
      shownAt = performance.now();
    };
    const note = async (reply) => {
      events.push(...reply.events);
      last = reply;
      if (hasEpoch(reply) || performance.now() - shownAt >= REPORT_MS) report();
      await afterSlice(reply);
      return reply;
    };
    const py = {
      compute: () => call("compute_gradients"),
      apply: (stats, grads) => {
        const reply = call("apply_gradients", stats, ...grads);
        note(reply);
        return reply;
      },
      async settle(reply) {
        while (!reply.done && reply.state.run.phase === "testing") {
          await tick();
          reply = await note(call("train_slice", SLICE_SECONDS));
        }
        return reply;
      },
      stopping: () => call("state").phase === "stopping",
      async end() {
        call("request_stop");
        for (;;) {
          const reply = await note(call("train_slice", SLICE_SECONDS));
          if (reply.done) return reply;
        }
      },
      solo(err) {
        call("go_solo");
        if (err.fromPage) return; // the page closed the others: it knows
        fellSilent = err.message;
        onSolo(err.message);
      },
      idle: () => {},
    };
    try {
      const reply = await trainShard(mine, py);
      report();
      // The reason comes with the reply too: onSolo's message may arrive after it.
      return { ...(await runEnded(reply)), solo: fellSilent };
    } catch (err) {
      mine?.close();
      abandon();
      await keep.dropCheckpoint();
      throw err;
    } finally {
      if (mesh === mine) mesh = null;
    }
  },

  // The page: the other workers are gone (it closed them); the first one goes on alone.
  parSolo(reason) {
    mesh?.interrupt(new MeshBroken(reason, { fromPage: true }));
  },

  // ---- data-parallel training: an extra worker

  replicaStart(config, images, labels, shape, shard, params, ports) {
    mesh?.close(); // a run set up that never ran
    const reply = call("start_replica", config, images, labels, shape, shard, params);
    mesh = new Mesh(shard, ports);
    return reply;
  },

  async replicaRun() {
    const mine = mesh;
    const py = {
      compute: () => call("compute_gradients"),
      apply: (stats, grads) => call("apply_gradients", stats, ...grads),
      settle: async (reply) => reply,
      stopping: () => false, // a replica's run ends when the first worker says so
      end: () => call("end_run"),
      solo: () => {},
      idle: () => {},
    };
    try {
      await trainShard(mine, py);
      return {};
    } finally {
      if (mesh === mine) mesh = null;
    }
  },

  // A first worker whose run was set up but never ran (the page could not hand out the shards).
  parAbort() {
    mesh?.close();
    mesh = null;
    abandon();
    return call("state");
  },

  // The page ends an extra worker's part in a run (after it, or because another worker failed).
  parStop() {
    mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true }));
  },
};

Comlink.expose(api);
