"""Running a student's file: a fresh module namespace, and errors mapped to the file's own lines.

The file is ordinary Python (the template imports NumPy and pycnn itself).
Each load execs it into a new module object, so nothing from an earlier
version of the code survives; a module of that name is never put in
``sys.modules``, so it cannot shadow anything either.
"""

from __future__ import annotations

import traceback
import types

from ..errors import PycnnError

FILENAME = "my_layers.py"  # what tracebacks call the student's file


class UserCodeError(PycnnError, ValueError):
    """The student's code failed: ``line`` is the line of their file where (or None if outside it)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def load(source: str, filename: str = FILENAME) -> types.ModuleType:
    """Exec ``source`` as a new module; a syntax error or an exception at import is a :class:`UserCodeError`."""
    if not isinstance(source, str):
        raise UserCodeError(f"the code must be text, got {type(source).__name__}")
    module = types.ModuleType(filename.rsplit("/", 1)[-1].removesuffix(".py"))
    module.__file__ = filename
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:  # IndentationError and TabError are SyntaxErrors
        raise UserCodeError(f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})", exc.lineno) from None
    try:
        exec(code, module.__dict__)  # noqa: S102  (running the student's file is the point)
    except Exception as exc:  # noqa: BLE001  (any error of the student's code is reported, not raised)
        raise as_user_error(exc, filename) from None
    return module


def error_line(exc: BaseException, filename: str = FILENAME) -> int | None:
    """The line of the student's file nearest to where ``exc`` was raised (None if it never ran there)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def as_user_error(exc: BaseException, filename: str = FILENAME) -> UserCodeError:
    """``exc`` from the student's code as one line, ``Type: message (line N)``."""
    line = error_line(exc, filename)
    where = f" (line {line})" if line else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return UserCodeError(f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}", line)
