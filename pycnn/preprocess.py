"""Turn a drawn digit into an MNIST-style 28x28 image, the way MNIST was made.

MNIST digits were fitted into a 20x20 box keeping their aspect ratio (with
anti-aliasing), then placed in a 28x28 field so that their centre of mass sits
at the centre. `preprocess_digit` repeats those steps on a canvas of any size,
with area-averaging resampling written as two matrix products.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

GRID = 28  # output side, pixels
BOX = 20  # the digit's long side after scaling, pixels
INK_THRESHOLD = 0.1  # grey level (in [0, 1]) above which a pixel counts as ink


def preprocess_digit(pixels: ArrayLike, size: int | None = None) -> np.ndarray | None:
    """MNIST-style float32 (28, 28) image in [0, 1], or None for an empty canvas.

    `pixels` is a canvas (H, W) of grey levels with ink high: integers 0..255 or
    floats in [0, 1]. A flat (H * W,) array is reshaped to rows of `size`
    pixels (the canvas width); without `size` the canvas must be square.
    """
    canvas = _as_canvas(pixels, size)
    ink = canvas > INK_THRESHOLD
    if not ink.any():
        return None
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _place_by_mass(_fit_box(digit, BOX), GRID)


def _as_canvas(pixels: ArrayLike, size: int | None) -> np.ndarray:
    """Validate and scale the input to a float64 canvas (H, W) in [0, 1]."""
    a = np.asarray(pixels)
    if a.ndim == 1:
        a = _unflatten(a, size)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a non-empty canvas (H, W), got shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"integer pixels must lie in 0..255 (found {a.min()}..{a.max()})")
        return a / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"pixels must be numbers, got dtype {a.dtype}")
    if not (a.min() >= 0 and a.max() <= 1):
        raise ValueError(f"float pixels must lie in [0, 1] (found {a.min()}..{a.max()}); pass integers for 0..255")
    return a.astype(np.float64)


def _unflatten(a: np.ndarray, size: int | None) -> np.ndarray:
    """(H * W,) -> (H, W) with rows of `size` pixels; square when `size` is None."""
    if size is None:
        size = math.isqrt(a.size)
        if size * size != a.size:
            raise ValueError(f"{a.size} pixels do not make a square canvas; pass size=<canvas width>")
    if size <= 0 or a.size % size:
        raise ValueError(f"cannot split {a.size} pixels into rows of {size}")
    return a.reshape(-1, size)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Resampling matrix (n_out, n_in): each row averages the input span it covers.

    Output pixel i covers input interval [i, i + 1) * n_in / n_out; weights are
    the overlaps with each input pixel, normalised so every row sums to 1.
    """
    step = n_in / n_out
    lo = np.arange(n_out)[:, None] * step
    j = np.arange(n_in)[None, :]
    overlap = np.minimum(lo + step, j + 1) - np.maximum(lo, j)
    return np.clip(overlap, 0, None) / step


def _fit_box(digit: np.ndarray, box: int) -> np.ndarray:
    """Resample (h, w) so its long side is `box`, keeping the aspect ratio."""
    h, w = digit.shape
    scale = box / max(h, w)
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    return _area_weights(h, out_h) @ digit @ _area_weights(w, out_w).T


def _place_by_mass(digit: np.ndarray, grid: int) -> np.ndarray:
    """Paste (h, w) into a (grid, grid) float32 frame with its centre of mass at
    pixel (grid / 2, grid / 2), shifted by whole pixels and kept inside the frame."""
    h, w = digit.shape
    mass = digit.sum()
    com_y = digit.sum(axis=1) @ np.arange(h) / mass
    com_x = digit.sum(axis=0) @ np.arange(w) / mass
    top = min(max(round(grid / 2 - com_y), 0), grid - h)
    left = min(max(round(grid / 2 - com_x), 0), grid - w)
    out = np.zeros((grid, grid), np.float32)
    out[top : top + h, left : left + w] = np.clip(digit, 0, 1)
    return out
