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


def unfold(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0,
           ones: bool = False) -> np.ndarray:
    """Every patch of ``x`` as a column: (N, H, W, C) -> (KH * KW * C, N * OH * OW).

    Row ``(a, b, c)`` holds pixel ``(a, b)`` of channel ``c`` of every patch,
    patch ``(n, i, j)`` having its top-left corner at
    ``(i * stride - padding, j * stride - padding)`` in image ``n``. With
    ``ones=True`` a last row of ones is added, (KH * KW * C + 1, N * OH * OW),
    so that a product with weights whose last row is the bias adds the bias.

    The copy runs over the KH * KW kernel offsets: each fills one contiguous
    ``(C, N, OH, OW)`` slab from a strided slice of the padded, channels-first
    images. That is several times faster than copying patch by patch, most of
    all when C is 1 (measured in docs/PERFORMANCE.md).
    """
    n, h, w, c = x.shape
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    p = padding
    images = np.zeros((c, n, h + 2 * p, w + 2 * p), dtype=x.dtype)  # channels-first, padded
    images[:, :, p : p + h, p : p + w] = x.transpose(3, 0, 1, 2)
    k = kh * kw * c
    cols = np.empty((k + 1 if ones else k, n * oh * ow), dtype=x.dtype)
    slabs = cols[:k].reshape(kh, kw, c, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            slabs[i, j] = images[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    if ones:
        cols[k] = 1
    return cols


def fold(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Adjoint of :func:`unfold`: (KH * KW * C, N * OH * OW) -> (N, H, W, C).

    Every patch entry is added back to the pixel it was copied from. Pixels
    shared by overlapping patches receive the sum. The loop runs over the
    KH * KW kernel offsets, each adding one slab of all patches at once, so
    no scatter (``np.add.at``) is needed.
    """
    n, h, w, c = x_shape
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    p = padding
    slabs = cols.reshape(kh, kw, c, n, oh, ow)
    images = np.zeros((c, n, h + 2 * p, w + 2 * p), dtype=cols.dtype)  # channels-first, padded
    for i in range(kh):
        for j in range(kw):
            images[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += slabs[i, j]
    return np.ascontiguousarray(images[:, :, p : p + h, p : p + w].transpose(1, 2, 3, 0))


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0,
           ones: bool = False) -> np.ndarray:
    """Patch matrix of ``x``: (N, H, W, C) -> (N * OH * OW, KH * KW * C).

    Row ``(n, i, j)`` holds the patch whose top-left corner is at
    ``(i * stride - padding, j * stride - padding)`` in image ``n``, in the
    order (kernel row, kernel column, channel); ``ones=True`` appends a
    column of ones. The result is the transpose of :func:`unfold`, so it is
    laid out column-major: each column is contiguous. Matrix products accept
    either layout; this one is the cheapest to fill.
    """
    return unfold(x, kh, kw, stride, padding, ones).T


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: (N * OH * OW, KH * KW * C) -> (N, H, W, C).

    Every patch entry is added back to the pixel it was copied from; pixels
    shared by overlapping patches receive the sum (see :func:`fold`).
    """
    return fold(cols.T, x_shape, kh, kw, stride, padding)
