// MNIST for the page, fetched on the main thread only when something needs it
// (training, the evaluation, the training-data view), so a first visit never
// downloads it. The caller owns the bytes and transfers them to the worker(s)
// that hand them to pycnn.web.set_dataset.

const PARTS = { train_images: "trainImages", train_labels: "trainLabels", test_images: "testImages", test_labels: "testLabels" };

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

async function gunzip(bytes) {
  // A host that adds Content-Encoding: gzip has already inflated the file.
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// IDX: two zero bytes, type byte 0x08 (unsigned byte), number of dimensions,
// then one big-endian uint32 per dimension, then the data.
export function parseIdx(bytes, path) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || view.getUint32(0) >>> 8 !== 0x08) throw new Error(`${path} is not an unsigned-byte IDX file`);
  const ndim = view.getUint32(0) & 0xff;
  const offset = 4 + 4 * ndim;
  if (bytes.length < offset) throw new Error(`${path} is truncated`);
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== offset + count) throw new Error(`${path} holds ${bytes.length - offset} bytes of data, its header says ${count}`);
  return { shape, data: bytes.subarray(offset) };
}

/**
 * Fetch, gunzip and parse the four MNIST files the site's manifest lists.
 *
 * manifest: the site's manifest.json ({mnist: {train_images: path, ...}, files: {path: {bytes}}}).
 * onProgress({loaded, total}): bytes downloaded so far, of the compressed total.
 * baseURL: what the manifest's relative paths are relative to.
 * Returns {trainImages, trainLabels, testImages, testLabels}, each {shape, data}:
 * shape [N, 28, 28] or [N], data a Uint8Array view of the pixels or labels
 * into a buffer of its own (transfer data.buffer; it also holds the header).
 */
export async function loadMnist(manifest, onProgress = () => {}, baseURL = document.baseURI) {
  const paths = Object.keys(PARTS).map((key) => manifest.mnist[key]);
  let total = paths.reduce((sum, path) => sum + (manifest.files?.[path]?.bytes || 0), 0);
  let loaded = 0;
  onProgress({ loaded, total });
  const onBytes = (n) => {
    loaded += n;
    total = Math.max(total, loaded); // a host that inflates the files sends more than the manifest says
    onProgress({ loaded, total });
  };
  const parsed = await Promise.all(paths.map(async (path) => {
    return parseIdx(await gunzip(await fetchCounting(new URL(path, baseURL).href, path, onBytes)), path);
  }));
  return Object.fromEntries(Object.values(PARTS).map((name, i) => [name, parsed[i]]));
}
