// Starting Python in a worker: the site's files checked first, Pyodide loaded
// with a deadline, numpy and pycnn installed; then `python(web)` turns the
// pycnn.web module into plain JS calls. Used by worker.js for the page's own
// worker and for the extra workers of data-parallel training alike.

import { loadPyodide } from "./pyodide/pyodide.mjs";

const RUNTIME_TIMEOUT_MS = 180_000; // 12 MB of runtime on a slow connection, with room to spare

export const siteURL = (path) => new URL(path, new URL("./", import.meta.url)).href;

const missing = (path, what, response) =>
  new Error(`${path} (${what}) is missing from the site (HTTP ${response.status}); rebuild it with \`python build_site.py\``);

async function fetchOk(path, what, init) {
  let response;
  try {
    response = await fetch(siteURL(path), init);
  } catch (err) {
    throw new Error(`could not fetch ${path} (${what}): ${err.message}`, { cause: err });
  }
  if (!response.ok) throw missing(path, what, response);
  return response;
}

export async function fetchBytes(path, what) {
  return new Uint8Array(await (await fetchOk(path, what)).arrayBuffer());
}

export async function readManifest() {
  return JSON.parse(new TextDecoder().decode(await fetchBytes("manifest.json", "site manifest")));
}

// Pyodide never settles its promise when its .wasm or stdlib is missing, so
// check every runtime file first and fail with a message instead of hanging.
async function checkFilesExist(manifest) {
  const files = {
    [`${manifest.pyodide}pyodide.asm.js`]: "Pyodide runtime",
    [`${manifest.pyodide}pyodide.asm.wasm`]: "Pyodide runtime",
    [`${manifest.pyodide}python_stdlib.zip`]: "Python standard library",
    [`${manifest.pyodide}pyodide-lock.json`]: "Pyodide package list",
    [manifest.numpy_wheel]: "numpy for Pyodide",
    [manifest.pycnn_wheel]: "the pycnn package",
  };
  await Promise.all(Object.entries(files).map(([path, what]) => fetchOk(path, what, { method: "HEAD" })));
}

// loadPyodide, but failing instead of waiting forever: Pyodide 0.27 reports a
// .wasm that does not compile only with console.warn and never settles.
function loadPyodideOrFail(options) {
  return new Promise((resolve, reject) => {
    const warn = console.warn;
    const done = () => {
      clearTimeout(timer);
      console.warn = warn;
    };
    const fail = (message) => {
      done();
      reject(new Error(message));
    };
    const timer = setTimeout(() => fail("the Python runtime did not start within 3 minutes; reload the page (rebuild the site if it keeps happening)"), RUNTIME_TIMEOUT_MS);
    console.warn = (...args) => {
      warn.apply(console, args);
      if (String(args[0]).includes("wasm instantiation failed")) {
        fail("pyodide/pyodide.asm.wasm could not be compiled (damaged or incomplete file); rebuild the site with `python build_site.py`");
      }
    };
    loadPyodide(options).then((py) => (done(), resolve(py)), (err) => (done(), reject(err)));
  });
}

/**
 * Pyodide with numpy and pycnn installed. status(text) tells what is loading;
 * mark(name) records when each stage ended. Returns the Pyodide instance.
 */
export async function startPython(manifest, status = () => {}, mark = () => {}) {
  await checkFilesExist(manifest);
  status(`Loading the Python runtime (Pyodide ${manifest.pyodide_version})…`);
  const py = await loadPyodideOrFail({ indexURL: siteURL(manifest.pyodide), stdout: (s) => console.log(s), stderr: (s) => console.warn(s) });
  mark("pyodide");
  status("Installing numpy and pycnn…");
  const problems = [];
  await py.loadPackage(["numpy", siteURL(manifest.pycnn_wheel)], {
    messageCallback: () => {},
    errorCallback: (msg) => problems.push(msg),
  });
  // loadPackage reports failures through errorCallback instead of rejecting.
  if (problems.length) throw new Error(`could not install Python packages: ${problems.join("; ")}`);
  mark("packages");
  return py;
}

// Python exceptions arrive as PythonError with the whole traceback; the page
// shows only the last line. pycnn's user errors (ValueError and PycnnError
// subclasses) are messages for the visitor: their class name is dropped.
export function errorText(err) {
  if (err && err.type && typeof err.message === "string") {
    const lines = err.message.trim().split("\n");
    return lines[lines.length - 1].replace(/^(ValueError|pycnn\.\w+\.\w+Error): /, "");
  }
  return err && err.message ? err.message : String(err);
}

/**
 * call(name, ...args): pycnn.web[name](...args) with JS values in and plain JS
 * data out (objects, arrays, numbers, Uint8Array for bytes). Byte arrays go
 * in as they are (Python reads them as buffers); other objects become dicts.
 * A reply's Session state gets `seq`, its order, so the page can drop one
 * that arrives after a newer one. A Python error is rethrown as an Error
 * holding its last line.
 */
export function python(pyodide, web) {
  let stamp = 0;
  return function call(name, ...args) {
    const pyArgs = args.map((a) => (a instanceof Uint8Array || a === null || typeof a !== "object" ? a : pyodide.toPy(a)));
    let out;
    try {
      out = web[name](...pyArgs);
    } catch (err) {
      throw new Error(errorText(err), { cause: err });
    } finally {
      for (let i = 0; i < args.length; i++) if (pyArgs[i] !== args[i]) pyArgs[i].destroy();
    }
    if (out === undefined || out === null || typeof out !== "object") return out;
    try {
      const reply = out.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
      const state = name === "state" ? reply : reply.state;
      if (state) state.seq = ++stamp; // replies and progress reports travel on different ports
      return reply;
    } finally {
      out.destroy();
    }
  };
}
