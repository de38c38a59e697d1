// "One training step, taken apart": pycnn.anatomy runs one real training step
// (forward, loss, backward, update) of a copy of the model on the drawn digit,
// a test image or a mistake of the Evaluation panel's gallery, and sends every stage; this file steps through them.
// Shapes, formulas, numbers and pictures all come from Python.

import { first } from "./connection.js";
import { currentInk, onPrediction } from "./drawing.js";
import { needMnist } from "./mnist.js";
import { transfer } from "./peer.js";
import { store, subscribe } from "./store.js";
import { drawTiles } from "./views.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  label: $("#step-label"),
  take: $("#step-take"),
  testIndex: $("#step-test-index"),
  takeTest: $("#step-take-test"),
  prev: $("#step-prev"),
  next: $("#step-next"),
  count: $("#step-count"),
  summary: $("#step-summary"),
  stage: $("#step-stage"),
  title: $("#stage-title"),
  formula: $("#stage-formula"),
  explain: $("#stage-explain"),
  numbers: $("#stage-numbers"),
  picture: $("#stage-picture"),
};

let view = null; // the last step_apart reply
let at = 0; // the stage shown

const fmt = (v) => (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2));
const shapeText = (shape) => `(${shape.join(", ")})`;

function form() {
  const optimizer = $("#optimizer")?.value ?? "sgd";
  const lr = Number($("#lr")?.value);
  return { optimizer, lr: Number.isFinite(lr) && lr > 0 ? lr : null };
}

async function take(kind) {
  const { optimizer, lr } = form();
  el.take.disabled = el.takeTest.disabled = true;
  el.summary.textContent = "Taking one training step…";
  try {
    if (kind === "drawn") {
      const ink = currentInk();
      if (!ink) throw new Error("draw a digit first: the canvas is empty");
      view = await first.call("stepApart", transfer(ink.pixels, [ink.pixels.buffer]), ink.width, ink.height, Number(el.label.value), optimizer, lr);
    } else if (kind === "test") {
      await needMnist((text) => (el.summary.textContent = text));
      view = await first.call("stepApartTest", Number(el.testIndex.value), optimizer, lr);
    } else {
      view = await first.call("stepApartMistake", kind.mistake, optimizer, lr);
      el.testIndex.value = String(view.test_index);
      el.stage.closest("section").scrollIntoView({ block: "start" });
    }
    const on = view.test_index == null ? "your digit" : `test image #${view.test_index}`;
    el.summary.textContent = `On ${on}, labelled ${view.label} (the model says ${view.digit}): ${optimizer}, learning rate ${view.lr}. Loss ${fmt(view.loss)} → ${fmt(view.loss_after)} after the step. ${view.explanation}`;
    showStage(0);
  } catch (err) {
    el.summary.textContent = `Could not take the step: ${err.message}`;
  } finally {
    render(store);
  }
}

function bars(values, total, marked = null) {
  const box = document.createElement("div");
  box.className = "vbars";
  const top = Math.max(...values.map(Math.abs), 1e-12);
  values.forEach((v, k) => {
    const bar = document.createElement("span");
    bar.className = v < 0 ? "neg" : "pos";
    if (k === marked) bar.classList.add("marked");
    bar.style.height = `${(100 * Math.abs(v)) / top}%`;
    bar.title = `${k}: ${fmt(v)}`;
    box.append(bar);
  });
  const note = document.createElement("p");
  note.className = "hint";
  note.textContent = values.length < total ? `the first ${values.length} of ${total.toLocaleString("en-US")} values` : `${total} values`;
  return [box, note];
}

function tiles(block, caption, small) {
  const wrap = document.createElement("div");
  const h = document.createElement("p");
  h.className = "map-name";
  h.textContent = caption;
  const box = document.createElement("div");
  box.className = `tiles maps${small || block.height <= 12 ? " small" : ""}`;
  wrap.append(h, box);
  drawTiles(box, block);
  return wrap;
}

