"""What the library accepts as images and labels, checked once per call.

Images are a NumPy array of uint8 pixels 0-255 or of floats in [0, 1],
shaped (N, H, W) (one channel) or (N, H, W, C); flattened rows (N, H*W*C)
and channels-first (N, C, H, W) are unambiguous and accepted as views.
Labels are whole numbers 0..K-1, one per image. Anything else is a
:class:`DataFormatError` saying how to fix it.
"""

from __future__ import annotations

import numpy as np

from .errors import DataFormatError


def check_images(x: object, input_shape: tuple[int, int, int], what: str = "images") -> np.ndarray:
    """``x`` as images (N, H, W) or (N, H, W, C) for a model taking ``input_shape`` (H, W, C)."""
    if not isinstance(x, np.ndarray):
        raise DataFormatError(f"{what} must be a NumPy array, got {type(x).__name__}; "
                              "convert with np.asarray(images, dtype=np.uint8)")
    h, w, c = input_shape
    wanted = f"(N, {h}, {w})" if c == 1 else f"(N, {h}, {w}, {c})"
    if x.shape in ((h, w), (h, w, c), (h * w * c,)):
        raise DataFormatError(f"{what} has the shape {x.shape} of one image; pass a batch {wanted}, "
                              "for one image x[None]")
    if x.ndim == 2 and x.shape[1] == h * w * c:
        x = x.reshape(len(x), h, w, c)  # flattened rows, as MNIST is often stored
    elif x.ndim == 4 and x.shape[1:] == (c, h, w) and c != h:
        x = x.transpose(0, 2, 3, 1)  # channels first, as PyTorch stores images
    if not (x.shape[1:] == (h, w, c) or c == 1 and x.shape[1:] == (h, w)):
        raise DataFormatError(f"{what} have shape {x.shape}; this model takes {wanted}")
    _check_pixels(x, what)
    return x


def _check_pixels(x: np.ndarray, what: str) -> None:
    if x.dtype == np.uint8:
        return
    if x.dtype.kind != "f":
        hint = ("convert with x.astype(np.uint8)" if x.dtype.kind in "iu" and x.size and 0 <= x.min() and
                x.max() <= 255 else "give uint8 pixels 0-255 or floats in [0, 1]")
        raise DataFormatError(f"{what} are {x.dtype}; pycnn takes uint8 pixels 0-255 or floats in [0, 1]: {hint}")
    if not x.size:
        return
    lo, hi = float(np.min(x)), float(np.max(x))
    if not 0 <= lo <= hi <= 1:  # NaN fails too
        hint = ("divide them by 255" if 0 <= lo and hi <= 255 else
                "scale them into [0, 1], e.g. (x - x.min()) / (x.max() - x.min())")
        raise DataFormatError(f"{what} are floats from {lo:g} to {hi:g}; pycnn takes uint8 pixels 0-255 or "
                              f"floats in [0, 1]: {hint}")


def check_labels(y: object, num_classes: int, what: str = "labels") -> np.ndarray:
    """``y`` as int64 labels (N,) in 0..num_classes-1."""
    if isinstance(y, (str, bytes)) or y is None:
        raise DataFormatError(f"{what} must be an array of whole numbers, got {type(y).__name__}")
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise DataFormatError(f"{what} must be whole numbers 0..{num_classes - 1}, got {y.dtype}; "
                              "convert whole-valued floats with y.astype(int)")
    if y.ndim != 1:
        raise DataFormatError(f"{what} have shape {y.shape}; expected one label per image, (N,)")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataFormatError(f"{what} go from {y.min()} to {y.max()}, outside the model's classes "
                              f"0..{num_classes - 1}")
    return y.astype(np.int64, copy=False)
