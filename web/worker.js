// The pycnn worker: hosts Pyodide and calls the Python module pycnn.web.
//
// Protocol (page -> worker): {id, type, ...args}. Every request gets exactly
// one reply, {id, result} or {id, error}. Messages without an id are progress
// reports and carry a `type`: "status" (loading text), "train-start",
// "train-progress", "eval-progress". The page's own worker starts with
// "init"; the extra workers of data-parallel training (web/parallel.js) start
// with "init_replica" and then only train ("replica_start", "par_run"). The
// first worker also posts "train-solo" when the others fell silent.
// All learning, prediction, evaluation and preprocessing happen in Python;
// this file fetches the runtime and weights, hands over the MNIST bytes the
// page fetched (web/mnist.js) and keeps a copy of the last model in IndexedDB,
// and during training the model of the last finished epoch (for a reload).

import { loadPyodide } from "./pyodide/pyodide.mjs";
import { Mesh, MeshBroken, SILENCE_TIMEOUT_MS, trainShard } from "./parallel.js";

const SLICE_SECONDS = 0.2; // one train_slice call; Stop is heard between slices
const EVAL_SLICE_SECONDS = 0.2; // one evaluation_slice call; predictions run between slices

let pyodide = null;
let web = null; // PyProxy of the pycnn.web module
let stopRequested = false;
let training = false;
let evalToken = 0; // bumped to abandon the evaluation in progress (new model, training)
let primary = false; // this is the page's own worker (MNIST, test set, the model used for drawing)
// Data-parallel steps of the first worker whose progress is not yet posted (see collect).
const unshown = (figures = null) => ({ at: performance.now(), events: [], last: null, figures, due: false });
let shown = unshown();
let mesh = null; // this worker's links to the others during a data-parallel run (web/parallel.js)
let looping = false; // par_run's step loop is running

const status = (text) => self.postMessage({ type: "status", text });
const siteURL = (path) => new URL(path, new URL("./", import.meta.url)).href;

// Call a pycnn.web function and return plain JS data (objects, arrays, numbers).
function callPy(name, ...args) {
  const pyArgs = args.map((a) => (a instanceof Uint8Array || a === null || typeof a !== "object" ? a : pyodide.toPy(a)));
  let out;
  try {
    out = web[name](...pyArgs);
  } finally {
    for (let i = 0; i < args.length; i++) if (pyArgs[i] !== args[i]) pyArgs[i].destroy();
  }
  if (out === undefined || out === null || typeof out !== "object") return out;
  try {
    return out.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
  } finally {
    out.destroy();
  }
}

// Python exceptions arrive as PythonError with the whole traceback; the page
// shows only the last line ("ValueError: learning rate ...").
function errorText(err) {
  if (err && err.type && typeof err.message === "string") {
    const lines = err.message.trim().split("\n");
    // ValueErrors (pycnn's format errors are ValueErrors too) are messages for
    // the user (bad settings, bad files): drop the class name.
    return lines[lines.length - 1].replace(/^(ValueError|pycnn\.\w+\.\w+Error): /, "");
  }
  return err && err.message ? err.message : String(err);
}

async function fetchBytes(path, what) {
  let response;
  try {
    response = await fetch(siteURL(path));
  } catch (err) {
    throw new Error(`could not fetch ${path} (${what}): ${err.message}`, { cause: err });
  }
  if (!response.ok) {
    throw new Error(`${path} (${what}) is missing from the site (HTTP ${response.status}); rebuild it with \`python build_site.py\``);
  }
  return new Uint8Array(await response.arrayBuffer());
}

