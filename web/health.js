// "Layer health": while a run trains, per layer the spread of its outputs, the
// size of its gradients and the ratio of each update to the weights, and the
// running training accuracy, over the steps (pycnn.health measures them in
// the worker; this file asks for the series as the run reports progress and
// draws them). The learning rate can change mid-run (pycnn.web.set_lr): it
// applies from the next step and a dashed line marks it on every chart.

import { ask, first } from "./connection.js";
import { subscribe } from "./store.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  panel: $("#health-panel"),
  charts: $("#health-charts"),
  lr: $("#health-lr"),
  apply: $("#health-apply"),
  message: $("#health-message"),
};
const PALETTE = ["#4263eb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#5c940d", "#f08c00"];
const CHARTS = [
  { key: "ratio", title: "update / weight", log: true, note: "|ΔW| / |W| per step: about 0.001 is healthy; 0.1 and above, the learning rate is too high" },
  { key: "grad", title: "gradient size", log: true, note: "root-mean-square of ∂L/∂W" },
  { key: "spread", title: "activation spread", log: true, note: "standard deviation of each layer's outputs; a layer near 0 has gone quiet" },
  { key: "accuracy", title: "running training accuracy", log: false, note: "share of this epoch's training images so far that the model got right as it trained on them" },
];

let series = null;
let asking = false;
let lastAsked = 0;

function chartBox(spec) {
  const fig = document.createElement("figure");
  fig.className = "health-chart";
  fig.dataset.key = spec.key;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  const cap = document.createElement("figcaption");
  fig.append(canvas, cap);
  return fig;
}

function lines(spec) {
  if (spec.key === "accuracy") return [["accuracy", series.accuracy]];
  return Object.entries(series[spec.key] ?? {});
}

function draw(fig, spec) {
  const canvas = fig.querySelector("canvas");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300;
  const h = canvas.clientHeight || 140;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 38, r: 8, t: 16, b: 18 };
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#495057";
  ctx.fillText(spec.title, pad.l, 11);
  const steps = series?.steps ?? [];
  const all = series ? lines(spec) : [];
  const values = all.flatMap(([, v]) => v).filter((v) => Number.isFinite(v) && (!spec.log || v > 0));
  // The caption is the legend: each line's name in its colour, with its latest value.
  const caption = fig.querySelector("figcaption");
  if (!all.length) caption.textContent = "Starts with the next training run.";
  else {
    caption.replaceChildren(...all.map(([name, v], i) => {
      const key = document.createElement("span");
      key.style.color = PALETTE[i % PALETTE.length];
      key.textContent = `${i ? " · " : ""}${name} ${fmt(v[v.length - 1])}`;
      return key;
    }));
  }
  if (!steps.length || !values.length) return;
  const t = (v) => (spec.log ? Math.log10(v) : v);
  let lo = spec.log ? Math.floor(t(Math.min(...values))) : 0;
  let hi = spec.log ? Math.ceil(t(Math.max(...values))) : 1;
  if (hi <= lo) hi = lo + 1;
  const x0 = steps[0];
  const x1 = Math.max(steps[steps.length - 1], x0 + 1);
  const X = (s) => pad.l + ((s - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (v) => h - pad.b - ((t(v) - lo) / (hi - lo)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#e9ecef";
  ctx.fillStyle = "#868e96";
  for (let d = lo; d <= hi; d += spec.log ? 1 : 0.25) {
    const y = spec.log ? Y(10 ** d) : Y(d);
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
    ctx.fillText(spec.log ? `1e${d}` : d.toFixed(2), 2, y + 4);
  }
  ctx.fillText(`step ${x1}`, w - pad.r - 50, h - 4);
  for (const mark of series.marks ?? []) {
    const x = X(mark.step);
    ctx.strokeStyle = "#212529";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(x, pad.t);
    ctx.lineTo(x, h - pad.b);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#212529";
    ctx.fillText(`lr ${mark.lr}`, x + 3, pad.t + 10);
  }
  all.forEach(([, v], i) => {
    ctx.strokeStyle = PALETTE[i % PALETTE.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    v.forEach((value, k) => {
      if (spec.log && !(value > 0)) return;
      const [x, y] = [X(steps[k]), Y(value)];
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  const legend = all.map(([name], i) => `${name} (${["blue", "orange", "green", "purple", "red", "teal", "olive", "amber"][i % 8]})`).join(", ");
  canvas.setAttribute("aria-label", `${spec.title} over ${steps.length} measured steps: ${legend}. ${spec.note}`);
}

const fmt = (v) => (v == null ? "–" : Math.abs(v) >= 0.01 ? v.toFixed(3) : v.toExponential(1));

function redraw() {
  if (!el.charts.children.length) el.charts.append(...CHARTS.map(chartBox));
  [...el.charts.children].forEach((fig, i) => draw(fig, CHARTS[i]));
  el.charts.dataset.points = String(series?.steps.length ?? 0);
  el.charts.dataset.marks = String(series?.marks.length ?? 0);
}

async function refresh() {
  if (asking || !el.panel.open || !first) return;
  asking = true;
  lastAsked = performance.now();
  try {
    series = await first.call("health");
    redraw();
  } catch { /* the next progress report asks again */ } finally {
    asking = false;
  }
}

async function applyLr() {
  const lr = Number(el.lr.value);
  try {
    const reply = await ask("setLr", lr);
    el.message.textContent = `Learning rate ${reply.mark.lr} from step ${reply.mark.step} on.`;
    el.message.classList.remove("bad");
    refresh();
  } catch (err) {
    el.message.textContent = err.message;
    el.message.classList.add("bad");
  }
}

function render(s) {
  const running = s.state?.phase === "training";
  const workers = s.state?.run?.workers ?? 1;
  el.apply.disabled = el.lr.disabled = !running || workers > 1;
  el.apply.title = workers > 1 ? "A data-parallel run keeps its learning rate" : "";
  // A run reports progress several times a second: ask for the series at most twice a second.
  if (s.state?.run && performance.now() - lastAsked > 500) refresh();
}

export function setUpHealth() {
  el.apply.addEventListener("click", applyLr);
  el.lr.addEventListener("keydown", (event) => event.key === "Enter" && applyLr());
  el.panel.addEventListener("toggle", refresh);
  new ResizeObserver(() => series && redraw()).observe(el.charts);
  redraw();
  subscribe(render);
}
