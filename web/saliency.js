// "Which pixels decided": the saliency map of the drawn digit (pycnn.saliency,
// the gradient of a digit's score with respect to each input pixel), for the
// predicted digit or one the visitor picks. Python computes the map and its
// colours; this file asks after each prediction and paints the reply.

import { first } from "./connection.js";
import { currentInk, onPrediction } from "./drawing.js";
import { transfer } from "./peer.js";
import { blockImage } from "./views.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  panel: $("#learn-panel"),
  canvas: $("#saliency"),
  caption: $("#sal-caption"),
  explain: $("#sal-explain"),
  classes: $("#sal-classes"),
};

let target = null; // the digit whose score is explained; null: the predicted one
let inFlight = false;
let again = false;

function clearMap(text) {
  el.canvas.getContext("2d").clearRect(0, 0, 28, 28);
  el.canvas.dataset.target = "";
  el.caption.textContent = text;
}

async function refresh() {
  if (!el.panel.open) return;
  if (inFlight) {
    again = true;
    return;
  }
  inFlight = true;
  try {
    do {
      again = false;
      const ink = currentInk();
      if (!ink || !first) {
        clearMap("draw a digit to see them");
        continue;
      }
      const reply = await first.call("saliency", transfer(ink.pixels, [ink.pixels.buffer]), ink.width, ink.height, target);
      show(reply);
    } while (again);
  } catch (err) {
    clearMap(`(could not compute: ${err.message})`);
  } finally {
    inFlight = false;
  }
}

function show(reply) {
  el.canvas.getContext("2d").putImageData(blockImage(reply.image, 0), 0, 0);
  el.canvas.dataset.target = String(reply.target);
  const which = reply.target === reply.digit ? `the predicted ${reply.digit}` : `a ${reply.target} (the model says ${reply.digit})`;
  el.caption.textContent = `for ${which}`;
  el.canvas.setAttribute("aria-label", `Saliency map for ${which}: red pixels would raise that digit's score, blue ones lower it`);
  el.explain.textContent = reply.explanation;
}

function pick(value) {
  target = value;
  for (const b of el.classes.querySelectorAll("button")) b.setAttribute("aria-checked", String(b.dataset.value === String(value)));
  refresh();
}

/** Build the class picker and follow the drawing. */
export function setUpSaliency() {
  const options = [["predicted", null], ...Array.from({ length: 10 }, (_, d) => [String(d), d])];
  el.classes.replaceChildren(...options.map(([text, value]) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.dataset.value = String(value);
    b.setAttribute("role", "radio");
    b.setAttribute("aria-checked", String(value === null));
    b.setAttribute("aria-label", value === null ? "the predicted digit" : `digit ${value}`);
    b.addEventListener("click", () => pick(value));
    return b;
  }));
  // Arrow keys move between the choices, as in any radio group.
  el.classes.addEventListener("keydown", (event) => {
    const buttons = [...el.classes.querySelectorAll("button")];
    const i = buttons.indexOf(document.activeElement);
    if (i < 0 || !["ArrowRight", "ArrowLeft"].includes(event.key)) return;
    event.preventDefault();
    const next = buttons[(i + (event.key === "ArrowRight" ? 1 : buttons.length - 1)) % buttons.length];
    next.focus();
    next.click();
  });
  clearMap("draw a digit to see them");
  onPrediction(() => refresh());
  el.panel.addEventListener("toggle", refresh); // (a new model predicts again, which refreshes too)
}
