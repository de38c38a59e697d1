// The page: drawing, controls, progress and charts. It talks to worker.js,
// which runs pycnn in Pyodide; no numbers are learned or predicted here.

import { HistoryChart } from "./chart.js";
import { loadMnist } from "./mnist.js";
import { keepForOffline } from "./offline.js";
import { WorkerPool } from "./parallel.js";
import { blankTiles, drawConfusion, drawMaps, drawPerClass, drawTiles, selectCell } from "./views.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  statusText: $("#status-text"),
  canvas: $("#draw-canvas"),
  clear: $("#clear"),
  prediction: $("#prediction"),
  bars: $("#bars"),
  modelName: $("#model-name"),
  download: $("#download"),
  upload: $("#upload"),
  pretrained: $("#pretrained"),
  modelMessage: $("#model-message"),
  filters: $("#filters"),
  filtersCaption: $("#filters-caption"),
  maps: $("#maps"),
  evalPanel: $("#eval-panel"),
  evaluate: $("#evaluate"),
  evalFill: $("#eval-fill"),
  evalStatus: $("#eval-status"),
  evalAccuracy: $("#eval-accuracy"),
  evalDetail: $("#eval-detail"),
  perClass: $("#per-class"),
  confusion: $("#confusion"),
  cellTitle: $("#cell-title"),
  cellNote: $("#cell-note"),
  cellImages: $("#cell-images"),
  gallery: $("#gallery"),
  dataPanel: $("#data-panel"),
  resample: $("#resample"),
  dataset: $("#dataset"),
  form: $("#train-form"),
  preset: $("#preset"),
  optimizer: $("#optimizer"),
  lr: $("#lr"),
  knobs: $("#seed-knobs"),
  train: $("#train"),
  stop: $("#stop"),
  message: $("#train-message"),
  progressFill: $("#progress-fill"),
  progressLabel: $("#progress-label"),
  progressSpeed: $("#progress-speed"),
  workers: $("#workers"),
  workersNote: $("#workers-note"),
  testAccuracy: $("#test-accuracy"),
  epochsBody: $("#epochs-table tbody"),
  versions: $("#versions"),
};

// ---------------------------------------------------------------- state

let modelReady = false; // a model is loaded in the worker: predictions can run
let evaluating = false; // an evaluation request is in flight

// body[data-state] is loading | ready | training | error; controls follow it.
function setState(state) {
  document.body.dataset.state = state;
  el.train.disabled = state !== "ready";
  el.stop.disabled = state !== "training";
  el.clear.disabled = state === "error";
  el.upload.disabled = state !== "ready";
  el.upload.parentElement.classList.toggle("disabled", state !== "ready");
  el.download.disabled = el.pretrained.disabled = state !== "ready";
  el.resample.disabled = state === "loading" || state === "error";
  el.evaluate.disabled = state !== "ready" || evaluating;
  for (const input of el.form.querySelectorAll("select, input")) input.disabled = state === "training" || state === "error";
}

function setStatus(text) {
  el.statusText.textContent = text;
}

function fail(message) {
  setStatus(`Error: ${message}`);
  if (!modelReady) el.modelName.textContent = "not available";
  setState("error");
}

// ---------------------------------------------------------------- worker

const pending = new Map();
let worker = null;
let pool = null; // the extra workers of data-parallel training (web/parallel.js)
let nextId = 1;

function call(type, args = {}, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...args }, transfer);
  });
}

const progressHandlers = {
  status: (msg) => setStatus(msg.text),
  "train-start": (msg) => onTrainStart(msg.info),
  "train-progress": (msg) => onTrainProgress(msg),
  "eval-progress": (msg) => onEvalProgress(msg.progress),
  "train-solo": (msg) => pool.wentSolo(msg.reason),
};

function onWorkerMessage(event) {
  const msg = event.data;
  if (msg.id !== undefined) {
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (!waiter) return;
    if ("error" in msg) waiter.reject(new Error(msg.error));
    else waiter.resolve(msg.result);
    return;
  }
  progressHandlers[msg.type]?.(msg);
}

