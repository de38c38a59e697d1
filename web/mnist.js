// MNIST for the page, fetched on the main thread only when something needs it
// (training, the evaluation, the training-data view), so a first visit never
// downloads it. The four .gz files go to Python as they arrive
// (pycnn.web.set_mnist decompresses and parses them); this file only counts bytes.

import { ask } from "./connection.js";
import { transfer } from "./peer.js";
import { pageState, setPage, store } from "./store.js";

const PARTS = ["train_images", "train_labels", "test_images", "test_labels"];

// The body of `url` as bytes; onBytes(n) is called as each chunk of n bytes arrives.
async function fetchCounting(url, path, onBytes) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`could not fetch ${path} (MNIST): ${err.message}`, { cause: err });
  }
  if (!response.ok) {
    throw new Error(`${path} (MNIST) is missing from the site (HTTP ${response.status}); rebuild it with \`python build_site.py\``);
  }
  const chunks = [];
  let length = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
    onBytes(value.length);
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

/**
 * Fetch the four MNIST files the site's manifest lists ({mnist: {train_images: path, ...},
 * files: {path: {bytes}}}), relative to baseURL. onProgress({loaded, total}) as bytes
 * arrive, total from the manifest. Returns the four files' bytes in PARTS order.
 */
export async function fetchMnist(manifest, onProgress = () => {}, baseURL = document.baseURI) {
  const paths = PARTS.map((key) => manifest.mnist[key]);
  let total = paths.reduce((sum, path) => sum + (manifest.files?.[path]?.bytes || 0), 0);
  let loaded = 0;
  onProgress({ loaded, total });
  const onBytes = (n) => {
    loaded += n;
    total = Math.max(total, loaded); // a host that inflates the files sends more than the manifest says
    onProgress({ loaded, total });
  };
  return Promise.all(paths.map((path) => fetchCounting(new URL(path, baseURL).href, path, onBytes)));
}

let manifest = null;
let download = null; // the download and hand-over in progress; null until needed, and after a failure
const watchers = new Set(); // show(text, fraction) of every view waiting for MNIST

export const setManifest = (m) => (manifest = m);
const megabytes = (n) => (n / 1e6).toFixed(1);

async function load() {
  setPage({ mnist: "loading" });
  const files = await fetchMnist(manifest, ({ loaded, total }) => {
    const text = `Downloading MNIST… ${megabytes(loaded)} of ${megabytes(total)} MB`;
    if (pageState(store) === "ready") setPage({ status: text });
    for (const show of watchers) show(text, total ? loaded / total : 0);
  });
  for (const show of watchers) show("Handing MNIST to Python…", 1);
  await ask("setMnist", ...files.map((bytes) => transfer(bytes, [bytes.buffer])));
  if (pageState(store) === "ready") setPage({ status: "Ready. MNIST is loaded." });
}

/**
 * Resolve once Python holds MNIST, downloading it on the first call. While it
 * downloads, show(text, fraction) is called with the bytes loaded of the total.
 */
export async function needMnist(show = () => {}) {
  if (store.state?.mnist) return;
  watchers.add(show); // before the download starts: it reports its total at once
  download ??= load().catch((err) => {
    download = null; // a later request tries again
    setPage({ mnist: "failed" });
    if (pageState(store) === "ready") setPage({ status: `Ready, but MNIST could not be loaded: ${err.message}` });
    throw err;
  });
  try {
    await download;
  } finally {
    watchers.delete(show);
  }
}
