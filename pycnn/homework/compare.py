"""How a student's numbers are compared: relative errors, the first differing entry, finite differences.

A check is a list of :class:`Row` objects, one per thing compared (an
output, a gradient, a parameter after a step), each with its relative error
and the tolerance it must stay under. Relative errors are taken against the
largest entry of either array, so that entries near zero do not dominate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

VALUE_TOL = 1e-4  # float32 results against pycnn's float32 results (orders of summation differ)
GRAD_TOL = 1e-6  # float64 analytic gradients against central differences
STEP = 1e-6  # central-difference step; in float64 its error stays near 1e-10


@dataclass
class Row:
    """One line of a check's table: what was compared, how far apart, whether that is close enough."""

    check: str
    error: float | None  # relative error, None when nothing could be compared (wrong shape, no result)
    tolerance: float | None
    passed: bool
    detail: str = ""  # on failure: the wrong shape, or the first differing entry

    def as_dict(self) -> dict:
        error = None if self.error is None or not np.isfinite(self.error) else float(self.error)
        return {"check": self.check, "error": error, "tolerance": self.tolerance,
                "passed": self.passed, "detail": self.detail}


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest difference, relative to the largest entry of either array (inf when ``got`` has a NaN)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.size == 0:
        return 0.0
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(float(np.max(np.abs(got))), float(np.max(np.abs(want))), 1e-12)
    return float(np.max(np.abs(got - want)) / scale)


def first_difference(got: np.ndarray, want: np.ndarray, tolerance: float) -> str:
    """The first entry (row-major) where ``got`` differs from ``want`` by more than the tolerance."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(float(np.max(np.abs(got[np.isfinite(got)]), initial=0)), float(np.max(np.abs(want))), 1e-12)
    wrong = ~(np.abs(got - want) <= tolerance * scale)  # a NaN is wrong too
    index = tuple(int(i) for i in np.argwhere(wrong)[0])
    return f"first differing entry [{', '.join(map(str, index))}]: got {got[index]:.6g}, expected {want[index]:.6g}"


def compare(check: str, got: object, want: np.ndarray, tolerance: float = VALUE_TOL) -> Row:
    """A row comparing a student's array with the expected one: shape first, then values."""
    if got is None:
        return Row(check, None, tolerance, False, f"got None, expected an array of shape {want.shape}")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        what = f"got a {type(got).__name__}, expected an array of shape {want.shape}"
        return Row(check, None, tolerance, False, what)
    if got.shape != want.shape:
        return Row(check, None, tolerance, False, f"shape {got.shape}, expected {want.shape}")
    error = rel_error(got, want)
    if error <= tolerance:
        return Row(check, error, tolerance, True)
    return Row(check, error, tolerance, False, first_difference(got, want, tolerance))


def numeric_gradient(f: Callable[[], float], a: np.ndarray) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every entry of float64 ``a`` (restored after)."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + STEP
        plus = f()
        flat[i] = old - STEP
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * STEP)
    return grad