// A worker that cannot even load (missing worker.js or pyodide.mjs) reports
// here, and so does one that fails later outside any request (Python out of memory).
function onWorkerError(event) {
  event.preventDefault();
  const detail = event.message || "the worker script or the Pyodide runtime could not be loaded";
  const message = modelReady
    ? `the Python worker stopped (${detail}); reload the page to start it again`
    : `${detail}. The site may be incomplete; rebuild it with \`python build_site.py\`.`;
  fail(message);
  for (const waiter of pending.values()) waiter.reject(new Error(message));
  pending.clear();
}

function startWorker() {
  const url = new URL("./worker.js", import.meta.url);
  worker = new Worker(url, { type: "module", name: "pycnn worker 1" });
  worker.onmessage = onWorkerMessage;
  worker.onerror = onWorkerError;
  pool = new WorkerPool(call, url);
}

// ---------------------------------------------------------------- workers
// One worker per core, less one for the page and the browser. Each extra one
// is a whole Python (the tab grew by about 170 MB with a second one): the
// default is at most DEFAULT_MOST, fewer on devices that report little memory,
// and they start only once the visitor turns to the Train card.

const MAX_WORKERS = 8;
const DEFAULT_MOST = 4;

function buildWorkerChoice() {
  const cores = navigator.hardwareConcurrency || 2;
  const most = Math.min(MAX_WORKERS, Math.max(2, cores));
  const memory = navigator.deviceMemory; // GB, Chromium only
  const chosen = Math.max(1, Math.min(cores - 1, DEFAULT_MOST, memory ? Math.floor(memory / 2) : DEFAULT_MOST));
  el.workers.replaceChildren(...Array.from({ length: most }, (_, i) => new Option(String(i + 1), String(i + 1), false, i + 1 === chosen)));
  el.workers.dataset.ready = "1"; // workers ready to train, the page's own included (hook for tests)
}

let workersWanted = false; // the visitor has turned to the Train card: extra workers may start
for (const type of ["pointerenter", "focusin", "touchstart"]) {
  $("#train-card").addEventListener(type, () => {
    if (workersWanted) return;
    workersWanted = true;
    prepareWorkers();
  }, { passive: true });
}

// Start (or close) extra workers as soon as the count is known, so Train does not wait for Python to load.
// Quietly (after a run, replacing failed workers) the note about the run stays.
function prepareWorkers(quietly = false) {
  if (!modelReady || !workersWanted) return;
  const extras = Number(el.workers.value) - 1;
  pool.resize(extras);
  el.workers.dataset.ready = "1"; // workers ready to train, the page's own included (hook for tests)
  if (!extras) return;
  if (!quietly) el.workersNote.classList.remove("bad");
  if (!quietly) el.workersNote.textContent = `Starting ${extras} more worker${extras > 1 ? "s" : ""}…`;
  const mine = [...pool.extras];
  Promise.allSettled(mine.map((e) => e.ready)).then((outcomes) => {
    if (mine.some((e) => !pool.extras.includes(e)) || pool.extras.length !== mine.length) return; // resized since
    const ready = 1 + outcomes.filter((o) => o.status === "fulfilled").length;
    el.workers.dataset.ready = String(ready);
    if (quietly || document.body.dataset.state === "training") return;
    const failed = outcomes.find((o) => o.status === "rejected");
    el.workersNote.classList.toggle("bad", Boolean(failed));
    el.workersNote.textContent = failed
      ? `Only ${ready} of ${extras + 1} workers could start (${failed.reason.message}); training will use ${ready}.`
      : `${ready} workers ready.`;
  });
}
el.workers.addEventListener("change", () => {
  workersWanted = true;
  prepareWorkers();
});

// Images/s of the training phase (tests excluded) of runs in this tab, per model, batch size and
// worker count, so a run with several workers can show its speed-up over one worker measured here.
const trainRates = new Map();
let rate = null; // {key, epoch, examples, seconds} of the running run's first report of its epoch

function rateKey(config, workers) {
  const { lr, epochs, train_size: size, optimizer, ...model } = config;
  return JSON.stringify({ ...model, workers });
}

function trackRate(p) {
  if (!rate || p.phase !== "train") return;
  if (rate.epoch !== p.epoch) Object.assign(rate, { epoch: p.epoch, examples: p.examples, seconds: p.seconds });
  else if (p.seconds - rate.seconds >= 1) trainRates.set(rate.key, (p.examples - rate.examples) / (p.seconds - rate.seconds));
}

