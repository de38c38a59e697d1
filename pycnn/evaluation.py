"""The test-set evaluation of a model: accuracy, confusion matrix, per-class figures and mistakes.

:class:`Evaluator` works in slices so the browser worker stays responsive;
:func:`evaluation_report` does it in one go (the CLI's ``pycnn evaluate``).
Every report is plain data (see :meth:`Evaluator.result`).
"""

from __future__ import annotations

import time

import numpy as np

from .errors import SessionError
from .insight import images
from .metrics import accuracy, confusion_matrix, per_class_accuracy
from .model import Sequential


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


def page_report(evaluator: Evaluator) -> dict:
    """A finished evaluation's :meth:`Evaluator.result` plus what the page draws from it:
    "confusion_share" (each count over its row's total, for shading) and "gallery_images"
    (an image block of the gallery's images, in its order)."""
    report = evaluator.result()
    counts = np.asarray(report["confusion"], dtype=np.float64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    report["confusion_share"] = np.round(share, 4).tolist()
    report["gallery_images"] = images(evaluator.x, [g["index"] for g in report["gallery"]])
    return report


class Evaluation:
    """The page's evaluation of its model: the one running (at most one), whether it was
    cancelled, and the last finished report with the model it is of."""

    def __init__(self) -> None:
        self.evaluator: Evaluator | None = None
        self.cancelled = False
        self.report: dict | None = None
        self.model: Sequential | None = None  # the model of the report

    @property
    def running(self) -> bool:
        return self.evaluator is not None

    def progress(self) -> dict | None:
        return None if self.evaluator is None else self.evaluator.progress()

    def status(self, model: Sequential | None) -> str:
        """"none" (no report), "current" (a report of ``model``) or "stale" (of another model)."""
        return "none" if self.report is None else ("current" if self.model is model else "stale")

    def start(self, model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
        self.evaluator, self.cancelled = Evaluator(model, x, y, batch_size=batch_size), False
        return self.evaluator.progress()

    def cancel(self) -> bool:
        """Drop the running evaluation (the next :meth:`slice` says so); True if one was running."""
        if self.evaluator is None:
            return False
        self.evaluator, self.cancelled = None, True
        return True

    def slice(self, max_seconds: float, info: dict | None) -> dict:
        """Evaluate for about ``max_seconds``: {"progress", "report" (once done, with "model": ``info``),
        "cancelled"}. Raises SessionError without an evaluation started (or cancelled)."""
        evaluator = self.evaluator
        if evaluator is None:
            if self.cancelled:
                return {"progress": None, "report": None, "cancelled": True}
            raise SessionError("no evaluation is running: call start_evaluation first")
        progress = evaluator.run(max_seconds=float(max_seconds))
        if not evaluator.done:
            return {"progress": progress, "report": None, "cancelled": False}
        self.report, self.model, self.evaluator = {**page_report(evaluator), "model": info}, evaluator.model, None
        return {"progress": progress, "report": self.report, "cancelled": False}

    def cell(self, label: int, predicted: int, x: np.ndarray, classes: int = 10) -> dict:
        """The test images ``x`` in one confusion-matrix cell of the last report:
        {"label", "predicted", "cell_count", "indices" (the first cell_limit)} plus their image block."""
        if self.report is None:
            raise SessionError("no finished evaluation: evaluate the model first")
        for name, value in (("label", label), ("predicted", predicted)):
            if isinstance(value, bool) or int(value) != value or not 0 <= value < classes:
                raise ValueError(f"{name} must be a digit from 0 to {classes - 1}, got {value!r}")
        label, predicted = int(label), int(predicted)
        indices = self.report["cells"][label][predicted]
        return {"label": label, "predicted": predicted, "cell_count": self.report["confusion"][label][predicted],
                "indices": list(indices), **images(x, indices)}
