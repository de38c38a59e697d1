// The Code card: read the Python that runs in this tab (pycnn's installed
// source), do the homework in a real editor (CodeMirror, web/editor-entry.js,
// loaded when the card is first opened) and check it. The checks run in a
// worker of their own ("pycnn code worker"), so an endless loop in the
// student's code never blocks drawing or training: Stop, or a check running
// past CHECK_LIMIT_MS, terminates that worker and the next check starts a new
// one. The student's file is kept in this browser (IndexedDB) and can be
// downloaded; every check, hint and solution comes from pycnn.homework.

import { WORKER_URL } from "./connection.js";
import { Peer } from "./peer.js";
import { showReport } from "./checktable.js";
import { get, set } from "./vendor/idb-keyval.js";

const CHECK_LIMIT_MS = 20_000; // the checks take about a second; far longer means the code never ends
const SAVE_KEY = "pycnn homework file";
const HOMEWORK = "my_layers.py";

const $ = (sel) => document.querySelector(sel);
const el = {
  panel: $("#code-panel"), file: $("#code-file"), exercise: $("#code-exercise"), check: $("#code-check"),
  checkAll: $("#code-check-all"), stop: $("#code-stop"), hint: $("#code-hint"), solution: $("#code-solution"),
  reset: $("#code-reset"), restart: $("#code-template"), download: $("#code-download"), doc: $("#code-doc"),
  host: $("#code-editor"), use: $("#code-use"), useNote: $("#code-use-note"), message: $("#code-message"), results: $("#code-results"),
};

let editor = null;
let material = null; // pycnn.web.homework(): exercises, template, solution, sources
let mine = ""; // the student's file, also while a pycnn file is shown
let peer = null; // the code worker, started on first use and after a Stop
let booting = null;
let hintsShown = 0;
let saveTimer = null;

const say = (text, kind = "") => {
  el.message.textContent = text;
  el.message.dataset.kind = kind;
};

function worker() {
  if (!peer || peer.dead) {
    peer = new Peer(WORKER_URL, "pycnn code worker");
    booting = peer.call("initReplica");
  }
  return booting.then(() => peer);
}

const busy = (on) => {
  for (const b of [el.check, el.checkAll, el.solution, el.reset, el.restart]) b.disabled = on;
  el.stop.disabled = !on;
};

function save() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => set(SAVE_KEY, mine).catch(() => {}), 300);
}

function showFile() {
  const name = el.file.value;
  const homework = name === HOMEWORK;
  editor.setReadOnly(!homework);
  editor.setText(homework ? mine : material.sources[name]);
  for (const b of [el.exercise, el.check, el.checkAll, el.hint, el.solution, el.reset, el.restart]) b.disabled = !homework;
  el.panel.dataset.file = name;
  say(homework ? "" : `pycnn/${name} as installed in this tab's Python: the code that draws and trains. Read only.`);
}

function showExercise() {
  const ex = material.exercises.find((e) => e.name === el.exercise.value);
  hintsShown = 0;
  el.hint.textContent = "Hint";
  el.doc.textContent = ex.doc.split("\n")[0];
  locate(ex.name);
}

// Jump to an exercise's def: Python finds it in the file (ast), the editor scrolls there.
async function locate(name) {
  try {
    const lines = await (await worker()).call("exerciseLines", editor.text());
    if (lines[name]) editor.goto(lines[name]);
  } catch { /* a file that does not parse: the check says where */ }
}

// Check in the code worker; resolves to the report, or null when the check was stopped or failed (message shown).
async function check(names) {
  if (el.file.value !== HOMEWORK && names !== null) return null;
  busy(true);
  say("Checking…");
  el.results.dataset.status = "running";
  try {
    const p = await worker();
    const report = await p.timed(CHECK_LIMIT_MS, "checkCode", mine, names);
    const shown = showReport(el.results, report);
    if (el.file.value === HOMEWORK) {
      editor.mark(shown.marks);
      if (shown.marks.length) editor.goto(shown.marks[0].line);
    }
    say(shown.message, shown.status);
    return report;
  } catch (err) {
    el.results.dataset.status = "error";
    const stopped = err.message === "the worker was closed";
    const timedOut = err.message.startsWith("no reply within");
    say(stopped ? "Stopped: the check was ended (its worker closed; the next check starts a new one). Drawing and training were not affected."
      : timedOut ? `Stopped: the check ran for more than ${CHECK_LIMIT_MS / 1000} s (an endless loop?). Drawing and training were not affected.`
        : `The check failed: ${err.message}`, "error");
    if (stopped || timedOut) peer = null;
    return null;
  } finally {
    busy(false);
  }
}