// The first worker's figures of a data-parallel run, with its progress reports (twice a second).
function showWorkerStats(s) {
  const mine = rate && trainRates.get(rate.key);
  const one = rate && trainRates.get(rate.key.replace(/"workers":\d+/, '"workers":1'));
  const speedup = mine && one && s.workers === Number(JSON.parse(rate.key).workers) ? mine / one : null;
  const versus = speedup
    ? `${speedup.toFixed(2)}× the speed of one worker (${Math.round(one).toLocaleString("en-US")} images/s in this tab)`
    : `about ${s.speedup.toFixed(2)}× one worker's speed (estimated from their busy time; train with 1 worker to measure it)`;
  el.workersNote.classList.remove("bad");
  el.workersNote.textContent = `${s.workers} workers · ${versus} · ${s.waitMs.toFixed(1)} ms of each ${s.stepMs.toFixed(0)} ms step waiting for the others' gradients`;
  Object.assign(el.workersNote.dataset, { workers: s.workers, speedup: s.speedup.toFixed(3), measuredSpeedup: speedup ? speedup.toFixed(3) : "",
    waitMs: s.waitMs.toFixed(2), stepMs: s.stepMs.toFixed(2) });
}

function workerNote(text) {
  el.workersNote.textContent = text;
  el.workersNote.classList.add("bad");
  el.workersNote.dataset.fallback = text;
}

// ---------------------------------------------------------------- MNIST, on demand

let manifest = null; // the site's manifest.json, as the worker read it during init
let versionsText = "";
let mnistPromise = null; // the download and hand-over in progress or done; null until needed or after a failure
const mnistWatchers = new Set(); // show(text, fraction) of every view waiting for MNIST

const megabytes = (n) => (n / 1e6).toFixed(1);

// Resolve once the worker holds MNIST, downloading it on the first call. While
// it downloads, show(text, fraction) is called with the bytes loaded of the total.
async function needMnist(show) {
  if (document.body.dataset.mnist === "loaded") return;
  mnistWatchers.add(show); // before the download starts: it reports its total at once
  mnistPromise ??= fetchMnist().catch((err) => {
    mnistPromise = null; // a later request tries again
    document.body.dataset.mnist = "failed";
    if (document.body.dataset.state === "ready") setStatus(`Ready, but MNIST could not be loaded: ${err.message}`);
    throw err;
  });
  try {
    await mnistPromise;
  } finally {
    mnistWatchers.delete(show);
  }
}

async function fetchMnist() {
  document.body.dataset.mnist = "loading"; // absent | loading | loaded | failed (hook for tests)
  const onProgress = ({ loaded, total }) => {
    const text = `Downloading MNIST… ${megabytes(loaded)} of ${megabytes(total)} MB`;
    if (document.body.dataset.state === "ready") setStatus(text);
    for (const show of mnistWatchers) show(text, total ? loaded / total : 0);
  };
  const d = await loadMnist(manifest, onProgress);
  for (const show of mnistWatchers) show("Handing MNIST to Python…", 1);
  const parts = [d.trainImages, d.trainLabels, d.testImages, d.testLabels];
  const counts = await call("set_dataset", d, parts.map((p) => p.data.buffer));
  document.body.dataset.mnist = "loaded";
  el.versions.textContent = `${versionsText} · ${counts.train.toLocaleString("en-US")} training and ${counts.test.toLocaleString("en-US")} test images`;
  if (document.body.dataset.state === "ready") setStatus("Ready. MNIST is loaded.");
}

// ---------------------------------------------------------------- drawing

const ctx = el.canvas.getContext("2d", { willReadFrequently: true });
const INK_WIDTH = 20; // in canvas pixels (280 wide): about MNIST's stroke after the 20x20 fit
let drawing = null; // {x, y} of the last point while the pen is down
let inked = false;

function canvasPoint(event) {
  const rect = el.canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * el.canvas.width) / rect.width,
    y: ((event.clientY - rect.top) * el.canvas.height) / rect.height,
  };
}

