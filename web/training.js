// The Train card: the form, Train and Stop, the progress bar and its two
// lines, the epochs table and the chart. What a run is doing, how far it got,
// its speed and its final message are the Session's (state.run: phase, label,
// speed, fraction, message); this file renders them and sends the form.

import { HistoryChart } from "./chart.js";
import { ask } from "./connection.js";
import { needMnist } from "./mnist.js";
import { pageState, setPage, store, subscribe, take } from "./store.js";
import { train } from "./workers.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  form: $("#train-form"),
  preset: $("#preset"),
  optimizer: $("#optimizer"),
  lr: $("#lr"),
  knobs: $("#seed-knobs"),
  train: $("#train"),
  stop: $("#stop"),
  message: $("#train-message"),
  fill: $("#progress-fill"),
  label: $("#progress-label"),
  speed: $("#progress-speed"),
  testAccuracy: $("#test-accuracy"),
  epochs: $("#epochs-table tbody"),
};

export const chart = new HistoryChart($("#chart"));
let chartEnd = 0; // the global step the running (or last) run ends at

export const showChart = (series) => chart.update(series, chartEnd);

function readConfig() {
  const form = new FormData(el.form);
  const number = (name) => (form.get(name) === null || form.get(name).trim() === "" ? NaN : Number(form.get(name)));
  const config = { preset: form.get("preset"), optimizer: form.get("optimizer") };
  for (const name of ["lr", "batch_size", "epochs", "train_size"]) config[name] = number(name);
  if (config.preset === "seed") {
    for (const name of ["n_filter", "filter_size", "stride", "padding"]) config[name] = number(name);
  }
  return config;
}

function formatSeconds(s) {
  s = Math.max(0, Math.round(s));
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

function placeholder(text) {
  const row = document.createElement("tr");
  row.className = "placeholder";
  row.innerHTML = `<td colspan="5"></td>`;
  row.firstChild.textContent = text;
  el.epochs.replaceChildren(row);
}

function addEpoch(e) {
  el.epochs.querySelector(".placeholder")?.remove();
  el.testAccuracy.textContent = e.test_accuracy.toFixed(4);
  const row = document.createElement("tr");
  for (const text of [e.epoch, e.loss.toFixed(4), e.train_accuracy.toFixed(4), e.test_accuracy.toFixed(4), formatSeconds(e.seconds)]) {
    row.append(Object.assign(document.createElement("td"), { textContent: text }));
  }
  el.epochs.append(row);
}

// Python has set the run up: from now on its state says what the run is doing.
function onStart(reply) {
  take(reply);
  setPage({ preparing: false, download: null });
  if (store.page.cancelled) ask("stop").catch(() => {}); // Stop was pressed while the run was being set up
  chartEnd = reply.chart_end;
  chart.setEnd(chartEnd);
  placeholder("Results appear as each epoch finishes.");
  el.testAccuracy.textContent = "";
  setPage({ status: `Training ${reply.model.name} on ${reply.train_size.toLocaleString("en-US")} images…` });
}

// report: {events, state, done, filters, chart} after a slice (or a few data-parallel steps).
function onProgress(report, showFilters) {
  take(report);
  for (const e of report.events) if (e.kind === "epoch") addEpoch(e);
  showChart(report.chart);
  if (report.filters) showFilters(report.filters);
}

// A run ended before reaching Python, or never ran: the page's own message.
function ended(message, status, bad = false) {
  setPage({ preparing: false, download: null, message: { text: message, bad }, status });
}

async function submit(showFilters) {
  if (pageState(store) !== "ready") return;
  const config = readConfig(); // before the form is disabled: FormData skips disabled inputs
  setPage({ preparing: true, cancelled: false, message: null, download: null });
  try {
    await needMnist((text, fraction) => setPage({ download: { text, fraction }, status: text }));
  } catch (err) {
    ended(`Training needs MNIST, which could not be loaded: ${err.message}`, "Ready. Training did not run: MNIST could not be loaded.", true);
    return;
  }
  const before = "Stopped before training began; the previous model is still used for drawing.";
  if (store.page.cancelled) return ended(before, "Ready. Training was stopped.");
  let reply;
  let started = false; // Python set the run up
  try {
    reply = await train(config, {
      onStart: (r) => {
        started = true;
        onStart(r);
      },
      onProgress: (r) => onProgress(r, showFilters),
      cancelled: () => store.page.cancelled,
    });
  } catch (err) {
    await ask("state").catch(() => {}); // the worker dropped the failed run: the page is ready again
    const how = started ? "Training failed" : "Training did not run";
    ended(err.message, `Ready. ${how}; see the message under the Train button.`, true);
    return;
  }
  if (!reply) return ended(before, "Ready. Training was stopped.");
  take(reply);
  const phase = reply.state.run?.phase;
  const status = { done: "Ready. Training finished.", stopped: "Ready. Training was stopped.", diverged: "Training stopped: the loss became NaN or infinite." };
  setPage({ preparing: false, status: status[phase] ?? "Ready." });
}

async function stop() {
  if (pageState(store) !== "training") return; // a click that lands after the run ended
  setPage({ cancelled: true });
  try {
    await ask("stop");
  } catch (err) {
    setPage({ status: `Stop failed: ${err.message}` });
  }
}

function render(s) {
  const page = pageState(s);
  const run = s.state?.run;
  el.train.disabled = page !== "ready";
  const stopping = s.state?.phase === "stopping" || (s.page.preparing && s.page.cancelled);
  el.stop.disabled = page !== "training" || stopping;
  el.stop.textContent = stopping ? "Stopping…" : "Stop";
  for (const input of el.form.querySelectorAll("select, input")) input.disabled = page === "training" || page === "error";
  const download = s.page.download;
  if (download) {
    el.label.textContent = download.text;
    el.fill.style.transform = `scaleX(${download.fraction})`;
  } else if (run) {
    el.label.textContent = run.label;
    el.speed.textContent = run.speed;
    el.fill.style.transform = `scaleX(${run.fraction})`;
  }
  // The page's own message (the run never reached Python) or the run's last word.
  const message = s.page.message ?? (run?.message ? { text: run.message, bad: run.phase === "diverged" } : null);
  el.message.textContent = message?.text ?? "";
  el.message.classList.toggle("bad", Boolean(message?.bad));
}

/** Wire the form; showFilters(block) draws the live filters of the model in training. */
export function setUpTraining(showFilters) {
  el.optimizer.addEventListener("change", () => {
    const lr = store.defaults?.lr[el.optimizer.value]; // pycnn.web.defaults(), read at start-up
    if (lr !== undefined) el.lr.value = String(lr);
  });
  const syncKnobs = () => (el.knobs.hidden = el.preset.value !== "seed");
  el.preset.addEventListener("change", syncKnobs);
  syncKnobs();
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(showFilters);
  });
  el.stop.addEventListener("click", stop);
  subscribe(render);
}
