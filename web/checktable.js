// The Code card's check table: pycnn.homework's report (web/code.js asks the
// code worker for it) as rows of exercise, check, relative error, tolerance and
// result, the first differing entry under a failing row; and the editor lines
// to mark. Every number comes from Python; this file only lays them out.

const fmt = (x) => (x === null || x === undefined ? "–" : x.toExponential(1));
const WORDS = { pass: "pass", fail: "fail", error: "error", "not written": "not written", missing: "not in the file" };

function cell(tr, text, className) {
  const td = tr.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function summaryRow(body, result) {
  const tr = body.insertRow();
  tr.className = `status-${result.status.replace(" ", "-")}`;
  cell(tr, result.name, "name");
  const td = cell(tr, result.message || "", "detail");
  td.colSpan = 3;
  cell(tr, WORDS[result.status], "result");
}

/** Fill `table`'s body from a check report; returns {status, message, marks}. */
export function showReport(table, report) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (report.error) {
    table.dataset.status = "error";
    const marks = report.error.line ? [{ line: report.error.line, kind: "error", message: report.error.message }] : [];
    return { status: "error", message: `Your code does not run: ${report.error.message}`, marks };
  }
  const marks = [];
  for (const result of report.results) {
    if (result.status === "missing") continue;
    if (!result.rows.length) summaryRow(body, result);
    for (const row of result.rows) {
      const tr = body.insertRow();
      tr.className = row.passed ? "status-pass" : "status-fail";
      cell(tr, result.name, "name");
      cell(tr, row.check);
      cell(tr, fmt(row.error), "num");
      cell(tr, fmt(row.tolerance), "num");
      cell(tr, row.passed ? "pass" : "fail", "result");
      if (!row.passed && row.detail) {
        const more = body.insertRow();
        more.className = "detail-row";
        const td = cell(more, row.detail, "detail");
        td.colSpan = 5;
      }
    }
    if (result.line && result.status !== "pass") {
      marks.push({ line: result.line, kind: result.status === "error" ? "error" : "fail", message: result.message });
    }
  }
  const checked = report.checked;
  const status = !checked ? "none" : report.ok ? "pass" : "fail";
  table.dataset.status = status;
  const firstBad = report.results.find((r) => !["pass", "missing"].includes(r.status));
  const message = !checked
    ? "Nothing to check: the file defines none of the exercises."
    : report.ok
      ? `${report.passed} of ${checked} checked: all pass.`
      : `${report.passed} of ${checked} checked pass. ${firstBad.name}: ${firstBad.message}`;
  return { status, message, marks };
}
