"""The few operations whose fastest spelling differs between native NumPy and Pyodide's.

Native NumPy sends ``@`` to BLAS, fast for any operand layout; Pyodide's NumPy
(WebAssembly: no BLAS, no SIMD) runs ``@`` as a plain loop, and ``np.einsum``
with operands laid out so that its innermost loop walks long contiguous rows
is faster. Pyodide's ``np.maximum`` and float-times-bool-mask
are slow where ``np.where`` is quick; natively it is the other way round. Each
function here computes one formula and picks the spelling for the backend, so
the layers read as the formulas (docs/PERFORMANCE.md, "One formula, two
spellings"). Tests set ``PYODIDE = True`` to run the Pyodide spellings in CPython.
"""

from __future__ import annotations

import sys

import numpy as np

PYODIDE = sys.platform == "emscripten"


# -- products --------------------------------------------------------------------


def patches_times_weights(cols: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``cols @ w`` for patches (M, K) and weights (K, F): (M, F).

    In Pyodide the einsum writes the product transposed, (F, M) rows of M
    numbers, into a buffer whose rows lie an odd number of cache lines apart
    (docs/PERFORMANCE.md, "Conv2D's output rows"), and returns its (M, F) view.
    """
    if not PYODIDE:
        return cols @ w
    rows_t = _row_buffer(w.shape[1], len(cols), np.result_type(cols, w))
    return np.einsum("mk,kf->fm", cols, w, out=rows_t).T


def gradient_rows(dout: np.ndarray, order: tuple[int, int, int, int]) -> np.ndarray:
    """``dout`` (N, OH, OW, F) with its axes permuted by ``order`` (F last), as rows (M, F).

    Natively a reshape of the permuted view. In Pyodide the (F, M) transpose is
    made contiguous in one copy (the layout the einsums below read) and its
    (M, F) view returned.
    """
    if not PYODIDE:
        permuted = dout.transpose(order)
        return permuted.reshape(-1, permuted.shape[-1])
    order_t = (order[3], *order[:3])
    return np.ascontiguousarray(dout.transpose(order_t)).reshape(dout.shape[-1], -1).T


def patches_t_times(cols: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """``cols.T @ dz`` for patches (M, K) and ``gradient_rows`` dz (M, F): (K, F).

    In Pyodide each element is a dot product of two contiguous rows.
    """
    if not PYODIDE:
        return cols.T @ dz
    return np.einsum("mk,fm->kf", cols, dz.T)


def rows_times_weights_t(dz: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``dz @ w.T`` for ``gradient_rows`` dz (M, F) and weights (K, F): (M, K), column-major
    (the layout col2im reads without copying)."""
    if not PYODIDE:
        return (w @ dz.T).T
    return np.einsum("kf,fm->km", w, dz.T).T


def dense_product(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``x @ w`` for x (N, D) and w (D, M): (N, M), and what :func:`dense_input_gradient` reuses.

    In Pyodide ``out[n, m]`` is a dot product of ``x[n]`` with the contiguous
    row ``w.T[m]``; that copy of ``w.T`` is returned for the backward pass.
    """
    if not PYODIDE:
        return x @ w, None
    w_t = np.ascontiguousarray(w.T)  # (M, D)
    return np.einsum("nd,md->nm", x, w_t), w_t


def dense_weight_gradient(x: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """``x.T @ dout`` for x (N, D) and dout (N, M): (D, M), contiguous."""
    if not PYODIDE:
        return x.T @ dout
    # dW.T[m] = sum over n of dout[n, m] * x[n]: rows of D numbers
    return np.ascontiguousarray(np.einsum("nm,nd->md", dout, x).T)


def dense_input_gradient(dout: np.ndarray, w: np.ndarray, w_t: np.ndarray | None) -> np.ndarray:
    """``dout @ w.T`` for dout (N, M) and w (D, M); ``w_t`` is :func:`dense_product`'s copy."""
    if not PYODIDE:
        return dout @ w.T
    return np.einsum("nm,md->nd", dout, w_t)


def _row_buffer(rows: int, length: int, dtype: np.dtype) -> np.ndarray:
    """An empty (rows, length) array whose rows lie an odd number of 64-byte cache lines apart.

    Copying it transposed (as Conv2D does with its output) reads down its
    columns; rows a multiple of 4 KiB apart would all fall in one cache set
    (docs/PERFORMANCE.md, "Conv2D's output rows").
    """
    per_line = max(1, 64 // np.dtype(dtype).itemsize)
    lines = -(-length // per_line)
    lines += 1 - lines % 2
    return np.empty((rows, lines * per_line), dtype)[:, :length]


# -- elementwise -----------------------------------------------------------------


def relu(x: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """max(x, 0) given ``positive = x > 0`` (equal results, except that np.where turns a NaN into 0)."""
    return np.where(positive, x, 0) if PYODIDE else np.maximum(x, 0)


def masked(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` where ``mask`` is True, else 0."""
    return np.where(mask, values, 0) if PYODIDE else values * mask


def maximum(a: np.ndarray, b: np.ndarray, b_larger: np.ndarray) -> np.ndarray:
    """Elementwise max of ``a`` and ``b`` given ``b_larger = b > a``."""
    return np.where(b_larger, b, a) if PYODIDE else np.maximum(a, b)
