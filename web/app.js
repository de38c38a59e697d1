// The page: drawing, controls, progress and charts. It talks to worker.js,
// which runs pycnn in Pyodide; no numbers are learned or predicted here.

import { LossChart } from "./chart.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  statusText: $("#status-text"),
  canvas: $("#draw-canvas"),
  clear: $("#clear"),
  prediction: $("#prediction"),
  bars: $("#bars"),
  modelName: $("#model-name"),
  download: $("#download"),
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
  testAccuracy: $("#test-accuracy"),
  epochsBody: $("#epochs-table tbody"),
  versions: $("#versions"),
};

// ---------------------------------------------------------------- state

let modelReady = false; // a model is loaded in the worker: predictions can run

// body[data-state] is loading | ready | training | error; controls follow it.
function setState(state) {
  document.body.dataset.state = state;
  el.train.disabled = state !== "ready";
  el.stop.disabled = state !== "training";
  el.clear.disabled = state === "error";
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

// A worker that cannot even load (missing worker.js or pyodide.mjs) reports here.
function onWorkerError(event) {
  event.preventDefault();
  const detail = event.message || "the worker script or the Pyodide runtime could not be loaded";
  const message = `${detail}. The site may be incomplete; rebuild it with \`python build_site.py\`.`;
  fail(message);
  for (const waiter of pending.values()) waiter.reject(new Error(message));
  pending.clear();
}

function startWorker() {
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = onWorkerMessage;
  worker.onerror = onWorkerError;
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

function showModel(model) {
  if (!model) return;
  const who = model.source === "trained" ? `your ${model.name}, ${model.epochs} epoch${model.epochs === 1 ? "" : "s"}` : `pretrained ${model.name}`;
  const acc = model.test_accuracy != null ? ` · test accuracy ${model.test_accuracy.toFixed(4)}` : "";
  el.modelName.textContent = `${who} · ${model.parameters.toLocaleString("en-US")} parameters${acc}`;
  el.download.hidden = model.source !== "trained";
}

// The active model's .npz, as `pycnn train --save` writes it (usable with `pycnn evaluate`).
el.download.addEventListener("click", async () => {
  try {
    const bytes = await call("model_bytes");
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const a = Object.assign(document.createElement("a"), { href: url, download: "pycnn-model.npz" });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    setStatus(`Download failed: ${err.message}`);
  }
});

// ---------------------------------------------------------------- training

const chart = new LossChart($("#chart"));
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
  chart.reset(info.epochs);
  showPlaceholder("Results appear as each epoch finishes.");
  el.testAccuracy.textContent = "";
  el.progressFill.style.transform = "scaleX(0)";
  el.progressLabel.textContent = `Epoch 1 of ${info.epochs} · 0 / ${info.train_size.toLocaleString("en-US")} images`;
  el.progressSpeed.textContent = "";
  setStatus(`Training ${info.model.name} on ${info.train_size.toLocaleString("en-US")} images…`);
}

function onTrainProgress(msg) {
  const p = msg.progress;
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
  for (const point of msg.chart) chart.add(point);
  for (const e of msg.events) {
    if (e.kind === "epoch") addEpoch(e);
  }
  chart.draw();
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
  chart.addTest(e.epoch, e.test_accuracy);
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
  setState("training");
  let result;
  try {
    result = await call("train", { config });
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
  if (result.model) {
    showModel(result.model);
    requestPrediction();
  }
});

el.stop.addEventListener("click", async () => {
  el.stop.disabled = true;
  el.stop.textContent = "Stopping…";
  try {
    await call("stop");
  } catch (err) {
    setStatus(`Stop failed: ${err.message}`);
  }
});

// ---------------------------------------------------------------- start

async function start() {
  buildBars();
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
    showModel(info.model);
    el.versions.textContent = `pycnn ${info.versions.pycnn} · Pyodide ${info.versions.pyodide} · ${info.dataset.train.toLocaleString("en-US")} training and ${info.dataset.test.toLocaleString("en-US")} test images`;
    setStatus(`Ready in ${((performance.now() - t0) / 1000).toFixed(1)} s. Draw a digit, or train a model.`);
    setState("ready");
    if (inked) requestPrediction();
  } catch (err) {
    fail(err.message);
  }
}

start();
