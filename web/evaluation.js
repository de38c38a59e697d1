// The Evaluation panel: the model used for drawing on the 10,000 test images,
// in slices (pycnn.web.evaluation_slice) with a progress bar, then the report
// Python computed: accuracy, per-digit bars, the confusion matrix and its
// cells, the gallery of mistakes. Whether the report is of the current model,
// and whether an evaluation was cancelled, comes from the Session's state.

import { ask, first } from "./connection.js";
import { needMnist } from "./mnist.js";
import { proxy } from "./peer.js";
import { pageState, setPage, store, subscribe, take } from "./store.js";
import { drawConfusion, drawPerClass, drawTiles, selectCell } from "./views.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  panel: $("#eval-panel"),
  evaluate: $("#evaluate"),
  fill: $("#eval-fill"),
  status: $("#eval-status"),
  accuracy: $("#eval-accuracy"),
  detail: $("#eval-detail"),
  perClass: $("#per-class"),
  confusion: $("#confusion"),
  cellTitle: $("#cell-title"),
  cellNote: $("#cell-note"),
  cellImages: $("#cell-images"),
  gallery: $("#gallery"),
};
const PAUSED = "Evaluation paused for training; it runs again when a new model is ready.";
const count = (n) => n.toLocaleString("en-US");

let shown = null; // "Results for the pretrained lenet model.": a report is on screen (maybe of an earlier model)
let note = null; // what the status says instead of the results line: paused for training, a failure
let queue = Promise.resolve(); // evaluations run one after the other: a cancelled one ends before the next starts

function showProgress(p) {
  el.fill.style.transform = `scaleX(${p.evaluated / p.total})`;
  el.status.textContent = `Evaluating… ${count(p.evaluated)} of ${count(p.total)} images`;
}

async function evaluateOnce() {
  if (pageState(store) !== "ready") return;
  note = null;
  setPage({ evaluating: true });
  el.fill.style.transform = "scaleX(0)";
  el.status.textContent = "Evaluating…";
  try {
    await needMnist((text, fraction) => {
      el.status.textContent = text;
      el.fill.style.transform = `scaleX(${fraction})`;
    });
    if (pageState(store) !== "ready") {
      note = PAUSED;
      return;
    }
    el.status.textContent = "Evaluating…";
    const reply = await ask("evaluate", proxy((r) => {
      take(r);
      showProgress(r.progress ?? r.evaluation);
    }));
    if (reply.cancelled) note = pageState(store) === "training" ? PAUSED : null; // else the new model's turn comes next
    else showReport(reply.report);
  } catch (err) {
    note = `Evaluation failed: ${err.message}`;
  } finally {
    setPage({ evaluating: false });
  }
}

/** Evaluate the model used for drawing (after any evaluation already going ends). */
export function evaluate() {
  queue = queue.then(evaluateOnce);
  return queue;
}

function showReport(r) {
  el.fill.style.transform = "scaleX(1)";
  el.accuracy.textContent = r.accuracy.toFixed(4);
  el.accuracy.dataset.value = String(r.accuracy);
  el.detail.textContent = `${count(r.correct)} of ${count(r.count)} right · ${r.mistakes} mistakes`;
  const who = { trained: "your trained", file: "the loaded", saved: "your saved", pretrained: "the pretrained" }[r.model.source] || "the";
  shown = `Results for ${who} ${r.model.name} model.`;
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
}

async function showCell(label, predicted, button) {
  selectCell(el.confusion, button);
  try {
    const cell = await first.call("evaluationCell", label, predicted);
    el.cellTitle.textContent = `True ${label}, predicted ${predicted}`;
    const some = cell.cell_count > cell.count ? ` (the first ${cell.count} shown)` : "";
    el.cellNote.textContent = `${count(cell.cell_count)} test image${cell.cell_count === 1 ? "" : "s"}${some}.`;
    drawTiles(el.cellImages, cell, null, cell.indices.map((i) => `test image #${i}`));
  } catch (err) {
    el.cellNote.textContent = `Could not show the cell: ${err.message}`;
  }
}

// body of the panel: idle | running | done | stale (hook for tests).
function render(s) {
  const report = s.state?.report ?? "none";
  el.panel.dataset.state = s.page.evaluating ? "running" : shown ? (report === "current" ? "done" : "stale") : "idle";
  el.evaluate.disabled = pageState(s) !== "ready" || s.page.evaluating;
  if (s.page.evaluating) return; // the evaluation writes its progress
  const results = shown && (report === "current" ? shown : "These results are for the previous model.");
  el.status.textContent = note ?? (results || "Not evaluated yet.");
}

export function setUpEvaluation() {
  drawPerClass(el.perClass, null);
  drawConfusion(el.confusion, null, showCell);
  el.evaluate.addEventListener("click", evaluate);
  el.panel.addEventListener("toggle", () => {
    if (el.panel.open && store.state?.report !== "current" && !store.page.evaluating) evaluate();
  });
  let model = null;
  subscribe((s) => {
    render(s);
    // A new model is used for drawing (or the page just became ready): evaluate it if the panel is open.
    const now = s.page.boot === "ready" ? JSON.stringify(s.state?.model ?? null) : null;
    if (now !== model) {
      const changed = model !== null || now !== null;
      model = now;
      if (changed && now && el.panel.open && pageState(s) === "ready") evaluate();
    }
  });
}
