// The drawing card: the canvas the visitor draws on, the prediction, its bars,
// the 28x28 input the network saw and the feature maps of "Inside the network".
// Python (pycnn.web.predict) preprocesses the ink and runs the model once for
// the probabilities and the maps; this file reads pixels and paints replies.

import { first } from "./connection.js";
import { transfer } from "./peer.js";
import { setPage, store, subscribe } from "./store.js";
import { blankTiles, drawMaps } from "./views.js";

const $ = (sel) => document.querySelector(sel);
const canvas = $("#draw-canvas");
const clear = $("#clear");
const prediction = $("#prediction");
const bars = $("#bars");
const maps = $("#maps");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const seen = $("#seen").getContext("2d");
const INK_WIDTH = 20; // in canvas pixels (280 wide): about MNIST's stroke after the 20x20 fit

let pen = null; // {x, y} of the last point while the pen is down
let inked = false; // the canvas holds ink (Clear empties it)

function canvasPoint(event) {
  const rect = canvas.getBoundingClientRect();
  return { x: ((event.clientX - rect.left) * canvas.width) / rect.width, y: ((event.clientY - rect.top) * canvas.height) / rect.height };
}

function strokeTo(p) {
  ctx.beginPath();
  ctx.moveTo(pen.x, pen.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  pen = p;
  inked = true;
}

// The ink's opacity, one byte per canvas pixel (row-major); Python does the rest.
function inkPixels() {
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const ink = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < ink.length; i++) ink[i] = rgba[4 * i + 3];
  return ink;
}

// At most one prediction in flight; strokes made meanwhile ask for one more, of the latest ink.
let inFlight = null;
let again = false;

export function predict() {
  if (!store.state?.model) return;
  if (inFlight) {
    again = true;
    return;
  }
  inFlight = (async () => {
    do {
      again = false;
      if (!inked) {
        show(null);
        continue;
      }
      const pixels = inkPixels();
      const reply = await first.call("predict", transfer(pixels, [pixels.buffer]), canvas.width, canvas.height);
      show(inked ? reply : null); // a reply that lands after Clear shows nothing
    } while (again);
  })().catch((err) => {
    prediction.textContent = "error";
    setPage({ status: `Prediction failed: ${err.message}` });
  }).finally(() => (inFlight = null));
}

// Paint the 28x28 network input (values in [0, 1], ink high) as dark ink on white.
function showSeen(image) {
  const pixels = seen.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = image ? 255 - Math.round(255 * image[i]) : 255;
    pixels.data.set([v, v, v, 255], 4 * i);
  }
  seen.putImageData(pixels, 0, 0);
}

const listeners = new Set();

/** Call `fn(reply)` after each prediction is shown (reply null: blank canvas). */
export function onPrediction(fn) {
  listeners.add(fn);
}

/** The canvas ink as predict takes it, {pixels, width, height}, or null when the canvas is blank. */
export function currentInk() {
  return inked ? { pixels: inkPixels(), width: canvas.width, height: canvas.height } : null;
}

// reply: pycnn.web.predict's {digit, probs, image, maps}, or null for a blank canvas.
function show(reply) {
  for (const fn of listeners) fn(reply);
  const digit = reply && reply.digit != null ? reply.digit : null;
  prediction.textContent = digit === null ? "draw a digit" : String(digit);
  prediction.classList.toggle("empty", digit === null);
  showSeen(digit === null ? null : reply.image);
  bars.querySelectorAll("li").forEach((li, d) => {
    const p = digit === null ? 0 : reply.probs[d];
    li.querySelector(".fill").style.transform = `scaleX(${p})`;
    li.querySelector(".pct").textContent = digit === null || p < 0.005 ? "" : `${Math.round(100 * p)}%`;
    li.classList.toggle("best", d === digit);
  });
  if (reply?.maps) drawMaps(maps, reply.maps);
  else for (const box of maps.querySelectorAll(".tiles")) blankTiles(box);
}

/** Build the bars, listen to the pen, and predict again whenever the model changes. */
export function setUpDrawing() {
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="digit">${d}</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    bars.append(li);
  }
  show(null);
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    Object.assign(ctx, { lineWidth: INK_WIDTH, lineCap: "round", lineJoin: "round", strokeStyle: "#111827" });
    pen = canvasPoint(event);
    strokeTo(canvasPoint(event));
    predict();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!pen) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) strokeTo(canvasPoint(e));
    predict();
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    canvas.addEventListener(type, () => {
      if (pen) predict();
      pen = null;
    });
  }
  clear.addEventListener("click", () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    inked = false;
    show(null);
  });
  let model = null;
  subscribe((s) => {
    clear.disabled = s.page.boot === "error";
    const now = JSON.stringify(s.state?.model ?? null);
    if (now !== model) {
      model = now;
      predict();
    }
  });
}
