"""Softmax cross-entropy: value by hand, gradient by finite differences, stability."""

import math

import numpy as np
import pytest

from pycnn.losses import log_softmax, softmax, softmax_cross_entropy


def test_loss_value_by_hand():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    # row 0: -log(e^3 / (e + e^2 + e^3)); row 1: -log(1/3)
    row0 = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)))
    expected = (row0 + math.log(3)) / 2
    loss, dlogits = softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected, rel=1e-12)
    p0 = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(dlogits, [(p0 - [0, 0, 1]) / 2, (np.full(3, 1 / 3) - [1, 0, 0]) / 2], rtol=1e-12)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 10)) * 3
    labels = rng.integers(0, 10, 5)
    _, dlogits = softmax_cross_entropy(logits, labels)
    h = 1e-6
    numeric = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        old = logits[idx]
        logits[idx] = old + h
        plus, _ = softmax_cross_entropy(logits, labels)
        logits[idx] = old - h
        minus, _ = softmax_cross_entropy(logits, labels)
        logits[idx] = old
        numeric[idx] = (plus - minus) / (2 * h)
    error = np.max(np.abs(dlogits - numeric)) / np.max(np.abs(dlogits) + np.abs(numeric))
    assert error < 1e-7


def test_gradient_rows_sum_to_zero_and_mean_over_batch():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((8, 4))
    labels = rng.integers(0, 4, 8)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-15)
    # the loss of the batch is the mean of the per-example losses
    singles = [softmax_cross_entropy(logits[i : i + 1], labels[i : i + 1])[0] for i in range(8)]
    assert loss == pytest.approx(np.mean(singles), rel=1e-12)


def test_huge_logits_stay_finite():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 2]))
    # row 0 is certain and right (loss 0); row 1 splits evenly between classes 1 and 2 (loss log 2)
    assert loss == pytest.approx(math.log(2) / 2, rel=1e-6)
    assert np.all(np.isfinite(dlogits))
    wrong, _ = softmax_cross_entropy(logits, np.array([2, 0]))
    assert math.isfinite(wrong) and wrong == pytest.approx((2e4 + 2e4 + math.log(2)) / 2, rel=1e-6)


def test_shift_invariance_and_dtype():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 5)).astype(np.float32)
    labels = np.array([0, 4, 2])
    a, da = softmax_cross_entropy(logits, labels)
    b, db = softmax_cross_entropy(logits + 100, labels)
    assert a == pytest.approx(b, abs=1e-4)
    np.testing.assert_allclose(da, db, atol=1e-6)
    assert da.dtype == np.float32
    assert softmax_cross_entropy(logits.astype(np.float64), labels)[1].dtype == np.float64


def test_softmax_and_log_softmax():
    logits = np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])
    np.testing.assert_allclose(softmax(logits), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-12)
    np.testing.assert_allclose(log_softmax(logits), np.log([[0.25, 0.75], [0.5, 0.5]]), rtol=1e-12)
    assert np.all(np.isfinite(log_softmax(np.array([[-1e30, 0.0, 1e30]]))))


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 2]), r"labels must have shape \(2,\)"),
    (np.array([[0], [1]]), r"labels must have shape \(2,\)"),
    (np.array([0, 3]), r"labels must lie in \[0, 3\)"),
    (np.array([-1, 0]), r"labels must lie in \[0, 3\)"),
])
def test_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        softmax_cross_entropy(np.zeros((2, 3)), labels)