function strokeTo(p) {
  ctx.beginPath();
  ctx.moveTo(drawing.x, drawing.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  drawing = p;
  inked = true;
}

el.canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  el.canvas.setPointerCapture(event.pointerId);
  ctx.lineWidth = INK_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#111827";
  drawing = canvasPoint(event);
  strokeTo(canvasPoint(event));
  requestPrediction();
});

el.canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) strokeTo(canvasPoint(e));
  requestPrediction();
});

for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  el.canvas.addEventListener(type, () => {
    if (drawing) requestPrediction();
    drawing = null;
  });
}

el.clear.addEventListener("click", () => {
  ctx.clearRect(0, 0, el.canvas.width, el.canvas.height);
  inked = false;
  showPrediction(null);
  showMaps(null);
});

// The ink's opacity, one byte per canvas pixel (row-major); Python does the rest.
function inkPixels() {
  const rgba = ctx.getImageData(0, 0, el.canvas.width, el.canvas.height).data;
  const ink = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < ink.length; i++) ink[i] = rgba[4 * i + 3];
  return ink;
}

// At most one prediction in flight; strokes made meanwhile trigger one more.
let predicting = false;
let predictAgain = false;

async function requestPrediction() {
  if (!modelReady) return;
  if (predicting) {
    predictAgain = true;
    return;
  }
  predicting = true;
  try {
    do {
      predictAgain = false;
      if (!inked) {
        showPrediction(null);
        continue;
      }
      const pixels = inkPixels();
      const result = await call("predict", { pixels, width: el.canvas.width, height: el.canvas.height }, [pixels.buffer]);
      showPrediction(inked ? result : null);
      showMaps(inked ? result.maps : null);
    } while (predictAgain);
  } catch (err) {
    el.prediction.textContent = "error";
    setStatus(`Prediction failed: ${err.message}`);
  } finally {
    predicting = false;
  }
}

function buildBars() {
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="digit">${d}</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    el.bars.append(li);
  }
}

const seen = $("#seen").getContext("2d");

// Paint the 28x28 network input (values in [0, 1], ink high) as dark ink on white.
function showSeen(image) {
  const pixels = seen.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = image ? 255 - Math.round(255 * image[i]) : 255;
    pixels.data.set([v, v, v, 255], 4 * i);
  }
  seen.putImageData(pixels, 0, 0);
}

function showPrediction(result) {
  const digit = result && result.digit != null ? result.digit : null;
  el.prediction.textContent = digit === null ? "draw a digit" : String(digit);
  el.prediction.classList.toggle("empty", digit === null);
  showSeen(digit === null ? null : result.image);
  el.bars.querySelectorAll("li").forEach((li, d) => {
    const p = digit === null ? 0 : result.probs[d];
    li.querySelector(".fill").style.transform = `scaleX(${p})`;
    li.querySelector(".pct").textContent = digit === null || p < 0.005 ? "" : `${Math.round(100 * p)}%`;
    li.classList.toggle("best", d === digit);
  });
}

let currentModel = null; // the info pycnn.web returned for the model used for drawing

function showModel(model) {
  if (!model) return;
  currentModel = model;
  const who = {
    trained: `your ${model.name}, ${model.epochs} epoch${model.epochs === 1 ? "" : "s"}`,
    file: `${model.name} from a file`,
    saved: `your last ${model.name} (kept in this browser)`,
  }[model.source] || `pretrained ${model.name}`;
  const acc = model.test_accuracy != null ? ` · test accuracy ${model.test_accuracy.toFixed(4)}` : "";
  el.modelName.textContent = `${who} · ${model.parameters.toLocaleString("en-US")} parameters${acc}`;
  el.pretrained.hidden = model.source === "pretrained";
}

// A new model is used for drawing: every view that depends on it follows.
function modelChanged(model) {
  showModel(model);
  requestPrediction();
  refreshViews();
  markReportStale();
  if (el.evalPanel.open) runEvaluation();
}

function modelMessage(text, bad = false) {
  el.modelMessage.textContent = text;
  el.modelMessage.classList.toggle("bad", bad);
}