/**
 * Before a run with the student's code: every exercise is checked in the code worker first, so code
 * that never ends or does not run is caught there, not in the worker that trains (which cannot be
 * interrupted mid-step). Throws with the reason when it may not train; pycnn then checks the parts it uses.
 */
export async function checkBeforeTraining() {
  const report = await check(null);
  if (!report) throw new Error(`Training with your code did not start: ${el.message.textContent}`);
  if (report.error) throw new Error(`Training with your code did not start: your code does not run (${report.error.message}).`);
}

async function replaceExercise(solved) {
  const name = el.exercise.value;
  const p = await worker();
  const reply = await p.call("exerciseCode", editor.text(), name, solved);
  editor.setText(reply.source);
  editor.goto(reply.line);
  say(solved ? `${name} is now pycnn's own code (Ctrl+Z takes it back).` : `${name} is open again.`);
}

function hint() {
  const ex = material.exercises.find((e) => e.name === el.exercise.value);
  hintsShown = Math.min(hintsShown + 1, ex.hints.length);
  el.doc.replaceChildren(ex.doc.split("\n")[0], ...ex.hints.slice(0, hintsShown).map((h, i) => {
    const p = document.createElement("span");
    p.className = "code-hint-text";
    p.textContent = `Hint ${i + 1}: ${h}`;
    return p;
  }));
  el.hint.textContent = hintsShown < ex.hints.length ? "Another hint" : "No more hints";
}

function download() {
  const url = URL.createObjectURL(new Blob([mine], { type: "text/x-python" }));
  const a = Object.assign(document.createElement("a"), { href: url, download: HOMEWORK });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function open() {
  say("Loading the editor and starting Python for the code…");
  const [{ createEditor }, p, kept] = await Promise.all([import("./vendor/editor.js"), worker(), get(SAVE_KEY).catch(() => null)]);
  material = await p.call("homework");
  mine = typeof kept === "string" ? kept : material.template;
  el.file.replaceChildren(new Option(`${HOMEWORK} (the homework)`, HOMEWORK),
    ...Object.keys(material.sources).map((n) => new Option(`pycnn/${n} (read)`, n)));
  el.exercise.replaceChildren(...material.exercises.map((e, i) => new Option(`${i + 1}. ${e.name}`, e.name)));
  editor = createEditor(el.host, {
    doc: mine,
    onChange: (text) => {
      if (el.file.value !== HOMEWORK) return;
      mine = text;
      save();
    },
  });
  showFile();
  el.doc.textContent = material.exercises[0].doc.split("\n")[0];
  el.use.disabled = false;
  showUse();
  el.panel.dataset.ready = "1";
  say(typeof kept === "string" ? "Your file from this browser. Pick an exercise, write its body, then Check." : "Pick an exercise, write its body (the lines marked raise NotImplementedError), then Check.");
}

/** The student's file when "Train with my code" is ticked (the run then uses it on every worker), else null. */
export function codeForTraining() {
  return editor && el.use.checked ? mine : null;
}

function showUse() {
  el.useNote.textContent = el.use.checked
    ? "Train (in the Train card) now uses your classes, loss and optimizer from this file; the model will say so."
    : "Train uses pycnn's own code.";
}

export function setUpCode() {
  el.use.addEventListener("change", showUse);
  let opening = null;
  el.panel.addEventListener("toggle", () => {
    if (!el.panel.open || opening) return;
    opening = open().catch((err) => {
      opening = null;
      say(`The code editor could not start: ${err.message}`, "error");
    });
  });
  el.file.addEventListener("change", showFile);
  el.exercise.addEventListener("change", showExercise);
  el.check.addEventListener("click", () => check([el.exercise.value]));
  el.checkAll.addEventListener("click", () => check(null));
  el.stop.addEventListener("click", () => peer?.terminate());
  el.hint.addEventListener("click", hint);
  el.solution.addEventListener("click", () => replaceExercise(true).catch((err) => say(err.message, "error")));
  el.reset.addEventListener("click", () => {
    editor.setText(material.solution);
    el.use.checked = false;
    showUse();
    say("The file is pycnn's own code again, and Train uses pycnn's code (Ctrl+Z takes the text back).");
  });
  el.restart.addEventListener("click", () => {
    editor.setText(material.template);
    say("The file is the homework's template again (Ctrl+Z takes it back).");
  });
  el.download.addEventListener("click", download);
}