// Pyodide never settles its promise when its .wasm or stdlib is missing, so
// check every runtime file first and fail with a message instead of hanging.
async function checkFilesExist(manifest) {
  const files = {
    [`${manifest.pyodide}pyodide.asm.js`]: "Pyodide runtime",
    [`${manifest.pyodide}pyodide.asm.wasm`]: "Pyodide runtime",
    [`${manifest.pyodide}python_stdlib.zip`]: "Python standard library",
    [`${manifest.pyodide}pyodide-lock.json`]: "Pyodide package list",
    [manifest.numpy_wheel]: "numpy for Pyodide",
    [manifest.pycnn_wheel]: "the pycnn package",
  };
  await Promise.all(Object.entries(files).map(async ([path, what]) => {
    let response;
    try {
      response = await fetch(siteURL(path), { method: "HEAD" });
    } catch (err) {
      throw new Error(`could not fetch ${path} (${what}): ${err.message}`, { cause: err });
    }
    if (!response.ok) {
      throw new Error(`${path} (${what}) is missing from the site (HTTP ${response.status}); rebuild it with \`python build_site.py\``);
    }
  }));
}

const RUNTIME_TIMEOUT_MS = 180_000; // 12 MB of runtime on a slow connection, with room to spare

// loadPyodide, but failing instead of waiting forever: Pyodide 0.27 reports a
// .wasm that does not compile only with console.warn and never settles.
function loadPyodideOrFail(options) {
  return new Promise((resolve, reject) => {
    const warn = console.warn;
    const done = () => {
      clearTimeout(timer);
      console.warn = warn;
    };
    const fail = (message) => {
      done();
      reject(new Error(message));
    };
    const timer = setTimeout(() => fail("the Python runtime did not start within 3 minutes; reload the page (rebuild the site if it keeps happening)"), RUNTIME_TIMEOUT_MS);
    console.warn = (...args) => {
      warn.apply(console, args);
      if (String(args[0]).includes("wasm instantiation failed")) {
        fail("pyodide/pyodide.asm.wasm could not be compiled (damaged or incomplete file); rebuild the site with `python build_site.py`");
      }
    };
    loadPyodide(options).then((py) => (done(), resolve(py)), (err) => (done(), reject(err)));
  });
}

async function startPython(manifest, mark) {
  status(`Loading the Python runtime (Pyodide ${manifest.pyodide_version})…`);
  const indexURL = siteURL(manifest.pyodide);
  const py = await loadPyodideOrFail({ indexURL, stdout: (s) => console.log(s), stderr: (s) => console.warn(s) });
  mark("pyodide");
  status("Installing numpy and pycnn…");
  const problems = [];
  await py.loadPackage(["numpy", siteURL(manifest.pycnn_wheel)], {
    messageCallback: () => {},
    errorCallback: (msg) => problems.push(msg),
  });
  // loadPackage reports failures through errorCallback instead of rejecting.
  if (problems.length) throw new Error(`could not install Python packages: ${problems.join("; ")}`);
  mark("packages");
  return py;
}

// ---------------------------------------------------------------- IndexedDB
// The last model that is not the pretrained one (trained here or loaded from a
// file), as its .npz bytes, so it survives a reload.

const DB_NAME = "pycnn";
const STORE = "models";
const LAST_MODEL = "last";
// During a run, the model after its last finished epoch ({bytes, name, epoch,
// epochs, test_accuracy}, pycnn.web.checkpoint), so a reload keeps that progress.
const CHECKPOINT = "checkpoint";

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction failed"));
    });
  } finally {
    db.close();
  }
}

// Saving is a convenience: a browser without storage (private mode, full
// disk) still works, it only forgets the model on reload.
async function saveActiveModel() {
  try {
    const bytes = callPy("model_bytes");
    await withStore("readwrite", (store) => store.put(bytes, LAST_MODEL));
    return true;
  } catch (err) {
    console.warn("pycnn: could not keep the model in IndexedDB:", err);
    return false;
  }
}

async function forgetSavedModel() {
  try {
    await withStore("readwrite", (store) => store.delete(LAST_MODEL));
  } catch (err) {
    console.warn("pycnn: could not clear IndexedDB:", err);
  }
}

// What IndexedDB keeps under key, or null (nothing kept, or IndexedDB unusable).
async function readKept(key) {
  try {
    return (await withStore("readonly", (store) => store.get(key))) ?? null;
  } catch (err) {
    console.warn("pycnn: could not read IndexedDB:", err);
    return null;
  }
}