// The active model's .npz, as `pycnn train --save` writes it (usable with `pycnn evaluate`).
el.download.addEventListener("click", async () => {
  try {
    const bytes = await call("model_bytes");
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const name = currentModel && currentModel.source !== "pretrained" ? `pycnn-${currentModel.name}.npz` : "pycnn-pretrained.npz";
    const a = Object.assign(document.createElement("a"), { href: url, download: name });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    modelMessage(`Download failed: ${err.message}`, true);
  }
});

// ---------------------------------------------------------------- model files

async function loadModelFile(file) {
  if (document.body.dataset.state !== "ready") {
    modelMessage("Wait until the page is ready (and not training) to load a model.", true);
    return;
  }
  modelMessage(`Reading ${file.name}…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const result = await call("load_model", { bytes }, [bytes.buffer]);
    modelMessage(`Loaded ${file.name}${result.saved ? "; it will still be here after a reload" : ""}.`);
    modelChanged(result.model);
  } catch (err) {
    modelMessage(`${file.name} was not loaded: ${err.message}. The current model is still in use.`, true);
  }
}

el.upload.addEventListener("change", () => {
  const file = el.upload.files[0];
  el.upload.value = ""; // choosing the same file again fires change again
  if (file) loadModelFile(file);
});

// Drop a file anywhere on the page.
let dragDepth = 0;
const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
document.addEventListener("dragenter", (event) => {
  if (!hasFiles(event)) return;
  dragDepth++;
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) document.body.classList.remove("dragging");
});
document.addEventListener("dragover", (event) => {
  if (hasFiles(event)) event.preventDefault();
});
document.addEventListener("drop", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  document.body.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) loadModelFile(file);
});

el.pretrained.addEventListener("click", async () => {
  try {
    const result = await call("use_pretrained");
    modelMessage("Back to the pretrained model; the saved one was forgotten.");
    modelChanged(result.model);
  } catch (err) {
    modelMessage(`Could not switch models: ${err.message}`, true);
  }
});

// ---------------------------------------------------------------- insight views

function showFilters(block) {
  if (!block) {
    el.filters.replaceChildren();
    el.filtersCaption.textContent = "(this model has no convolution)";
    return;
  }
  el.filtersCaption.textContent = `${block.layer} · ${block.count} filters ${block.height}×${block.width}`;
  drawTiles(el.filters, block, null, block.scale.map((m, k) => `filter ${k + 1}: largest weight ${m.toPrecision(3)}`));
}

function showMaps(maps) {
  if (maps) drawMaps(el.maps, maps);
  else for (const box of el.maps.querySelectorAll(".tiles")) blankTiles(box);
}

let chartEnd = 0; // the global step the running (or last) training run ends at

async function refreshViews() {
  try {
    const views = await call("views");
    showFilters(views.filters);
    chart.update(views.chart, chartEnd);
  } catch (err) {
    setStatus(`Could not draw the network's filters: ${err.message}`);
  }
}

async function showSample() {
  el.resample.disabled = true;
  try {
    await needMnist((text) => (el.dataset.textContent = text));
    const sample = await call("training_sample", { n: 48 });
    drawTiles(el.dataset, sample, sample.labels.map(String), sample.indices.map((i) => `training image #${i}`));
  } catch (err) {
    el.dataset.textContent = `Could not show training images: ${err.message}`;
  } finally {
    el.resample.disabled = document.body.dataset.state === "loading" || document.body.dataset.state === "error";
  }
}
el.resample.addEventListener("click", showSample);
el.dataPanel.addEventListener("toggle", () => {
  if (el.dataPanel.open && !el.dataset.children.length && modelReady) showSample();
});

// ---------------------------------------------------------------- evaluation

let report = null; // the last finished evaluation (maybe of an earlier model)
let reportStale = true;

function setEvalState(state) {
  el.evalPanel.dataset.state = state; // idle | running | done | stale (hook for tests)
}

function markReportStale() {
  reportStale = true;
  if (report) {
    setEvalState("stale");
    el.evalStatus.textContent = "These results are for the previous model.";
  }
}

function onEvalProgress(p) {
  el.evalFill.style.transform = `scaleX(${p.evaluated / p.total})`;
  el.evalStatus.textContent = `Evaluating… ${p.evaluated.toLocaleString("en-US")} of ${p.total.toLocaleString("en-US")} images`;
}

