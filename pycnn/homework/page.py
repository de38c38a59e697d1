"""What the page's Code card asks Python for (pycnn.web re-exports these): plain data in and out."""

from __future__ import annotations

import inspect
from typing import Any

from .. import im2col, layers, losses, ops, optim, settings
from ..session import Session
from ..shelf import model_info
from .edit import function_lines, replace_function
from .exercises import EXERCISES, file_text
from .runner import check_source
from .sandbox import UserCodeError
from .usecode import StudentCode, step_ms

READ_MODULES = {"layers.py": layers, "losses.py": losses, "im2col.py": im2col, "optim.py": optim, "ops.py": ops}


def _py(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value  # a JsProxy inside Pyodide


def homework() -> dict:
    """The card's material: {"exercises": [{"name", "doc", "hints"}], "template": str, "solution": str,
    "sources": {"layers.py": the installed pycnn module's source, ...}}."""
    return {"exercises": [{"name": e.name, "doc": e.doc, "hints": list(e.hints)} for e in EXERCISES],
            "template": file_text(solved=False), "solution": file_text(solved=True),
            "sources": {name: inspect.getsource(module) for name, module in READ_MODULES.items()}}


def check_code(source: str, names: Any = None) -> dict:
    """:func:`~.runner.check_source` for the page (``names``: a JS array or None for every exercise)."""
    names = _py(names)
    return check_source(str(source), None if names is None else [str(n) for n in names])


def exercise_code(source: str, name: str, solved: bool = True) -> dict:
    """The file with one exercise set to pycnn's solution (or back to its open template):
    {"source": new text, "line": the line its def starts on}."""
    new = replace_function(str(source), str(name), bool(solved))
    span = function_lines(new, str(name))
    return {"source": new, "line": span[0] if span else None}


def exercise_lines(source: str) -> dict:
    """{exercise name: the line its def starts on, or None when the file lacks it}; {} if it does not parse."""
    lines = {}
    try:
        for exercise in EXERCISES:
            span = function_lines(str(source), exercise.name)
            lines[exercise.name] = span[0] if span else None
    except UserCodeError:
        return {}
    return lines


# -- training with the student's code: config["code"] holds the file's text, on every worker of the run


def _split_code(config: Any) -> tuple[dict, StudentCode | None]:
    config = dict(_py(config))
    source = config.pop("code", None)
    return config, (None if source is None else StudentCode(source))


def _apply(session: Session, code: StudentCode) -> list[str]:
    """Put the student's code into the run just started; a part that may not train ends the run unstarted."""
    run = session.run
    try:
        return code.apply(run.model, run.trainer, run.config["optimizer"])
    except Exception:
        session.end_run()
        raise


def _speeds(code: StudentCode, config: dict, batch: int) -> dict:
    """One forward and backward pass of a fresh model with the student's code and with pycnn's, in ms."""
    mine, theirs = settings.build(config), settings.build(config)
    code.apply(mine, None, config["optimizer"])
    loss = code.module.softmax_cross_entropy if "softmax_cross_entropy" in code.parts else None
    kwargs = {"batch": batch, "repeats": 2}
    return {"step_ms": step_ms(mine, loss, **kwargs) if loss else step_ms(mine, **kwargs),
            "pycnn_step_ms": step_ms(theirs, **kwargs)}


def start_training(session: Session, config: Any, workers: int = 1) -> dict:
    """Session.start_training; with config["code"], the run trains with the student's classes."""
    config, code = _split_code(config)
    reply = session.start_training(config, workers)
    if code is None:
        return reply
    used = _apply(session, code)
    run = session.run
    speeds = _speeds(code, run.config, run.config["batch_size"])
    summary = (f"with your code ({', '.join(used)}): {speeds['step_ms']:.0f} ms per batch of "
               f"{run.config['batch_size']}, pycnn's {speeds['pycnn_step_ms']:.0f} ms")
    return {**reply, "model": model_info(run.model, "trained"), "code": {"edited": used, **speeds, "summary": summary}}


def start_replica(session: Session, config: Any, images: Any, labels: Any, shard: int, params: Any) -> dict:
    """Session.start_replica; with config["code"], this worker's part trains with the student's classes too."""
    config, code = _split_code(config)
    reply = session.start_replica(config, images, labels, shard, params)
    if code is not None:
        reply["code"] = {"edited": _apply(session, code)}
    return reply
