"""What the network learned, as images for the page to draw.

Every function returns JSON-able values (dicts, lists, ints, floats, None)
plus image pixels as ``bytes``, which Pyodide's ``toJs`` turns into a
``Uint8Array``. Sets of images share one layout, an *image block*::

    {"count": N, "height": H, "width": W, "format": "rgba" | "grey",
     "pixels": bytes of N * H * W * 4 (rgba) or N * H * W (grey)}

Image ``k`` occupies ``pixels[k*H*W*4 : (k+1)*H*W*4]`` in RGBA, so JavaScript
can wrap that slice in an ``ImageData(W, H)`` as it is; RGBA images are grey
(R = G = B) and opaque. Nothing here trains or changes a model. The test-set
evaluation is in :mod:`pycnn.evaluation`, the loss chart in :mod:`pycnn.chart`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .layers import Conv2D, ReLU
from .model import Sequential

# -- image blocks --------------------------------------------------------------


def image_block(grey: np.ndarray, rgba: bool = True) -> dict:
    """An image block for uint8 images (N, H, W), black 0 and white 255."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    n, h, w = grey.shape
    if rgba:
        out = np.empty((n, h, w, 4), dtype=np.uint8)
        out[..., :3] = grey[..., None]
        out[..., 3] = 255
        grey = out
    return {"count": n, "height": h, "width": w, "format": "rgba" if rgba else "grey",
            "pixels": grey.tobytes()}


def _as_uint8(x: np.ndarray) -> np.ndarray:
    """Images (N, H, W) as uint8: uint8 kept, floats in [0, 1] scaled to 0..255."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def images(x: np.ndarray, indices: Iterable[int], rgba: bool = True) -> dict:
    """Image block of ``x[indices]`` for images ``x`` (N, H, W), uint8 or floats in [0, 1]."""
    idx = np.asarray(list(indices), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(x)):
        raise ValueError(f"image indices must lie in 0..{len(x) - 1} (found {idx.min()}..{idx.max()})")
    sel = np.asarray(x)[idx]
    if sel.ndim != 3:
        raise ValueError(f"expected images (N, H, W), got shape {np.shape(x)}")
    return image_block(_as_uint8(sel), rgba)


def dataset_sample(x: np.ndarray, y: np.ndarray, n: int = 64, seed: int | None = None,
                   rgba: bool = True) -> dict:
    """``n`` random images of ``x`` (N, H, W) without repeats, with their labels ``y`` (N,).

    Returns an image block plus ``"indices"`` and ``"labels"`` (lists of ints).
    """
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    idx = np.random.default_rng(seed).choice(len(x), size=min(int(n), len(x)), replace=False)
    return {"indices": idx.tolist(), "labels": np.asarray(y)[idx].astype(int).tolist(),
            **images(x, idx, rgba)}


# -- inside the network --------------------------------------------------------


def filter_images(model: Sequential, rgba: bool = True) -> dict | None:
    """The first convolution's filters as grey images (F, KH, KW), or None without one.

    Each filter is scaled by its own largest absolute weight ``m``
    symmetrically around zero: pixel = 127.5 * (1 + w / m), rounded, so zero
    weight is mid-grey (128), +m white and -m black; the sign stays readable
    (white is where ink excites the filter). A filter with several input
    channels shows their mean. Returns an image block plus ``"layer"`` (its
    name) and ``"scale"`` (F floats: each filter's ``m``).
    """
    found = [(name, layer) for name, layer in zip(model.names, model.layers, strict=True) if isinstance(layer, Conv2D)]
    if not found:
        return None
    name, conv = found[0]
    w = conv.W.value.mean(axis=2).transpose(2, 0, 1)  # (KH, KW, C, F) -> (F, KH, KW)
    scale = np.abs(w).max(axis=(1, 2))
    safe = np.where(scale > 0, scale, 1)[:, None, None]
    grey = np.rint(127.5 * (1 + w / safe)).astype(np.uint8)
    return {"layer": name, "scale": scale.astype(float).tolist(), **image_block(grey, rgba)}


def feature_maps(model: Sequential, image: np.ndarray, rgba: bool = True) -> list[dict]:
    """Each convolution's activation maps for one image (H, W) or (H, W, C).

    ``image`` is uint8 or float in [0, 1] (a preprocessed digit is float32
    (28, 28)). One forward pass; for every Conv2D the maps after the ReLU
    that follows it (its raw output if none does). Each map (OH, OW) is
    scaled on its own: 0 (or its minimum, if negative) is black, its maximum
    white; an all-zero map is black. Returns one dict per convolution, in
    order: an image block of ``count`` = F maps, plus ``"layer"`` (conv name),
    ``"activation"`` (the layer whose output is shown) and ``"max"`` (F floats).
    """
    image = np.asarray(image)
    if image.shape not in (model.input_shape, model.input_shape[:-1]):
        raise ValueError(f"expected one image of shape {model.input_shape[:-1]} or {model.input_shape}, "
                         f"got {image.shape}")
    return activation_maps(model, model.activations(image[None]), rgba)


def activation_maps(model: Sequential, acts: list[tuple[str, np.ndarray]], rgba: bool = True) -> list[dict]:
    """:func:`feature_maps` from ``model.activations`` of one image, already computed
    (so a prediction and its maps come from the same forward pass)."""
    out = []
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, Conv2D):
            continue
        j = i + 1 if i + 1 < len(model.layers) and isinstance(model.layers[i + 1], ReLU) else i
        name, a = acts[j]
        maps = a[0].transpose(2, 0, 1)  # (OH, OW, F) -> (F, OH, OW)
        out.append({"layer": model.names[i], "activation": name,
                    "max": maps.max(axis=(1, 2)).astype(float).tolist(),
                    **image_block(_scale_maps(maps), rgba)})
    return out


def _scale_maps(maps: np.ndarray) -> np.ndarray:
    """Maps (F, H, W) to uint8, each from min(0, its min) -> 0 to its max -> 255."""
    lo = np.minimum(maps.min(axis=(1, 2), keepdims=True), 0)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    scaled = (maps - lo) / np.where(span > 0, span, 1)
    return np.rint(255 * scaled).astype(np.uint8)