let evalCall = 0; // the latest runEvaluation call; older ones were cancelled by the worker

async function runEvaluation() {
  if (!modelReady || document.body.dataset.state === "training") return;
  const mine = ++evalCall;
  evaluating = true;
  el.evaluate.disabled = true;
  setEvalState("running");
  el.evalFill.style.transform = "scaleX(0)";
  el.evalStatus.textContent = "Evaluating…";
  try {
    await needMnist((text, fraction) => {
      if (mine !== evalCall) return;
      el.evalStatus.textContent = text;
      el.evalFill.style.transform = `scaleX(${fraction})`;
    });
    if (mine !== evalCall) return;
    if (document.body.dataset.state === "training") {
      setEvalState(report ? (reportStale ? "stale" : "done") : "idle");
      el.evalStatus.textContent = "Evaluation paused for training; it runs again when a new model is ready.";
      return;
    }
    el.evalStatus.textContent = "Evaluating…";
    const reply = await call("evaluate");
    if (mine !== evalCall) return; // a newer evaluation has taken over
    if (reply.cancelled) {
      // Training began: the last results stay, marked as they are.
      setEvalState(report ? (reportStale ? "stale" : "done") : "idle");
      el.evalStatus.textContent = "Evaluation paused for training; it runs again when a new model is ready.";
      return;
    }
    report = reply.report;
    reportStale = false;
    showReport(report);
  } catch (err) {
    if (mine !== evalCall) return;
    el.evalStatus.textContent = `Evaluation failed: ${err.message}`;
    setEvalState(report ? "stale" : "idle");
  } finally {
    if (mine === evalCall) {
      evaluating = false;
      el.evaluate.disabled = document.body.dataset.state !== "ready";
    }
  }
}

function showReport(r) {
  el.evalFill.style.transform = "scaleX(1)";
  el.evalAccuracy.textContent = r.accuracy.toFixed(4);
  el.evalAccuracy.dataset.value = String(r.accuracy);
  el.evalDetail.textContent = `${r.correct.toLocaleString("en-US")} of ${r.count.toLocaleString("en-US")} right · ${r.mistakes} mistakes`;
  const who = { trained: "your trained", file: "the loaded", saved: "your saved", pretrained: "the pretrained" }[r.model.source] || "the";
  el.evalStatus.textContent = `Results for ${who} ${r.model.name} model.`;
  drawPerClass(el.perClass, r);
  drawConfusion(el.confusion, r, showCell);
  selectCell(el.confusion, null);
  el.cellImages.replaceChildren();
  el.cellTitle.textContent = "Images in a cell";
  el.cellNote.textContent = "Click a cell of the matrix to see its test images.";
  const g = r.gallery;
  drawTiles(el.gallery, r.gallery_images,
    g.map((m) => `${m.label}→${m.predicted}\n${Math.round(100 * m.confidence)}%`),
    g.map((m) => `test image #${m.index}: a ${m.label}, predicted ${m.predicted} with probability ${m.confidence.toFixed(3)}`));
  setEvalState("done");
}

async function showCell(label, predicted, button) {
  selectCell(el.confusion, button);
  try {
    const cell = await call("evaluation_cell", { label, predicted });
    el.cellTitle.textContent = `True ${label}, predicted ${predicted}`;
    const shown = cell.cell_count > cell.count ? ` (the first ${cell.count} shown)` : "";
    el.cellNote.textContent = `${cell.cell_count.toLocaleString("en-US")} test image${cell.cell_count === 1 ? "" : "s"}${shown}.`;
    drawTiles(el.cellImages, cell, null, cell.indices.map((i) => `test image #${i}`));
  } catch (err) {
    el.cellNote.textContent = `Could not show the cell: ${err.message}`;
  }
}

el.evaluate.addEventListener("click", runEvaluation);
el.evalPanel.addEventListener("toggle", () => {
  if (el.evalPanel.open && reportStale && !evaluating) runEvaluation();
});

// ---------------------------------------------------------------- training

const chart = new HistoryChart($("#chart"));
const LR_DEFAULTS = { adam: "0.001", momentum: "0.01", sgd: "0.1" };

