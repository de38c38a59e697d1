// The page's one store. `state` is the Session's state dict from the latest
// reply of pycnn.web that carried one (every mutating call does): the phase
// (empty, idle, training, stopping, evaluating), the model used for drawing
// and the previous one, MNIST, the run's status, the evaluation. `page` is
// what only the page knows (see its fields). Views subscribe and render from the store; nothing else holds state.

const listeners = new Set();

export const store = {
  state: null,
  defaults: null, // pycnn.web.defaults(): the form's settings, the learning rate per optimizer, the most workers
  page: {
    boot: "loading", // loading | ready | error: has the worker started Python and a model?
    error: null, // why the page cannot work (boot "error")
    status: "Starting…", // the status line
    mnist: "absent", // absent | loading | failed until Python holds MNIST (then state.mnist)
    preparing: false, // a run is being prepared (MNIST, extra workers) and has not reached Python
    cancelled: false, // Stop was pressed during that preparation
    download: null, // {text, fraction} of the MNIST download a run waits for
    message: null, // {text, bad}: the Train card's own message when a run never reached Python
    workersNote: null, // {text, bad}: workers starting, or a fallback to one worker
    evaluating: false, // an evaluation request is in flight (MNIST download included)
    digits: [], // your handwritten digits as IndexedDB keeps them, [{id, image, label}] (web/handwriting.js)
  },
};

/** Subscribe `render(store)`; it runs now and after every update. */
export function subscribe(render) {
  listeners.add(render);
  render(store);
}

function notify() {
  for (const render of listeners) render(store);
}

/** Take the state a reply carries (if any, and newer than the store's); returns the reply. */
export function take(reply) {
  if (reply && reply.state && !(reply.state.seq < store.state?.seq)) {
    store.state = reply.state;
    notify();
  }
  return reply;
}

/** Update what only the page knows. */
export function setPage(changes) {
  Object.assign(store.page, changes);
  notify();
}

/** The page as one word: loading | ready | training | error (body[data-state]). */
export function pageState({ state, page }) {
  if (page.boot === "error") return "error";
  if (page.boot === "loading") return "loading";
  if (page.preparing || (state && ["training", "stopping"].includes(state.phase))) return "training";
  return "ready";
}

// The hooks the browser tests read, written in one place: body[data-state]
// and body[data-mnist] (absent | loading | loaded | failed).
subscribe((s) => {
  document.body.dataset.state = pageState(s);
  document.body.dataset.mnist = s.state?.mnist ? "loaded" : s.page.mnist;
});
