"""Patch extraction for convolution, and its adjoint.

Images are channels-last, ``(N, H, W, C)``. A patch is ``KH * KW * C``
numbers in the order (kernel row, kernel column, channel), so a convolution
is a single matrix product of the patch matrix ``(N * OH * OW, KH * KW * C)``
with the weights reshaped to ``(KH * KW * C, F)``.

:func:`im2col` gives that patch matrix and :func:`col2im` its adjoint. In
memory the patch matrix is stored transposed, one contiguous row per kernel
entry: :func:`unfold` and :func:`fold` work on that layout directly.
"""

from __future__ import annotations

import numpy as np


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Number of kernel positions along one axis: ``(size + 2*padding - kernel) // stride + 1``.

    Like other frameworks, a stride that does not tile the input exactly
    leaves the last rows/columns unused. Raises ``ValueError`` when the
    kernel does not fit at all.
    """
    if kernel < 1 or stride < 1 or padding < 0:
        raise ValueError(
            f"kernel ({kernel}) and stride ({stride}) must be >= 1 and padding ({padding}) >= 0"
        )
    span = size + 2 * padding - kernel
    if span < 0:
        raise ValueError(
            f"a kernel of {kernel} does not fit an input of {size} with padding {padding}"
        )
    return span // stride + 1


def _channels_first(shape: tuple[int, int, int, int], batch_last: bool) -> tuple[int, ...]:
    """Shape of images (N, H, W, C) held channels-first: (C, N, H, W), or (C, H, W, N)."""
    n, h, w, c = shape
    return (c, h, w, n) if batch_last else (c, n, h, w)


def _pixels(i: int, j: int, stride: int, oh: int, ow: int, batch_last: bool) -> tuple[slice, ...]:
    """Index, into channels-first images, of the pixel at kernel offset (i, j) of every patch."""
    rows, cols, every = slice(i, i + stride * oh, stride), slice(j, j + stride * ow, stride), slice(None)
    return (every, rows, cols, every) if batch_last else (every, every, rows, cols)


def unfold(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0,
           ones: bool = False, batch_last: bool = False) -> np.ndarray:
    """Every patch of ``x`` as a column: (N, H, W, C) -> (KH * KW * C, N * OH * OW).

    Row ``(a, b, c)`` holds pixel ``(a, b)`` of channel ``c`` of every patch;
    patch ``(n, i, j)`` has its top-left corner at ``(i * stride - padding,
    j * stride - padding)`` in image ``n``. The columns are the patches in the
    order (n, i, j), or (i, j, n) with ``batch_last``. With ``ones=True`` a
    last row of ones is added, so that a product with weights whose last row
    is the bias adds the bias.

    The patches are copied from the padded images held channels-first,
    (C, N, H, W) or, with ``batch_last``, (C, H, W, N): kernel offset
    ``(i, j)`` fills its C rows from one strided slice of them. Their
    contiguous runs are then OW numbers long, or OW * N with ``batch_last``,
    which makes both this and :func:`fold` faster for images with several
    channels (docs/PERFORMANCE.md, "Multi-channel patches in position order").
    """
    n, h, w, c = x.shape
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    p = padding
    images = np.zeros(_channels_first((n, h + 2 * p, w + 2 * p, c), batch_last), dtype=x.dtype)
    channels_first = (3, 1, 2, 0) if batch_last else (3, 0, 1, 2)
    images[_pixels(p, p, 1, h, w, batch_last)] = x.transpose(channels_first)
    k = kh * kw * c
    cols = np.empty((k + 1 if ones else k, n * oh * ow), dtype=x.dtype)
    patches = _offset_slices(images, kh, kw, stride, oh, ow, batch_last)
    # One copy of all KH * KW slices, not a numpy call per offset
    # (docs/PERFORMANCE.md, "One copy of all kernel offsets").
    cols[:k].reshape(patches.shape)[...] = patches
    if ones:
        cols[k] = 1
    return cols


def _offset_slices(images: np.ndarray, kh: int, kw: int, stride: int, oh: int, ow: int,
                   batch_last: bool) -> np.ndarray:
    """Read-only view (KH, KW, ...) of channels-first images whose ``[i, j]`` is
    ``images[_pixels(i, j, stride, oh, ow, batch_last)]``."""
    c, a, b, d = images.shape  # (C, H, W, N) with batch_last, else (C, N, H, W)
    s_c, s_a, s_b, s_d = images.strides
    if batch_last:
        shape, strides = (c, oh, ow, d), (s_c, s_a * stride, s_b * stride, s_d)
        step_i, step_j = s_a, s_b
    else:
        shape, strides = (c, a, oh, ow), (s_c, s_a, s_b * stride, s_d * stride)
        step_i, step_j = s_b, s_d
    return np.lib.stride_tricks.as_strided(images, (kh, kw) + shape, (step_i, step_j) + strides,
                                           writeable=False)


def fold(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int, stride: int = 1,
         padding: int = 0, batch_last: bool = False) -> np.ndarray:
    """Adjoint of :func:`unfold`: (KH * KW * C, N * OH * OW) -> (N, H, W, C).

    Every patch entry is added back to the pixel it was copied from. Pixels
    shared by overlapping patches receive the sum. The loop runs over the
    KH * KW kernel offsets, each adding the entries at that offset of all
    patches at once, so no scatter (``np.add.at``) is needed.
    """
    n, h, w, c = x_shape
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    p = padding
    slabs = cols.reshape((kh, kw) + _channels_first((n, oh, ow, c), batch_last))
    images = np.zeros(_channels_first((n, h + 2 * p, w + 2 * p, c), batch_last), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            images[_pixels(i, j, stride, oh, ow, batch_last)] += slabs[i, j]
    inside = images[_pixels(p, p, 1, h, w, batch_last)]
    channels_last = (3, 1, 2, 0) if batch_last else (1, 2, 3, 0)
    return np.ascontiguousarray(inside.transpose(channels_last))


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0,
           ones: bool = False, batch_last: bool = False) -> np.ndarray:
    """Patch matrix of ``x``: (N, H, W, C) -> (N * OH * OW, KH * KW * C).

    Row ``(n, i, j)`` holds the patch whose top-left corner is at
    ``(i * stride - padding, j * stride - padding)`` in image ``n``, in the
    order (kernel row, kernel column, channel); the rows are in the order
    (n, i, j), or (i, j, n) with ``batch_last``. ``ones=True`` appends a
    column of ones. The result is the transpose of :func:`unfold`, so it is
    laid out column-major: each column is contiguous. Matrix products accept
    either layout; this one is the cheapest to fill.
    """
    return unfold(x, kh, kw, stride, padding, ones, batch_last).T


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int, stride: int = 1,
           padding: int = 0, batch_last: bool = False) -> np.ndarray:
    """Adjoint of :func:`im2col`: (N * OH * OW, KH * KW * C) -> (N, H, W, C).

    Every patch entry is added back to the pixel it was copied from; pixels
    shared by overlapping patches receive the sum (see :func:`fold`).
    """
    return fold(cols.T, x_shape, kh, kw, stride, padding, batch_last)
