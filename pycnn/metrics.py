"""Classification metrics: accuracy and the confusion matrix.

Predictions and labels are integer class ids (N,); turn logits (N, C) into
predictions with `logits.argmax(axis=1)` first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def accuracy(pred: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of predictions (N,) equal to labels (N,)."""
    pred, labels = _class_ids(pred, labels)
    if pred.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(pred == labels))


def confusion_matrix(labels: ArrayLike, pred: ArrayLike, num_classes: int = 10) -> np.ndarray:
    """Counts (C, C) int64: entry [t, p] is how many samples of class t were predicted p.

    Rows are true classes, columns predicted classes; labels and pred are (N,)
    class ids in 0..C-1.
    """
    labels, pred = _class_ids(labels, pred)
    for name, a in (("labels", labels), ("pred", pred)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1} (found {a.min()}..{a.max()})")
    # astype(np.intp): Pyodide's 32-bit numpy refuses int64 input to bincount
    flat = np.bincount((labels * num_classes + pred).astype(np.intp), minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (C,) float64 from a confusion matrix (C, C).

    A class with no samples (an all-zero row) gets nan, not 0, so it cannot be
    mistaken for a class that is always missed.
    """
    totals = cm.sum(axis=1)
    out = np.full(len(cm), np.nan)
    np.divide(np.diag(cm), totals, out=out, where=totals > 0)
    return out


def format_confusion_matrix(cm: np.ndarray) -> str:
    """Text table of a confusion matrix (C, C): rows true, columns predicted,
    with each class's accuracy in the last column."""
    cell = max(len(str(cm.max(initial=0))), 3)
    header = "true\\pred " + " ".join(f"{p:>{cell}}" for p in range(len(cm))) + " |    acc"
    lines = [header, "-" * len(header)]
    for t, (row, acc) in enumerate(zip(cm, per_class_accuracy(cm), strict=True)):
        counts = " ".join(f"{n:>{cell}}" for n in row)
        lines.append(f"{t:>9} {counts} | " + ("     -" if np.isnan(acc) else f"{acc:6.1%}"))
    return "\n".join(lines)


def _class_ids(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check two arrays are integer class ids of the same shape (N,)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two 1-D arrays of class ids with equal length, got shapes {a.shape} and {b.shape}")
    for x in (a, b):
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"class ids must be integers, got {x.dtype}; use logits.argmax(axis=1)")
    return a.astype(np.int64), b.astype(np.int64)
