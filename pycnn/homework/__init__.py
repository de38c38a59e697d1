"""The homework: pycnn's own layers, loss, im2col and optimizers as exercises, and their checks.

- :mod:`.exercises`: the exercises in the homework's order, their templates
  and reference solutions taken from the installed pycnn source;
- :mod:`.checks` and :mod:`.compare`: values against pycnn's, float64
  numerical gradient checks, the first differing entry;
- :mod:`.sandbox`: a student's file run as a fresh module, errors mapped to its lines;
- :mod:`.runner`: :func:`check_source`, used by ``python -m pycnn check`` and the page alike.
"""

from .exercises import EXERCISES, file_text
from .runner import check_source, format_report
from .sandbox import UserCodeError

__all__ = ["EXERCISES", "UserCodeError", "check_source", "file_text", "format_report"]
