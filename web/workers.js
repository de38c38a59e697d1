// Workers (CPU cores): the count control of the Train card, the extra workers
// it starts ahead of a run (web/pool.js), and the note under the progress bar
// (workers starting, a fallback to one worker, or the run's speed-up, which
// the Session measures: state.run.workers, speedup, wait_ms, step_ms).

import { first, WORKER_URL } from "./connection.js";
import { WorkerPool } from "./pool.js";
import { setPage, store, subscribe } from "./store.js";

const $ = (sel) => document.querySelector(sel);
const control = $("#workers");
const note = $("#workers-note");
const DEFAULT_MOST = 4; // each extra worker is a whole Python (the tab grows by about 170 MB per worker)

let pool = null;

// One worker per core, less one for the page and the browser; fewer on devices that report little memory.
function buildChoice(maxWorkers) {
  const cores = navigator.hardwareConcurrency || 2;
  const most = Math.min(maxWorkers, Math.max(2, cores));
  const memory = navigator.deviceMemory; // GB, Chromium only
  const chosen = Math.max(1, Math.min(cores - 1, DEFAULT_MOST, memory ? Math.floor(memory / 2) : DEFAULT_MOST));
  control.replaceChildren(...Array.from({ length: most }, (_, i) => new Option(String(i + 1), String(i + 1), false, i + 1 === chosen)));
  control.dataset.ready = "1"; // workers ready to train, the page's own included (hook for tests)
}

const setNote = (text, bad = false) => setPage({ workersNote: { text, bad } });

// Start (or close) extra workers as soon as the count is known, so Train does not wait for Python to load.
// Quietly (after a run, replacing failed workers) the note about the run stays.
function prepare(quietly = false) {
  if (!pool) return;
  const extras = Number(control.value) - 1;
  pool.resize(extras);
  control.dataset.ready = "1";
  if (!extras) return;
  if (!quietly) setNote(`Starting ${extras} more worker${extras > 1 ? "s" : ""}…`);
  const mine = [...pool.extras];
  Promise.allSettled(mine.map((e) => e.ready)).then((outcomes) => {
    if (mine.some((e) => !pool.extras.includes(e)) || pool.extras.length !== mine.length) return; // resized since
    const ready = 1 + outcomes.filter((o) => o.status === "fulfilled").length;
    control.dataset.ready = String(ready);
    if (quietly || store.page.preparing || store.state?.phase === "training") return;
    const failed = outcomes.find((o) => o.status === "rejected");
    setNote(failed ? `Only ${ready} of ${extras + 1} workers could start (${failed.reason.message}); training will use ${ready}.` : `${ready} workers ready.`, Boolean(failed));
  });
}

/** Train with as many workers as chosen; resolves to the last reply (null: stopped before it began). */
export async function train(config, hooks) {
  const workers = Number(control.value);
  setNote(workers > 1 ? `Training with ${workers} workers…` : "");
  try {
    return await pool.train(config, { ...hooks, note: (text) => setNote(text, true) });
  } finally {
    if (!store.page.workersNote?.bad) setNote(""); // "Training with 2 workers…" is over; a fallback note stays
    if (pool.extras.length < Number(control.value) - 1) prepare(true); // replace workers that failed
  }
}

// While a run of several workers goes (and after it), its speed-up; a fallback note stays instead.
function render(s) {
  const run = s.state?.run;
  const own = s.page.workersNote;
  for (const key of ["workers", "speedup", "measuredSpeedup", "waitMs", "stepMs"]) delete note.dataset[key];
  if (run && run.workers > 1 && run.speedup != null && !own?.bad) {
    const versus = run.speedup_measured
      ? `${run.speedup.toFixed(2)}× the speed of one worker (measured in this tab)`
      : `about ${run.speedup.toFixed(2)}× one worker's speed (estimated from their busy time; train with 1 worker to measure it)`;
    const waiting = run.wait_ms != null ? ` · ${run.wait_ms.toFixed(1)} ms of each ${run.step_ms.toFixed(0)} ms step waiting for the others' gradients` : "";
    note.textContent = `${run.workers} workers · ${versus}${waiting}`;
    note.classList.remove("bad");
    Object.assign(note.dataset, { workers: run.workers, speedup: run.speedup.toFixed(3), measuredSpeedup: run.speedup_measured ? run.speedup.toFixed(3) : "",
      waitMs: run.wait_ms?.toFixed(2) ?? "", stepMs: run.step_ms?.toFixed(2) ?? "" });
    return;
  }
  note.textContent = own?.text ?? "";
  note.classList.toggle("bad", Boolean(own?.bad));
}

/** The count control, and extra workers once the visitor turns to the Train card. */
export function setUpWorkers(maxWorkers) {
  buildChoice(maxWorkers);
  pool = new WorkerPool(first, WORKER_URL);
  let wanted = false; // the visitor has turned to the Train card: extra workers may start
  const want = () => {
    if (wanted) return;
    wanted = true;
    prepare();
  };
  for (const type of ["pointerenter", "focusin", "touchstart"]) $("#train-card").addEventListener(type, want, { passive: true });
  control.addEventListener("change", () => (wanted ? prepare() : want()));
  subscribe(render);
}
