"""Patch extraction for convolution and pooling, and its adjoint.

Images are channels-last, ``(N, H, W, C)``, so one patch is a contiguous
run of ``KH * KW * C`` numbers in the order (kernel row, kernel column,
channel), and a convolution is a single matrix product of the patch matrix
with the weights reshaped to ``(KH * KW * C, F)``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


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


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad the two spatial axes of ``x`` (N, H, W, C)."""
    if padding == 0:
        return x
    p = padding
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


def windows(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """A read-only view of every patch: (N, H, W, C) -> (N, OH, OW, KH, KW, C).

    Built with stride tricks over the padded input, so nothing is copied.
    """
    n, h, w, c = x.shape
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    xp = np.ascontiguousarray(pad(x, padding))
    sn, sh, sw, sc = xp.strides
    return as_strided(
        xp,
        shape=(n, oh, ow, kh, kw, c),
        strides=(sn, sh * stride, sw * stride, sh, sw, sc),
        writeable=False,
    )


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Patch matrix of ``x``: (N, H, W, C) -> (N * OH * OW, KH * KW * C).

    Row ``(n, i, j)`` holds the patch whose top-left corner is at
    ``(i * stride - padding, j * stride - padding)`` in image ``n``.
    """
    v = windows(x, kh, kw, stride, padding)
    n, oh, ow = v.shape[:3]
    return v.reshape(n * oh * ow, kh * kw * x.shape[3])


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: (N * OH * OW, KH * KW * C) -> (N, H, W, C).

    Every patch entry is added back to the pixel it was copied from. Pixels
    shared by overlapping patches receive the sum. The loop runs over the
    KH * KW kernel offsets, each adding one strided slab of all patches at
    once, so no scatter (``np.add.at``) is needed.
    """
    n, h, w, c = x_shape
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    patches = cols.reshape(n, oh, ow, kh, kw, c)
    out = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)
    for i in range(kh):
        rows = slice(i, i + stride * oh, stride)
        for j in range(kw):
            out[:, rows, j : j + stride * ow : stride, :] += patches[:, :, :, i, j, :]
    if padding:
        out = out[:, padding : padding + h, padding : padding + w, :]
    return out