// After an epoch of the running training run ends, keep its model for a reload.
async function keepCheckpoint(slice) {
  if (!primary || slice.done || !slice.events.some((e) => e.kind === "epoch")) return;
  try {
    const checkpoint = callPy("checkpoint");
    if (checkpoint) await withStore("readwrite", (store) => store.put(checkpoint, CHECKPOINT));
  } catch (err) {
    console.warn("pycnn: could not keep the training run's progress in IndexedDB:", err);
  }
}

// The run ended here (done, stopped, diverged or failed): its outcome is saved as before.
async function dropCheckpoint() {
  if (!primary) return;
  try {
    await withStore("readwrite", (store) => store.delete(CHECKPOINT));
  } catch (err) {
    console.warn("pycnn: could not clear IndexedDB:", err);
  }
}

// A run that a reload interrupted: its last epoch's model made active and kept
// as the saved model. Returns {model, resumed: {name, epoch, epochs}} or null.
async function restoreCheckpoint() {
  const checkpoint = await readKept(CHECKPOINT);
  if (!checkpoint) return null;
  await dropCheckpoint();
  try {
    const model = callPy("load_model_file", checkpoint.bytes, "saved");
    await withStore("readwrite", (store) => store.put(checkpoint.bytes, LAST_MODEL));
    const { name, epoch, epochs } = checkpoint;
    return { model, resumed: { name, epoch, epochs } };
  } catch (err) {
    console.warn(`pycnn: the interrupted run's model was dropped: ${errorText(err)}`);
    return null;
  }
}

