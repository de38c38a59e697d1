"""pycnn.divergence: which losses have diverged, and which weights a diverged run keeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pycnn.divergence import EXPLODED, DivergenceGuard
from pycnn.errors import DivergedError
from pycnn.layers import Param


def _param(value: float) -> Param:
    return Param(np.full((2, 3), value, dtype=np.float32))


def test_the_limit_is_a_hundred_times_the_first_loss_or_ln_k():
    guard = DivergenceGuard([_param(1.0)], num_classes=10)
    guard.before_update(0.5, step=1, epoch=1, lr=0.1)  # below ln 10: ln K is the yardstick
    assert guard.limit() == pytest.approx(EXPLODED * math.log(10))
    guard = DivergenceGuard([_param(1.0)], num_classes=10)
    guard.before_update(5.0, step=1, epoch=1, lr=0.1)
    assert guard.limit() == pytest.approx(EXPLODED * 5.0)


def test_an_exploded_loss_keeps_the_finite_weights_it_came_from():
    p = _param(1.0)
    guard = DivergenceGuard([p], num_classes=10)
    guard.before_update(2.3, step=1, epoch=1, lr=0.1)
    p.value[...] = 7.0  # the update: finite weights, whose loss then explodes
    with pytest.raises(DivergedError, match=r"reached 1e\+03 at step 2 \(epoch 1\), far above its start") as info:
        guard.before_update(1000.0, step=2, epoch=1, lr=0.1)
    assert info.value.step == 2 and info.value.lr == 0.1
    np.testing.assert_array_equal(p.value, 7.0)


def test_a_nan_loss_from_broken_weights_puts_back_the_weights_before_the_update():
    p = _param(1.0)
    guard = DivergenceGuard([p], num_classes=10)
    guard.before_update(2.3, step=1, epoch=1, lr=0.5)
    p.value[0, 0] = np.nan  # the update broke the weights
    with pytest.raises(DivergedError, match=r"became nan at step 2 \(epoch 1\); lower the learning rate \(it is 0\.5"):
        guard.before_update(float("nan"), step=2, epoch=1, lr=0.5)
    np.testing.assert_array_equal(p.value, 1.0)
