"""Running the checks on a student's code, and the table both the CLI and the page show.

:func:`check_source` is the one entry point: the page's worker and
``python -m pycnn check`` both call it with the file's text. Its reply is
plain data: per exercise a status and the rows of its table.
"""

from __future__ import annotations

import types

import numpy as np

from .. import layers, losses, optim
from ..im2col import im2col
from .checks import CHECKS
from .exercises import EXERCISES, Exercise
from .sandbox import FILENAME, UserCodeError, as_user_error, load

PYCNN_OWN = {"ReLU": layers.ReLU, "Dense": layers.Dense, "Conv2D": layers.Conv2D, "SGD": optim.SGD,
             "Momentum": optim.Momentum, "softmax_cross_entropy": losses.softmax_cross_entropy, "im2col": im2col}
STATUSES = ("pass", "fail", "not written", "error", "missing")


def student_object(module: types.ModuleType, exercise: Exercise) -> object | None:
    """The class (for a method) or function the file defines for ``exercise``; None if it has its own none."""
    owner = exercise.owner or exercise.name
    obj = getattr(module, owner, None)
    if obj is None or obj is PYCNN_OWN[owner]:
        return None
    if exercise.owner:
        mine = getattr(obj, exercise.function, None) if isinstance(obj, type) else None
        if mine is None or mine is getattr(PYCNN_OWN[owner], exercise.function, None):
            return None
    return obj


def _def_line(obj: object, exercise: Exercise) -> int | None:
    func = getattr(obj, exercise.function, None) if exercise.owner else obj
    code = getattr(func, "__code__", None)
    return code.co_firstlineno if code is not None and code.co_filename == FILENAME else None


def check_exercise(module: types.ModuleType, exercise: Exercise) -> dict:
    """One exercise's result: {"name", "status", "rows", "message", "line", "def_line"}."""
    result = {"name": exercise.name, "status": "missing", "rows": [], "message": None, "line": None,
              "def_line": None}
    obj = student_object(module, exercise)
    if obj is None:
        where = f"{exercise.owner} with a {exercise.function} method" if exercise.owner else exercise.name
        result["message"] = f"the file defines no {where} of its own (pycnn's is used)"
        return result
    result["def_line"] = _def_line(obj, exercise)
    try:
        with np.errstate(all="ignore"):
            rows = CHECKS[exercise.name](obj, np.random.default_rng(0))
    except NotImplementedError:
        result.update(status="not written", message=f"{exercise.name} is not written yet", line=result["def_line"])
        return result
    except Exception as exc:  # noqa: BLE001  (whatever the student's code raises is reported)
        error = as_user_error(exc)
        result.update(status="error", message=str(error), line=error.line or result["def_line"])
        return result
    failed = [r for r in rows if not r.passed]
    result["rows"] = [r.as_dict() for r in rows]
    result["status"] = "fail" if failed else "pass"
    if failed:
        result["message"] = f"{failed[0].check}: {failed[0].detail}"
        result["line"] = result["def_line"]
    return result


def check_source(source: str, names: list[str] | None = None) -> dict:
    """Check a student's file: {"ok", "error": {"message", "line"} | None, "results": [...], "passed", "checked"}.

    ``ok`` is True only when at least one exercise was checked and every one
    checked passed; exercises the file does not define are "missing", not checked.
    """
    unknown = sorted(set(names or ()) - {e.name for e in EXERCISES})
    if unknown:
        known = ", ".join(e.name for e in EXERCISES)
        raise UserCodeError(f"no exercise named {unknown[0]!r}; the exercises are {known}")
    try:
        module = load(source)
    except UserCodeError as exc:
        return {"ok": False, "error": {"message": str(exc), "line": exc.line}, "results": [], "passed": 0, "checked": 0}
    results = [check_exercise(module, e) for e in EXERCISES if names is None or e.name in names]
    checked = [r for r in results if r["status"] != "missing"]
    passed = sum(r["status"] == "pass" for r in checked)
    return {"ok": bool(checked) and passed == len(checked), "error": None, "results": results,
            "passed": passed, "checked": len(checked)}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def format_report(report: dict) -> str:
    """The check table as text: one line per compared array, then a summary line."""
    if report["error"]:
        return f"{FILENAME} does not run: {report['error']['message']}"
    lines = [f"{'exercise':<22} {'check':<62} {'rel. error':>10} {'tolerance':>9}  result"]
    for r in report["results"]:
        if r["status"] in ("missing", "not written", "error"):
            where = f" (line {r['line']})" if r["line"] and r["status"] != "error" else ""
            lines.append(f"{r['name']:<22} {r['status'].upper()}: {r['message']}{where}")
            continue
        for row in r["rows"]:
            mark = "pass" if row["passed"] else "FAIL"
            lines.append(f"{r['name']:<22} {row['check']:<62} {_number(row['error']):>10} "
                         f"{_number(row['tolerance']):>9}  {mark}")
            if not row["passed"] and row["detail"]:
                lines.append(f"{'':<22}   {row['detail']}")
    if not report["checked"]:
        lines.append("No exercise was checked: the file defines none of them (python -m pycnn check --template).")
    else:
        lines.append(f"{report['passed']} of {report['checked']} exercises checked pass.")
    return "\n".join(lines)