// The saved model made active, or null (nothing saved, or it no longer loads).
async function restoreSavedModel() {
  const bytes = await readKept(LAST_MODEL);
  if (!bytes) return null;
  try {
    return callPy("load_model_file", bytes, "saved");
  } catch (err) {
    console.warn(`pycnn: the saved model was dropped: ${errorText(err)}`);
    await forgetSavedModel();
    return null;
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

const handlers = {
  async init() {
    const t0 = performance.now();
    const timings = {};
    const mark = (name) => (timings[name] = Math.round(performance.now() - t0));
    status("Reading the site manifest…");
    const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes("manifest.json", "site manifest")));
    if (!manifest.pretrained) {
      throw new Error("this site was built without pretrained weights (static/pretrained.npz); create them with the CLI (see the README) and rebuild");
    }
    await checkFilesExist(manifest);
    // The weights download while Python starts; MNIST waits until the page needs it.
    const weightsP = fetchBytes(manifest.pretrained, "pretrained weights");
    const [py, weights] = await Promise.all([startPython(manifest, mark), weightsP]);
    pyodide = py;
    web = pyodide.pyimport("pycnn.web");
    primary = true;
    status("Loading the pretrained model…");
    let model;
    try {
      model = callPy("load_pretrained", weights);
    } catch (err) {
      throw new Error(`the pretrained weights (${manifest.pretrained}) could not be loaded: ${errorText(err)}`, { cause: err });
    }
    const resumed = await restoreCheckpoint();
    const restored = resumed ? resumed.model : await restoreSavedModel();
    mark("ready");
    return { model: restored || model, restored: Boolean(restored), resumed: resumed && resumed.resumed, timings, manifest,
      versions: { pycnn: manifest.pycnn_version, pyodide: manifest.pyodide_version } };
  },

  // MNIST as web/mnist.js parsed it: each part {shape, data}. Returns {train, test} counts.
  async set_dataset({ trainImages, trainLabels, testImages, testLabels }) {
    return callPy("set_dataset", trainImages.data, trainLabels.data, testImages.data, testLabels.data,
      trainImages.shape, testImages.shape);
  },

  async predict({ pixels, width, height }) {
    return callPy("predict", pixels, width, height, true);
  },

  // A model file chosen or dropped by the visitor: refused files leave the model as it was.
  async load_model({ bytes }) {
    const model = callPy("load_model_file", bytes, "file");
    evalToken++;
    return { model, saved: await saveActiveModel() };
  },

  async use_pretrained() {
    const model = callPy("use_pretrained");
    evalToken++;
    await forgetSavedModel();
    return { model };
  },

  // Evaluate the active model on the test set in slices; replies with the
  // report, or {cancelled: true} when the model changed or training began.
  async evaluate() {
    const token = ++evalToken;
    callPy("start_evaluation");
    for (;;) {
      await tick();
      if (token !== evalToken) return { cancelled: true };
      const slice = callPy("evaluation_slice", EVAL_SLICE_SECONDS);
      if (slice.report) return { cancelled: false, report: slice.report };
      self.postMessage({ type: "eval-progress", progress: slice.progress });
    }
  },

  async evaluation_cell({ label, predicted }) {
    return callPy("evaluation_cell", label, predicted);
  },

  async training_sample({ n }) {
    return callPy("training_sample", n);
  },

  async views() {
    return { filters: callPy("filters"), chart: callPy("chart") };
  },

  async train({ config }) {
    if (training) throw new Error("a training run is already going");
    const info = callPy("start_training", config);
    training = true;
    stopRequested = false;
    evalToken++; // an evaluation in progress would slow training down: drop it
    try {
      self.postMessage({ type: "train-start", info });
      for (;;) {
        // Let queued messages (stop, predict) run before the next slice.
        await tick();
        if (stopRequested) {
          const out = callPy("stop");
          if (out.kept) await saveActiveModel();
          return { reason: "stopped", ...out };
        }
        const slice = callPy("train_slice", SLICE_SECONDS);
        self.postMessage({ type: "train-progress", ...slice, filters: callPy("filters"), history: callPy("chart") });
        await keepCheckpoint(slice);
        if (slice.done) {
          if (!slice.diverged) await saveActiveModel();
          return { reason: slice.diverged ? "diverged" : "done", message: slice.diverged, model: slice.model };
        }
      }
    } catch (err) {
      try { callPy("stop"); } catch { /* the run is being abandoned anyway */ }
      throw err;
    } finally {
      training = false;
      await dropCheckpoint();
    }
  },

  async stop() {
    stopRequested = true;
    mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true })); // do not wait for the others' gradients
    return { running: training };
  },

  // ---- data-parallel training (see web/parallel.js and pycnn.web)

  // An extra worker: Python and pycnn only; its data comes with replica_start.
  async init_replica() {
    const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes("manifest.json", "site manifest")));
    await checkFilesExist(manifest);
    pyodide = await startPython(manifest, () => {});
    web = pyodide.pyimport("pycnn.web");
    return { ready: true };
  },

  // The first worker: a run on shard 0 of config.shards; ports link it to the others.
  async par_start({ config, ports }) {
    if (training) throw new Error("a training run is already going");
    const info = callPy("start_training", config, 0);
    training = true;
    stopRequested = false;
    evalToken++;
    mesh = new Mesh(0, ports, SILENCE_TIMEOUT_MS);
    shown = unshown();
    self.postMessage({ type: "train-start", info });
    return info;
  },

  async params() {
    return callPy("params");
  },

  async shard_data({ shard }) {
    return callPy("shard_data", shard);
  },

  async replica_start({ config, images, labels, shape, shard, params, ports }) {
    if (mesh) throw new Error("this worker is still in another training run");
    const out = callPy("start_replica", config, images, labels, shape, shard, params);
    training = true;
    stopRequested = false;
    mesh = new Mesh(shard, ports);
    return out;
  },

  // Every worker of the run: train step by step with the others until the run
  // ends. The first worker replies like "train": {reason, message, model} or
  // {reason: "stopped", kept, model}.
  async par_run() {
    const py = {
      compute: () => callPy("compute_gradients"),
      apply: (stats, grads) => {
        const slice = callPy("apply_gradients", stats, ...grads);
        collect(slice);
        return slice;
      },
      settle: settleEpoch,
      stopRequested: () => stopRequested,
      stop: () => callPy("stop"),
      solo: (err) => {
        callPy("go_solo");
        if (primary && !err.fromPage) self.postMessage({ type: "train-solo", reason: err.message });
      },
      idle: () => {
        if (shown.due) postProgress();
      },
      stats: (figures) => {
        shown.figures = figures;
      },
    };
    const mine = mesh;
    looping = true;
    try {
      const out = await trainShard(mine, py);
      if (!primary) return { reason: out.reason };
      if (out.reason === "stopped") {
        if (out.kept) await saveActiveModel();
        return out;
      }
      postProgress();
      if (!out.slice.diverged) await saveActiveModel();
      return { reason: out.reason, message: out.slice.diverged, model: out.slice.model };
    } catch (err) {
      mine?.close();
      try { callPy("stop"); } catch { /* the run is being abandoned anyway */ }
      throw err;
    } finally {
      looping = false;
      if (mesh === mine) mesh = null;
      training = false;
      if (primary) await dropCheckpoint();
    }
  },

  // The page: the other workers are gone (it closed them); the first one goes on alone.
  async par_solo({ reason }) {
    mesh?.interrupt(new MeshBroken(reason, { fromPage: true }));
    return {};
  },

  // The page ends this worker's part in a run (after the run, or because another worker failed).
  async par_stop() {
    if (looping) {
      if (primary) stopRequested = true; // it may be going on alone, without a mesh to interrupt
      mesh?.interrupt(new MeshBroken("the run was stopped", { stop: true }));
      return { kept: false, model: null }; // par_run ends the run
    }
    mesh?.close(); // a run set up but never started (the page failed to hand out the shards)
    mesh = null;
    const out = callPy("stop");
    training = false;
    if (primary && out.kept) await saveActiveModel();
    if (primary) await dropCheckpoint();
    return out;
  },

  async model_bytes() {
    return callPy("model_bytes");
  },
};

