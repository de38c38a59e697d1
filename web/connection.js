// The page's own worker ("pycnn worker 1": MNIST, the test set, the model used
// for drawing), and ask(), the one way the page calls it: the reply's state
// goes into the store before the caller sees the reply.

import { Peer } from "./peer.js";
import { setPage, store, take } from "./store.js";

export const WORKER_URL = new URL("./worker.js", import.meta.url);
export let first = null;

/** Start the worker; a worker that cannot load, or that fails later, puts the page in error. */
export function connect() {
  first = new Peer(WORKER_URL, "pycnn worker 1");
  first.onDeath = (err) => {
    // A missing worker.js or pyodide.mjs reports here; so does a fatal error later (Python out of memory).
    const message = store.state
      ? `the Python worker stopped (${err.message}); reload the page to start it again`
      : `${err.unexplained ? "the worker script or the Pyodide runtime could not be loaded" : err.message}. The site may be incomplete; rebuild it with \`python build_site.py\`.`;
    setPage({ boot: "error", error: message });
  };
  return first;
}

/** first.call(method, ...args), taking the state its reply carries. */
export async function ask(method, ...args) {
  return take(await first.call(method, ...args));
}
