"""What the network learned, as plain data for the page to draw.

Every function returns JSON-able values (dicts, lists, ints, floats, None)
plus image pixels as ``bytes``, which Pyodide's ``toJs`` turns into a
``Uint8Array``. Sets of images share one layout, an *image block*::

    {"count": N, "height": H, "width": W, "format": "rgba" | "grey",
     "pixels": bytes of N * H * W * 4 (rgba) or N * H * W (grey)}

Image ``k`` occupies ``pixels[k*H*W*4 : (k+1)*H*W*4]`` in RGBA, so JavaScript
can wrap that slice in an ``ImageData(W, H)`` as it is; RGBA images are grey
(R = G = B) and opaque. Nothing here trains or changes a model.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np

from .layers import Conv2D, ReLU
from .metrics import accuracy, confusion_matrix, per_class_accuracy
from .model import ModelFormatError, Sequential, load_model

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
    acts = model.activations(image[None])
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


# -- evaluation ----------------------------------------------------------------


class Evaluator:
    """Test-set evaluation in slices, so the browser worker stays responsive.

    ``run`` predicts the next chunks of ``batch_size`` images (with
    :meth:`Sequential.predict_proba`); once :attr:`done`, ``result()`` gives
    the report. Do not train the model between ``run`` calls: the report
    would mix two models.
    """

    def __init__(self, model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 500,
                 cell_limit: int = 50, gallery_size: int = 60) -> None:
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"evaluation needs as many labels as images, at least one: "
                             f"got {len(x)} images and {len(y)} labels")
        self.model, self.x, self.y = model, x, np.asarray(y).astype(np.int64)
        self.batch_size, self.cell_limit, self.gallery_size = batch_size, cell_limit, gallery_size
        self.pred = np.zeros(len(x), dtype=np.int64)
        self.confidence = np.zeros(len(x), dtype=np.float32)
        self.position = 0  # images evaluated so far

    @property
    def done(self) -> bool:
        return self.position >= len(self.x)

    def progress(self) -> dict:
        return {"evaluated": self.position, "total": len(self.x), "done": self.done}

    def run(self, max_seconds: float | None = None, max_batches: int | None = None) -> dict:
        """Evaluate chunks for about ``max_seconds`` and/or at most ``max_batches``
        (at least one unless done; everything left when neither is given).
        Returns :meth:`progress`."""
        start, batches = time.perf_counter(), 0
        while not self.done:
            lo, hi = self.position, self.position + self.batch_size
            proba = self.model.predict_proba(self.x[lo:hi], self.batch_size)
            self.pred[lo:hi] = proba.argmax(axis=1)
            self.confidence[lo:hi] = proba.max(axis=1)
            self.position, batches = min(hi, len(self.x)), batches + 1
            if max_batches is not None and batches >= max_batches:
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
        return self.progress()

    def result(self) -> dict:
        """The report (all plain data; per-class accuracy is None for an absent class):

        ``count``, ``correct``, ``accuracy``; ``per_class_accuracy`` and
        ``class_counts`` (K each); ``confusion`` (K x K, rows true, columns
        predicted); ``cells`` (K x K lists of the first ``cell_limit`` image
        indices in each cell, in test-set order) and ``cell_limit``;
        ``mistakes`` (how many); ``gallery``: up to ``gallery_size`` mistakes,
        most confident first, each ``{"index", "label", "predicted", "confidence"}``.
        """
        if not self.done:
            raise RuntimeError(f"evaluation is not finished ({self.position}/{len(self.x)} images): "
                               f"call run() until done")
        k = self.model.num_classes
        cm = confusion_matrix(self.y, self.pred, k)
        per_class = [None if np.isnan(a) else float(a) for a in per_class_accuracy(cm)]
        return {"count": len(self.y), "correct": int(np.trace(cm)),
                "accuracy": accuracy(self.pred, self.y), "per_class_accuracy": per_class,
                "class_counts": cm.sum(axis=1).tolist(), "confusion": cm.tolist(),
                "cells": self._cells(k), "cell_limit": self.cell_limit,
                "mistakes": int(len(self.y) - np.trace(cm)), "gallery": self._gallery()}

    def _cells(self, k: int) -> list[list[list[int]]]:
        """Image indices (first ``cell_limit``) for each (true, predicted) cell."""
        code = self.y * k + self.pred
        order = np.argsort(code, kind="stable")  # by cell, then by index
        bounds = np.searchsorted(code[order], np.arange(k * k + 1))
        flat = [order[a : min(b, a + self.cell_limit)].tolist() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return [flat[t * k : (t + 1) * k] for t in range(k)]

    def _gallery(self) -> list[dict]:
        wrong = np.flatnonzero(self.pred != self.y)
        wrong = wrong[np.argsort(-self.confidence[wrong], kind="stable")][: self.gallery_size]
        return [{"index": int(i), "label": int(self.y[i]), "predicted": int(self.pred[i]),
                 "confidence": float(self.confidence[i])} for i in wrong]


def evaluation_report(model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 500,
                      cell_limit: int = 50, gallery_size: int = 60) -> dict:
    """:meth:`Evaluator.result` for images ``x`` (N, H, W) and labels ``y`` (N,), in one go."""
    evaluator = Evaluator(model, x, y, batch_size, cell_limit, gallery_size)
    evaluator.run()
    return evaluator.result()


# -- charts --------------------------------------------------------------------


def downsample(y: Sequence[float], max_points: int = 2000) -> np.ndarray:
    """Indices (sorted, at most ``max_points`` >= 4) of points of ``y`` (N,) worth drawing.

    Keeps the first and last points and, in each of (max_points - 2) // 2
    equal runs of the points between, the lowest and the highest, so spikes
    and the envelope of a noisy curve survive.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    m, buckets = n - 2, (max_points - 2) // 2
    bucket = np.arange(m, dtype=np.int64) * buckets // m  # non-decreasing: every bucket is one block
    order = np.lexsort((y[1:-1], bucket))  # by bucket, then value
    starts = np.searchsorted(bucket, np.arange(buckets))
    ends = np.append(starts[1:], m) - 1
    return np.unique(np.concatenate(([0, n - 1], order[starts] + 1, order[ends] + 1)))