function showStage(i) {
  at = i;
  const s = view.stages[i];
  el.stage.hidden = false;
  el.stage.dataset.kind = s.kind;
  el.count.textContent = `Stage ${i + 1} of ${view.stages.length}`;
  el.title.textContent = s.shape ? `${s.title} · shape ${shapeText(s.shape)}` : s.title;
  el.formula.textContent = s.formula;
  el.explain.textContent = s.explanation;
  const parts = [];
  if (s.kind === "loss") {
    el.numbers.textContent = `Loss ${fmt(s.loss)} for label ${s.label} (probability ${(100 * s.probs[s.label]).toFixed(1)}%). Bars: ∂L/∂z, the gradient of each score.`;
    parts.push(...bars(s.values, s.values_total, s.label));
  } else if (s.kind === "update") {
    el.numbers.textContent = `Largest change ${fmt(s.largest_change ?? 0)}; the filters moved by ${(100 * (s.relative_change ?? 0)).toFixed(3)}% of their size.`;
    if (s.before) parts.push(tiles(s.before, "before", true), tiles(s.after, "after", true), tiles(s.change, "change (red: up, blue: down)", true));
  } else {
    const st = s.stats;
    const params = (s.params ?? []).map((p) => `${p.name} ${shapeText(p.shape)}: |∂L/∂${p.name.split(".")[1]}| = ${fmt(p.grad_norm)}`);
    el.numbers.textContent = [`min ${fmt(st.min)}, max ${fmt(st.max)}, mean ${fmt(st.mean)}, size ${fmt(st.norm)}`, ...params].join(" · ");
    if (s.maps) parts.push(tiles(s.maps, s.kind === "backward" ? "gradient per channel (red: positive, blue: negative)" : "one map per channel"));
    else parts.push(...bars(s.values, s.values_total));
    if (s.filter_grads) parts.push(tiles(s.filter_grads, "each filter's gradient ∂L/∂W", true));
  }
  el.picture.replaceChildren(...parts);
  render(store);
}

function render(s) {
  const ready = s.page.boot === "ready" && !!s.state?.model;
  el.take.disabled = el.takeTest.disabled = !ready;
  el.prev.disabled = !view || at === 0;
  el.next.disabled = !view || at === view.stages.length - 1;
}

// The Evaluation panel's mistakes: each tile (clicked, or Enter on it) takes its step, on its true label.
// Python knows the gallery; the page sends the tile's place in it.
function watchGallery() {
  const gallery = $("#gallery");
  const place = (event) => [...gallery.children].indexOf(event.target.closest(".tile"));
  gallery.addEventListener("click", (event) => place(event) >= 0 && take({ mistake: place(event) }));
  gallery.addEventListener("keydown", (event) => {
    if ((event.key === "Enter" || event.key === " ") && place(event) >= 0) {
      event.preventDefault();
      take({ mistake: place(event) });
    }
  });
  new MutationObserver(() => {
    for (const tile of gallery.children) {
      tile.tabIndex = 0;
      tile.setAttribute("role", "button");
      tile.setAttribute("aria-label", `${tile.title}. Take one training step on it`);
    }
  }).observe(gallery, { childList: true, subtree: true, attributes: true, attributeFilter: ["title"] });
}

export function setUpAnatomy() {
  watchGallery();
  el.label.replaceChildren(...Array.from({ length: 10 }, (_, d) => new Option(String(d), String(d))));
  el.take.addEventListener("click", () => take("drawn"));
  el.takeTest.addEventListener("click", () => take("test"));
  el.prev.addEventListener("click", () => view && at > 0 && showStage(at - 1));
  el.next.addEventListener("click", () => view && at < view.stages.length - 1 && showStage(at + 1));
  el.stage.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight") el.next.click();
    if (event.key === "ArrowLeft") el.prev.click();
  });
  el.stage.hidden = true;
  // The label starts as the model's guess for each new drawing, until the visitor picks one.
  el.label.addEventListener("change", () => (el.label.dataset.chosen = "1"));
  onPrediction((reply) => {
    if (!reply) delete el.label.dataset.chosen;
    else if (!el.label.dataset.chosen && reply.digit != null) el.label.value = String(reply.digit);
  });
  subscribe(render);
}
