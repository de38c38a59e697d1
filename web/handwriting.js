// "Teach it your handwriting": "This is a …" keeps the drawn digit (as the
// network sees it, 28x28 from pycnn.web.user_digit) with its label in
// IndexedDB (database "pycnn-digits", through idb-keyval); the gallery edits
// them; Fine-tune trains the current model a few seconds on MNIST mixed with
// them (pycnn.userdigits) and shows before/after; the digits download as the
// .npz that `python -m pycnn train --extra` mixes in, and load back.
// The gallery's digits live in store.page.digits ([{id, image, label}]).

import { ask, first } from "./connection.js";
import { currentInk, onPrediction } from "./drawing.js";
import { needMnist } from "./mnist.js";
import { transfer } from "./peer.js";
import { setPage, store, subscribe } from "./store.js";
import { createStore, del, entries, set } from "./vendor/idb-keyval.js";

const db = createStore("pycnn-digits", "digits");
const FINE_TUNE_SECONDS = 3;
const $ = (sel) => document.querySelector(sel);
const el = {
  label: $("#teach-label"),
  keep: $("#teach-keep"),
  gallery: $("#hand-gallery"),
  count: $("#hand-count"),
  tune: $("#fine-tune"),
  download: $("#digits-download"),
  upload: $("#digits-upload"),
  message: $("#hand-message"),
  results: $("#tune-results"),
};
let busy = false;

const say = (text, bad = false) => {
  el.message.textContent = text;
  el.message.classList.toggle("bad", bad);
};

async function quietly(what, action) {
  try {
    return await action();
  } catch (err) {
    say(`Could not ${what} in this browser's storage (${err.message}); they stay until the page is closed.`, true);
    return null;
  }
}

async function load() {
  const all = (await quietly("read your digits", () => entries(db))) ?? [];
  setPage({ digits: all.map(([id, d]) => ({ id, ...d })).sort((a, b) => a.id - b.id) });
}

async function add(image, label) {
  const id = Date.now() * 1000 + Math.floor(Math.random() * 1000);
  const digit = { image, label };
  await quietly("keep your digit", () => set(id, digit, db));
  return { id, ...digit };
}

async function keepDrawn() {
  const ink = currentInk();
  if (!ink) return say("Draw a digit first.", true);
  try {
    const reply = await first.call("userDigit", transfer(ink.pixels, [ink.pixels.buffer]), ink.width, ink.height);
    const digit = await add(reply.image, Number(el.label.value));
    setPage({ digits: [...store.page.digits, digit] });
    say(`Kept as a ${digit.label} (the model reads it as a ${reply.digit}). ${store.page.digits.length} of your digits so far.`);
  } catch (err) {
    say(`Could not keep the digit: ${err.message}`, true);
  }
}

function packed(digits) {
  const images = new Uint8Array(784 * digits.length);
  digits.forEach((d, k) => images.set(d.image, 784 * k));
  return { images, labels: Uint8Array.from(digits.map((d) => d.label)) };
}

function paint(canvas, image) {
  const px = canvas.getContext("2d").createImageData(28, 28);
  for (let i = 0; i < 784; i++) px.data.set([image[i], image[i], image[i], 255], 4 * i); // white on black, as MNIST; CSS shows ink on paper
  canvas.getContext("2d").putImageData(px, 0, 0);
}

function tile(d, k) {
  const fig = document.createElement("figure");
  fig.className = "tile hand";
  const canvas = Object.assign(document.createElement("canvas"), { width: 28, height: 28 });
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `your digit ${k + 1}, labelled ${d.label}`);
  paint(canvas, d.image);
  const select = document.createElement("select");
  select.setAttribute("aria-label", `label of your digit ${k + 1}`);
  select.append(...Array.from({ length: 10 }, (_, v) => new Option(String(v), String(v))));
  select.value = String(d.label);
  select.addEventListener("change", async () => {
    const changed = { ...d, label: Number(select.value) };
    await quietly("change the label", () => set(d.id, { image: d.image, label: changed.label }, db));
    setPage({ digits: store.page.digits.map((x) => (x.id === d.id ? changed : x)) });
  });
  const remove = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Remove" });
  remove.setAttribute("aria-label", `remove your digit ${k + 1}`);
  remove.addEventListener("click", async () => {
    await quietly("remove the digit", () => del(d.id, db));
    setPage({ digits: store.page.digits.filter((x) => x.id !== d.id) });
  });
  fig.append(canvas, select, remove);
  return fig;
}

