// The page's start-up: the worker and its Python, then every card wired to
// the store (web/store.js). Each card is its own module: drawing.js, models.js,
// training.js, workers.js, evaluation.js, insight.js, code.js, saliency.js, anatomy.js,
// handwriting.js, health.js. No numbers are learned, predicted or measured in
// JavaScript: they all come from pycnn.web.

import { setUpAnatomy } from "./anatomy.js";
import { setUpCode } from "./code.js";
import { connect } from "./connection.js";
import { predict, setUpDrawing } from "./drawing.js";
import { setUpEvaluation } from "./evaluation.js";
import { setUpHandwriting } from "./handwriting.js";
import { setUpHealth } from "./health.js";
import { refreshViews, setUpInsight, showFilters } from "./insight.js";
import { setManifest } from "./mnist.js";
import { modelMessage, setUpModels } from "./models.js";
import { keepForOffline } from "./offline.js";
import { proxy } from "./peer.js";
import { setUpSaliency } from "./saliency.js";
import { pageState, setPage, store, subscribe, take } from "./store.js";
import { setUpTraining, showChart } from "./training.js";
import { setUpWorkers } from "./workers.js";

const $ = (sel) => document.querySelector(sel);
const statusText = $("#status-text");
const versions = $("#versions");
let versionsText = "";

// The status line and the footer's versions, from the store.
function render(s) {
  statusText.textContent = s.page.boot === "error" ? `Error: ${s.page.error}` : s.page.status;
  const mnist = s.state?.mnist;
  versions.textContent = mnist && versionsText
    ? `${versionsText} · ${mnist.train.toLocaleString("en-US")} training and ${mnist.test.toLocaleString("en-US")} test images`
    : versionsText;
}

const fail = (message) => setPage({ boot: "error", error: message });

function greet(info) {
  if (info.resumed) {
    const r = info.resumed;
    modelMessage(`Training was interrupted by a reload: restored your ${r.name} after epoch ${r.epoch} of ${r.epochs} from this browser (a new run starts from scratch); “Back to pretrained” forgets it.`);
  } else if (info.restored) modelMessage("Restored your last model from this browser. “Back to pretrained” forgets it.");
}

// The filters and chart follow the model used for drawing (between runs).
function followModel() {
  let model = null;
  subscribe((s) => {
    const now = JSON.stringify(s.state?.model ?? null);
    if (now === model || !s.state?.model || pageState(s) === "training") return;
    model = now;
    refreshViews(showChart);
  });
}

async function start() {
  subscribe(render);
  setUpDrawing();
  setUpModels();
  setUpTraining(showFilters);
  setUpEvaluation();
  setUpInsight();
  setUpCode();
  setUpSaliency();
  setUpAnatomy();
  setUpHandwriting();
  setUpHealth();
  let first;
  try {
    first = connect(); // throws in browsers without module workers
  } catch (err) {
    fail(`this browser cannot run the page's module worker (${err.message}); use a current Chrome, Edge, Firefox or Safari`);
    return;
  }
  try {
    const t0 = performance.now();
    const info = await first.call("init", proxy((text) => setPage({ status: text })));
    console.info("pycnn: loading times (ms since the worker started)", JSON.stringify(info.timings));
    setManifest(info.manifest);
    store.defaults = info.defaults;
    versionsText = `pycnn ${info.manifest.pycnn_version} · Pyodide ${info.manifest.pyodide_version}`;
    greet(info);
    setUpWorkers(info.defaults.max_workers);
    take(info);
    setPage({ boot: "ready", status: `Ready in ${((performance.now() - t0) / 1000).toFixed(1)} s. Draw a digit, or train a model.` });
    followModel();
    keepForOffline(() => setPage({ status: "A new version of this site has been installed: reload the page to use it." }));
    predict();
  } catch (err) {
    if (store.page.boot !== "error") fail(err.message);
  }
}

start();
