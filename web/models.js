// The model line under the drawing: which model draws (the store's
// state.model), and the buttons that change it: download its .npz, load a
// file (chosen or dropped), back to the pretrained one, use the previous one.

import { ask, first } from "./connection.js";
import { transfer } from "./peer.js";
import { pageState, store, subscribe } from "./store.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  name: $("#model-name"),
  download: $("#download"),
  upload: $("#upload"),
  pretrained: $("#pretrained"),
  previous: $("#previous"),
  message: $("#model-message"),
};

/** "your lenet, 1 epoch", "lenet from a file", ...: a ModelInfo in words. */
export function describe(model) {
  const epochs = `${model.epochs} epoch${model.epochs === 1 ? "" : "s"}`;
  const code = model.code ? `, trained with your code (${model.code.edited.join(", ")})` : "";
  const words = {
    trained: `your ${model.name}, ${model.stopped ?? epochs}`,
    file: `${model.name} from a file`,
    saved: `your last ${model.name} (kept in this browser)`,
  }[model.source] || `pretrained ${model.name}`;
  return words + code;
}

export function modelMessage(text, bad = false) {
  el.message.textContent = text;
  el.message.classList.toggle("bad", bad);
}

function render(s) {
  const model = s.state?.model;
  if (s.page.boot === "error" && !model) el.name.textContent = "not available";
  else if (model) {
    const acc = model.test_accuracy != null ? ` · test accuracy ${model.test_accuracy.toFixed(4)}` : "";
    el.name.textContent = `${describe(model)} · ${model.parameters.toLocaleString("en-US")} parameters${acc}`;
  }
  const ready = pageState(s) === "ready";
  el.upload.disabled = el.download.disabled = el.pretrained.disabled = el.previous.disabled = !ready;
  el.upload.parentElement.classList.toggle("disabled", !ready);
  el.pretrained.hidden = !model || model.source === "pretrained";
  const previous = s.state?.previous;
  el.previous.hidden = !previous;
  el.previous.title = previous ? `Draw with ${describe(previous)} again` : "";
}

// The model's .npz, as `pycnn train --save` writes it (usable with `pycnn evaluate`).
async function download() {
  try {
    const bytes = await first.call("modelBytes");
    const model = store.state.model;
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const name = model && model.source !== "pretrained" ? `pycnn-${model.name}.npz` : "pycnn-pretrained.npz";
    Object.assign(document.createElement("a"), { href: url, download: name }).click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    modelMessage(`Download failed: ${err.message}`, true);
  }
}

async function loadFile(file) {
  if (pageState(store) !== "ready") {
    modelMessage("Wait until the page is ready (and not training) to load a model.", true);
    return;
  }
  modelMessage(`Reading ${file.name}…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const reply = await ask("loadModel", transfer(bytes, [bytes.buffer]));
    modelMessage(`Loaded ${file.name}${reply.kept ? "; it will still be here after a reload" : ""}.`);
  } catch (err) {
    modelMessage(`${file.name} was not loaded: ${err.message}. The current model is still in use.`, true);
  }
}

async function change(method, text) {
  try {
    await ask(method);
    modelMessage(text);
  } catch (err) {
    modelMessage(`Could not switch models: ${err.message}`, true);
  }
}

// Drop a file anywhere on the page.
function acceptDrops() {
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth++;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (file) loadFile(file);
  });
}

export function setUpModels() {
  el.download.addEventListener("click", download);
  el.upload.addEventListener("change", () => {
    const file = el.upload.files[0];
    el.upload.value = ""; // choosing the same file again fires change again
    if (file) loadFile(file);
  });
  el.pretrained.addEventListener("click", () => change("usePretrained", "Back to the pretrained model; the saved one was forgotten."));
  el.previous.addEventListener("click", () => change("restorePrevious", "The previous model is used for drawing again; the other one is a click away."));
  acceptDrops();
  subscribe(render);
}
