// The page's one store. `state` is the Session's state dict from the latest
// reply of pycnn.web that carried one (every mutating call does): the phase
// (empty, idle, training, stopping, evaluating), the model used for drawing
// and the previous one, MNIST, the run's status, the evaluation. `page` is
// what only the page knows: whether Python has started (boot: loading | ready
// | error), the status line, whether MNIST is downloading, whether a run is
// being prepared (MNIST, workers) and Stop was pressed before it reached
// Python (preparing, cancelled), whether an evaluation request is in flight.
// Views subscribe and render from the store; nothing else holds state.

const listeners = new Set();

export const store = {
  state: null,
  defaults: null, // pycnn.web.defaults(): the form's settings, the learning rate per optimizer, the most workers
  page: { boot: "loading", status: "Starting…", mnist: "absent", preparing: false, cancelled: false, evaluating: false },
};

/** Subscribe `render(store)`; it runs now and after every update. */
export function subscribe(render) {
  listeners.add(render);
  render(store);
}

function notify() {
  for (const render of listeners) render(store);
}

/** Take the state a reply carries (if any); returns the reply, so calls can be wrapped. */
export function take(reply) {
  if (reply && reply.state) {
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
