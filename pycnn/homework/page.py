"""What the page's Code card asks Python for (pycnn.web re-exports these): plain data in and out."""

from __future__ import annotations

import inspect
from typing import Any

from .. import im2col, layers, losses, ops, optim
from .edit import function_lines, replace_function
from .exercises import EXERCISES, file_text
from .runner import check_source
from .sandbox import UserCodeError

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
    try:
        return {e.name: (span or (None,))[0] for e in EXERCISES for span in [function_lines(str(source), e.name)]}
    except UserCodeError:
        return {}