class ChartHistory:
    """Loss per step and accuracy per epoch over several training runs, on one step axis.

    Feed it the Trainer's events with :meth:`extend`. Steps count on across
    runs: a run that starts at global step ``s`` draws its step ``i`` at
    ``s + i``. Call :meth:`start_run` before each new Trainer's events (a
    step number that does not increase also starts a new run). The smoothed
    loss is an exponential moving average with weight ``smoothing`` on the
    past, debiased so its first value is the first loss, restarted each run.
    """

    def __init__(self, smoothing: float = 0.98, max_points: int = 2000) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
        self.smoothing, self.max_points = smoothing, max_points
        self.steps: list[int] = []           # global step of each loss
        self.loss: list[float] = []
        self.smoothed: list[float] = []
        self.epochs: list[dict] = []         # {"step", "run", "epoch", "train_accuracy", "test_accuracy"}
        self.runs: list[dict] = []           # {"start", "end"}: global steps before its first / at its last step

    @property
    def step(self) -> int:
        """The global step of the latest loss (0 before any)."""
        return self.runs[-1]["end"] if self.runs else 0

    def start_run(self) -> None:
        """Begin a new run at the current global step."""
        self.runs.append({"start": self.step, "end": self.step})
        self._ema, self._ema_steps, self._last = 0.0, 0, 0

    def extend(self, events: Iterable[dict]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: dict) -> None:
        """Record one Trainer event; events of other kinds are ignored."""
        if event.get("kind") == "step":
            self._add_step(int(event["step"]), float(event["loss"]))
        elif event.get("kind") == "epoch":
            if not self.runs:
                self.start_run()
            self.epochs.append({"step": self.step, "run": len(self.runs), "epoch": int(event["epoch"]),
                                "train_accuracy": event["train_accuracy"],
                                "test_accuracy": event.get("test_accuracy")})

    def _add_step(self, step: int, loss: float) -> None:
        if not self.runs or step <= self._last:
            self.start_run()
        self._last = step
        run = self.runs[-1]
        run["end"] = run["start"] + step
        b = self.smoothing
        self._ema = b * self._ema + (1 - b) * loss
        self._ema_steps += 1
        self.steps.append(run["end"])
        self.loss.append(loss)
        self.smoothed.append(self._ema / (1 - b**self._ema_steps))

    def series(self) -> dict:
        """What to draw; every series is ``{"x": [global steps], "y": [values]}``.

        ``loss`` and ``loss_smoothed`` are per step, each downsampled to at
        most ``max_points``; ``train_accuracy`` and ``test_accuracy`` are per
        epoch, at the step that ended it (epochs without a test set are left
        out). ``runs`` lists ``{"start", "end"}`` of each run; ``steps`` is the
        last global step.
        """
        steps = np.asarray(self.steps, dtype=np.int64)
        out = {"steps": self.step, "runs": [dict(r) for r in self.runs]}
        for key, values in (("loss", self.loss), ("loss_smoothed", self.smoothed)):
            keep = downsample(values, self.max_points)
            out[key] = {"x": steps[keep].tolist(), "y": np.asarray(values)[keep].tolist()}
        for key in ("train_accuracy", "test_accuracy"):
            points = [e for e in self.epochs if e[key] is not None]
            out[key] = {"x": [e["step"] for e in points], "y": [float(e[key]) for e in points]}
        return out


# -- model files ---------------------------------------------------------------

_HINT = "choose a .npz model saved by `pycnn train --save` or by this page"


def read_model_file(data: bytes | bytearray | memoryview, input_shape: tuple[int, int, int] = (28, 28, 1),
                    num_classes: int = 10) -> Sequential:
    """The model in an uploaded file's bytes, or :class:`ModelFormatError` saying why not.

    :func:`load_model` does every check, including refusing a model for
    other images than ``input_shape`` (H, W, C) or another number of classes;
    this adds a hint on what to choose instead.
    """
    try:
        return load_model(bytes(data), input_shape=input_shape, num_classes=num_classes)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{exc}; {_HINT}") from None


def model_summary(model: Sequential) -> dict:
    """Preset name and hyperparameters, layers and parameter count, for display.

    ``{"name", "hparams", "params": int, "input_shape": [H, W, C], "num_classes",
    "layers": [{"name", "type", "output_shape": [...], "params": int}]}``.
    """
    layers = [{"name": name, "type": type(layer).__name__, "output_shape": list(shape),
               "params": int(sum(p.value.size for p in layer.params()))}
              for name, layer, shape in zip(model.names, model.layers, model.shapes, strict=True)]
    return {"name": model.spec["name"], "hparams": dict(model.spec.get("hparams", {})),
            "params": sum(layer["params"] for layer in layers), "input_shape": list(model.input_shape),
            "num_classes": model.num_classes, "layers": layers}