// The first worker posts the progress of data-parallel steps as the "train"
// request does for its slices, at most every REPORT_SECONDS, while it waits
// for the other workers' gradients: collect(slice) keeps a step's events and
// marks a report due.
const REPORT_SECONDS = 0.5;

function collect(slice) {
  if (!primary) return;
  shown.events.push(...slice.events);
  shown.last = slice;
  shown.due ||= slice.done || slice.events.some((e) => e.kind === "epoch") || performance.now() - shown.at >= REPORT_SECONDS * 1000;
}

function postProgress() {
  if (!shown.last) return;
  self.postMessage({ type: "train-progress", ...shown.last, events: shown.events, parallel: shown.figures,
    filters: callPy("filters"), history: callPy("chart") });
  shown = unshown(shown.figures);
}

// After the step that ends an epoch, the first worker evaluates the test set
// in slices (the others wait for its next gradients), hearing Stop between
// them. Returns the slice that ends the evaluation, or {stopped: true}.
async function settleEpoch(slice) {
  while (slice.evaluating && !slice.done) {
    if (shown.due) postProgress();
    await tick();
    if (stopRequested) return { stopped: true };
    slice = callPy("train_slice", SLICE_SECONDS, 0);
    collect(slice);
    await keepCheckpoint(slice);
  }
  if (shown.due) postProgress();
  return slice;
}

// The buffers of a reply's byte arrays (itself, or its values and its part's
// gradients) move to the page instead of being copied.
function transferables(result) {
  if (result instanceof Uint8Array) return [result.buffer];
  if (!result || typeof result !== "object") return [];
  const views = [...Object.values(result), result.part && result.part.grads];
  return views.filter((v) => v instanceof Uint8Array).map((v) => v.buffer);
}

self.onmessage = async (event) => {
  const { id, type, ...args } = event.data || {};
  try {
    const handler = handlers[type];
    if (!handler) throw new Error(`unknown request type ${JSON.stringify(type)}`);
    const result = await handler(args);
    self.postMessage({ id, result }, transferables(result));
  } catch (err) {
    self.postMessage({ id, error: errorText(err) });
  }
};