el.optimizer.addEventListener("change", () => {
  el.lr.value = LR_DEFAULTS[el.optimizer.value];
});
el.preset.addEventListener("change", syncKnobs);

function syncKnobs() {
  el.knobs.hidden = el.preset.value !== "seed";
}

function readConfig() {
  const form = new FormData(el.form);
  const number = (name) => (form.get(name) === null || form.get(name).trim() === "" ? NaN : Number(form.get(name)));
  const config = {
    preset: form.get("preset"),
    optimizer: form.get("optimizer"),
    lr: number("lr"),
    batch_size: number("batch_size"),
    epochs: number("epochs"),
    train_size: number("train_size"),
  };
  if (config.preset === "seed") {
    for (const name of ["n_filter", "filter_size", "stride", "padding"]) config[name] = number(name);
  }
  return config;
}

function formatSeconds(s) {
  if (!Number.isFinite(s)) return "";
  s = Math.max(0, Math.round(s));
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

function onTrainStart(info) {
  chartEnd = info.chart_end;
  chart.setEnd(chartEnd);
  showPlaceholder("Results appear as each epoch finishes.");
  el.testAccuracy.textContent = "";
  el.progressFill.style.transform = "scaleX(0)";
  el.progressLabel.textContent = `Epoch 1 of ${info.epochs} · 0 / ${info.train_size.toLocaleString("en-US")} images`;
  el.progressSpeed.textContent = "";
  setStatus(`Training ${info.model.name} on ${info.train_size.toLocaleString("en-US")} images…`);
}

function onTrainProgress(msg) {
  const p = msg.progress;
  trackRate(p);
  el.progressFill.style.transform = `scaleX(${p.fraction})`;
  if (p.phase === "test") {
    el.progressLabel.textContent = `Epoch ${p.epoch} of ${p.epochs} · measuring test accuracy…`;
  } else {
    el.progressLabel.textContent = `Epoch ${p.epoch} of ${p.epochs} · ${p.epoch_examples.toLocaleString("en-US")} / ${p.train_size.toLocaleString("en-US")} images`;
  }
  if (msg.done) {
    el.progressSpeed.textContent = `${Math.round(p.examples_per_second).toLocaleString("en-US")} images/s · took ${formatSeconds(p.seconds)}`;
  } else if (p.examples_per_second > 0) {
    el.progressSpeed.textContent = `${Math.round(p.examples_per_second).toLocaleString("en-US")} images/s · ${formatSeconds(p.eta_seconds)} left`;
  }
  for (const e of msg.events) {
    if (e.kind === "epoch") addEpoch(e);
  }
  if (msg.parallel && msg.parallel.workers > 1) showWorkerStats(msg.parallel);
  chart.update(msg.history, chartEnd);
  if (msg.filters) showFilters(msg.filters);
}

function showPlaceholder(text) {
  const row = document.createElement("tr");
  row.className = "placeholder";
  row.innerHTML = `<td colspan="5"></td>`;
  row.firstChild.textContent = text;
  el.epochsBody.replaceChildren(row);
}

function addEpoch(e) {
  el.epochsBody.querySelector(".placeholder")?.remove();
  el.testAccuracy.textContent = e.test_accuracy.toFixed(4);
  const row = document.createElement("tr");
  for (const text of [e.epoch, e.loss.toFixed(4), e.train_accuracy.toFixed(4), e.test_accuracy.toFixed(4), formatSeconds(e.seconds)]) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
  }
  el.epochsBody.append(row);
}

