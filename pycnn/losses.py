"""Softmax cross-entropy, the loss every pycnn model is trained with."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log of the softmax of ``logits`` (N, K), via log-sum-exp.

    Subtracting the row maximum first keeps ``exp`` from overflowing.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` (N, K): class probabilities that sum to 1."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of the softmax of ``logits`` against integer labels.

    Args:
        logits: (N, K) unnormalised class scores.
        labels: (N,) integer classes in [0, K).

    Returns:
        ``(loss, dlogits)``: the mean loss over the batch as a float, and its
        gradient with respect to ``logits``, ``(softmax(logits) - onehot) / N``,
        shape (N, K).
    """
    n, k = logits.shape
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}); got values from {labels.min()} to {labels.max()}")
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(logp[rows, labels].mean())
    dlogits = np.exp(logp)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, dlogits