async function fineTune() {
  const digits = store.page.digits;
  busy = true;
  render(store);
  el.results.replaceChildren();
  try {
    await needMnist((text) => say(text));
    say(`Fine-tuning for ${FINE_TUNE_SECONDS} s on MNIST mixed with your ${digits.length} digits…`);
    const { images, labels } = packed(digits);
    const reply = await ask("fineTune", images, labels, FINE_TUNE_SECONDS);
    say(reply.message, reply.dropped);
    showResults(digits, reply);
  } catch (err) {
    say(`Fine-tuning failed: ${err.message}`, true);
  } finally {
    busy = false;
    render(store);
  }
}

function showResults(digits, reply) {
  const pct = (p) => `${(100 * p).toFixed(0)}%`;
  const head = document.createElement("tr");
  head.innerHTML = "<th scope='col'>Digit</th><th scope='col'>Label</th><th scope='col'>Before</th><th scope='col'>After</th>";
  const rows = reply.digits.map((r, k) => {
    const tr = document.createElement("tr");
    const cell = document.createElement("td");
    const canvas = Object.assign(document.createElement("canvas"), { width: 28, height: 28 });
    paint(canvas, digits[k].image);
    cell.append(canvas);
    tr.append(cell);
    for (const text of [String(r.label), `${r.before} (${pct(r.before_p)} a ${r.label})`, `${r.after} (${pct(r.after_p)} a ${r.label})`]) {
      tr.append(Object.assign(document.createElement("td"), { textContent: text }));
    }
    tr.classList.toggle("fixed", r.before !== r.label && r.after === r.label);
    return tr;
  });
  const caption = Object.assign(document.createElement("caption"), { textContent: "Each of your digits: the model's reading before and after fine-tuning" });
  el.results.replaceChildren(caption, head, ...rows);
}

async function download() {
  try {
    const { images, labels } = packed(store.page.digits);
    const bytes = await first.call("digitsFile", images, labels);
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    Object.assign(document.createElement("a"), { href: url, download: "my_digits.npz" }).click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    say(`Could not make the file: ${err.message}`, true);
  }
}

async function upload() {
  const file = el.upload.files[0];
  el.upload.value = "";
  if (!file) return;
  try {
    const reply = await first.call("readDigitsFile", new Uint8Array(await file.arrayBuffer()));
    const added = [];
    for (let k = 0; k < reply.count; k++) added.push(await add(reply.images.slice(784 * k, 784 * (k + 1)), reply.labels[k]));
    setPage({ digits: [...store.page.digits, ...added] });
    say(`Loaded ${reply.count} digits from ${file.name}.`);
  } catch (err) {
    say(`Could not load ${file.name}: ${err.message}`, true);
  }
}

let shown = null;
function render(s) {
  const ready = s.page.boot === "ready" && !!s.state?.model;
  const training = ["training", "stopping"].includes(s.state?.phase) || s.page.preparing;
  const digits = s.page.digits ?? [];
  el.keep.disabled = !ready;
  el.tune.disabled = !ready || busy || training || !digits.length;
  el.tune.title = training ? "Wait for the training run to end" : digits.length ? "" : "Keep a few of your digits first";
  el.download.disabled = el.upload.disabled = !ready || !digits.length;
  el.upload.disabled = !ready;
  el.count.textContent = digits.length ? `${digits.length} digit${digits.length === 1 ? "" : "s"}` : "none yet: draw one above and press “Keep it”";
  if (shown !== digits) {
    shown = digits;
    el.gallery.replaceChildren(...digits.map(tile));
  }
}

export function setUpHandwriting() {
  el.label.replaceChildren(...Array.from({ length: 10 }, (_, d) => new Option(String(d), String(d))));
  el.label.addEventListener("change", () => (el.label.dataset.chosen = "1"));
  onPrediction((reply) => {
    if (!reply) delete el.label.dataset.chosen;
    else if (!el.label.dataset.chosen && reply.digit != null) el.label.value = String(reply.digit);
  });
  el.keep.addEventListener("click", keepDrawn);
  el.tune.addEventListener("click", fineTune);
  el.download.addEventListener("click", download);
  el.upload.addEventListener("change", upload);
  subscribe(render);
  load();
}