el.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (document.body.dataset.state !== "ready") return;
  el.message.textContent = "";
  el.message.classList.remove("bad");
  const config = readConfig(); // before setState: FormData skips disabled inputs
  el.stop.textContent = "Stop";
  setState("training");
  stopBeforeStart = false;
  try {
    await needMnist((text, fraction) => {
      el.progressLabel.textContent = text;
      el.progressFill.style.transform = `scaleX(${fraction})`;
      setStatus(text);
    });
  } catch (err) {
    el.message.textContent = `Training needs MNIST, which could not be loaded: ${err.message}`;
    el.message.classList.add("bad");
    setStatus("Ready. Training did not run: MNIST could not be loaded.");
    setState("ready");
    return;
  }
  if (stopBeforeStart) {
    el.stop.textContent = "Stop";
    el.message.textContent = "Stopped before training began; the previous model is still used for drawing.";
    setStatus("Ready. Training was stopped.");
    setState("ready");
    return;
  }
  const workers = Number(el.workers.value);
  rate = { key: rateKey(config, workers), epoch: 0 };
  el.workersNote.textContent = workers > 1 ? `Training with ${workers} workers…` : "";
  el.workersNote.classList.remove("bad");
  for (const key of Object.keys(el.workersNote.dataset)) delete el.workersNote.dataset[key];
  let result;
  try {
    result = workers > 1 ? await pool.train(config, { note: workerNote }) : await call("train", { config });
  } catch (err) {
    el.message.textContent = err.message;
    el.message.classList.add("bad");
    setStatus("Ready. Training did not run; see the message under the Train button.");
    setState("ready");
    return;
  }
  setState("ready");
  el.stop.textContent = "Stop";
  if (result.reason === "diverged") {
    el.message.textContent = result.message;
    el.message.classList.add("bad");
    setStatus("Training stopped: the loss became NaN or infinite.");
  } else if (result.reason === "stopped") {
    el.message.textContent = result.kept
      ? "Stopped. The model from the last finished epoch is now used for drawing."
      : "Stopped before the first epoch finished; the previous model is still used for drawing.";
    setStatus("Ready. Training was stopped.");
  } else {
    el.progressFill.style.transform = "scaleX(1)";
    el.message.textContent = "Done. Your model is now used for drawing.";
    setStatus("Ready. Training finished.");
  }
  if (result.model && (result.reason === "done" || result.kept)) modelChanged(result.model);
  else refreshViews(); // the filters go back to those of the model still in use
  if (pool.extras.length < Number(el.workers.value) - 1) prepareWorkers(true); // replace workers that failed
});

let stopBeforeStart = false; // Stop pressed while MNIST was still downloading for a run

el.stop.addEventListener("click", async () => {
  if (document.body.dataset.state !== "training") return; // a click that lands after the run ended
  el.stop.disabled = true;
  el.stop.textContent = "Stopping…";
  stopBeforeStart = true;
  try {
    await pool.stop();
  } catch (err) {
    setStatus(`Stop failed: ${err.message}`);
  }
});

// ---------------------------------------------------------------- start

async function start() {
  buildBars();
  buildWorkerChoice();
  showPrediction(null);
  syncKnobs();
  setState("loading");
  if (typeof DecompressionStream === "undefined") {
    fail("this browser lacks DecompressionStream; use a current Chrome, Edge, Firefox or Safari");
    return;
  }
  try {
    startWorker(); // throws in browsers without module workers
  } catch (err) {
    fail(`this browser cannot run the page's module worker (${err.message}); use a current Chrome, Edge, Firefox or Safari`);
    return;
  }
  try {
    const t0 = performance.now();
    const info = await call("init");
    console.info("pycnn: loading times (ms since the worker started)", JSON.stringify(info.timings));
    modelReady = true;
    manifest = info.manifest;
    document.body.dataset.mnist = "absent";
    showModel(info.model);
    if (info.resumed) {
      const r = info.resumed;
      modelMessage(`Training was interrupted by a reload: restored your ${r.name} after epoch ${r.epoch} of ${r.epochs} from this browser (a new run starts from scratch); “Back to pretrained” forgets it.`);
    } else if (info.restored) modelMessage("Restored your last model from this browser. “Back to pretrained” forgets it.");
    versionsText = el.versions.textContent = `pycnn ${info.versions.pycnn} · Pyodide ${info.versions.pyodide}`;
    setStatus(`Ready in ${((performance.now() - t0) / 1000).toFixed(1)} s. Draw a digit, or train a model.`);
    setState("ready");
    keepForOffline(() => setStatus("A new version of this site has been installed: reload the page to use it."));
    if (inked) requestPrediction();
    refreshViews();
    drawPerClass(el.perClass, null);
    drawConfusion(el.confusion, null, showCell);
    if (el.dataPanel.open) showSample();
    if (el.evalPanel.open) runEvaluation();
    prepareWorkers();
  } catch (err) {
    fail(err.message);
  }
}

start();
