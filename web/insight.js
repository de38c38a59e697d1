// "Inside the network" and "Training data": the first layer's filters (of
// the model used for drawing, or of the model being trained while a run
// goes) and a random sample of MNIST training images. Python draws both
// (pycnn.insight); this file places the tiles.

import { first } from "./connection.js";
import { needMnist } from "./mnist.js";
import { setPage, store, subscribe } from "./store.js";
import { drawTiles } from "./views.js";

const $ = (sel) => document.querySelector(sel);
const el = {
  filters: $("#filters"),
  caption: $("#filters-caption"),
  dataPanel: $("#data-panel"),
  resample: $("#resample"),
  dataset: $("#dataset"),
};

/** Draw pycnn.web.filters()'s block (null: the model has no convolution). */
export function showFilters(block) {
  if (!block) {
    el.filters.replaceChildren();
    el.caption.textContent = "(this model has no convolution)";
    return;
  }
  el.caption.textContent = `${block.layer} · ${block.count} filters ${block.height}×${block.width}`;
  drawTiles(el.filters, block, null, block.scale.map((m, k) => `filter ${k + 1}: largest weight ${m.toPrecision(3)}`));
}

/** The filters and the chart of the model used for drawing; onChart(series) draws the chart. */
export async function refreshViews(onChart) {
  try {
    const views = await first.call("views");
    showFilters(views.filters);
    onChart(views.chart);
  } catch (err) {
    setPage({ status: `Could not draw the network's filters: ${err.message}` });
  }
}

async function showSample() {
  el.resample.disabled = true;
  try {
    await needMnist((text) => (el.dataset.textContent = text));
    const sample = await first.call("trainingSample", 48);
    drawTiles(el.dataset, sample, sample.labels.map(String), sample.indices.map((i) => `training image #${i}`));
  } catch (err) {
    el.dataset.textContent = `Could not show training images: ${err.message}`;
  } finally {
    el.resample.disabled = false;
  }
}

export function setUpInsight() {
  el.resample.addEventListener("click", showSample);
  el.dataPanel.addEventListener("toggle", () => {
    if (el.dataPanel.open && !el.dataset.children.length && store.page.boot === "ready") showSample();
  });
  let ready = false;
  subscribe((s) => {
    el.resample.disabled = s.page.boot !== "ready";
    if (s.page.boot === "ready" && !ready) {
      ready = true;
      if (el.dataPanel.open) showSample();
    }
  });
}
