"""Optimizer steps on numbers worked out by hand (in the comments)."""

import numpy as np
import pytest

from pycnn.layers import Param
from pycnn.optim import SGD, Adam, Momentum, make_optimizer


def param(value):
    return Param(np.array(value, dtype=np.float32))


def close(p, expected):
    np.testing.assert_allclose(p.value, expected, rtol=1e-6, atol=1e-7)


def test_sgd_step():
    p = param([1.0, -2.0, 3.0])
    p.grad = np.array([0.5, -1.0, 0.25], dtype=np.float32)
    before = p.value
    SGD([p], lr=0.1).step()
    close(p, [0.95, -1.9, 2.975])  # value - 0.1 * grad
    assert p.value is before, "updates must be in place"


def test_sgd_weight_decay():
    p = param([1.0, -2.0, 3.0])
    p.grad = np.array([0.5, -1.0, 0.25], dtype=np.float32)
    SGD([p], lr=0.1, weight_decay=0.01).step()
    # grad + 0.01 * value = [0.51, -1.02, 0.28]
    close(p, [0.949, -1.898, 2.972])
    np.testing.assert_array_equal(p.grad, [0.5, -1.0, 0.25])  # the stored gradient is left alone


def test_sgd_updates_every_param():
    a, b = param([1.0]), param([[2.0, 3.0]])
    a.grad[...] = 1.0
    b.grad[...] = -1.0
    SGD([a, b], lr=0.5).step()
    close(a, [0.5])
    close(b, [[2.5, 3.5]])


def test_momentum_two_steps():
    p = param([1.0, -2.0])
    opt = Momentum([p], lr=0.1, momentum=0.9)
    p.grad = np.array([0.5, -1.0], dtype=np.float32)
    opt.step()
    # v1 = -0.1 * g1 = [-0.05, 0.1]; x1 = x0 + v1
    close(p, [0.95, -1.9])
    p.grad = np.array([0.2, 0.4], dtype=np.float32)
    opt.step()
    # v2 = 0.9 * v1 - 0.1 * g2 = [-0.065, 0.05]; x2 = x1 + v2
    close(p, [0.885, -1.85])


def test_nesterov_two_steps():
    p = param([1.0, -2.0])
    opt = Momentum([p], lr=0.1, momentum=0.9, nesterov=True)
    p.grad = np.array([0.5, -1.0], dtype=np.float32)
    opt.step()
    # v1 = [-0.05, 0.1]; x1 = x0 + 0.9 * v1 - 0.1 * g1 = [1 - 0.045 - 0.05, -2 + 0.09 + 0.1]
    close(p, [0.905, -1.81])
    p.grad = np.array([0.2, 0.4], dtype=np.float32)
    opt.step()
    # v2 = [-0.065, 0.05]; x2 = x1 + 0.9 * v2 - 0.1 * g2 = [0.905 - 0.0585 - 0.02, -1.81 + 0.045 - 0.04]
    close(p, [0.8265, -1.805])


def test_momentum_zero_is_sgd():
    p, q = param([1.0, 2.0]), param([1.0, 2.0])
    sgd, mom = SGD([p], lr=0.1), Momentum([q], lr=0.1, momentum=0.0)
    for g in ([1.0, -1.0], [0.5, 2.0]):
        p.grad = q.grad = np.array(g, dtype=np.float32)
        sgd.step()
        mom.step()
    np.testing.assert_allclose(p.value, q.value, rtol=1e-7)


def test_momentum_weight_decay():
    p = param([2.0])
    p.grad = np.array([0.0], dtype=np.float32)
    Momentum([p], lr=0.1, momentum=0.9, weight_decay=0.5).step()
    close(p, [1.9])  # g = 0 + 0.5 * 2 = 1; v = -0.1


def test_adam_first_two_steps():
    p = param([1.0, -2.0])
    opt = Adam([p], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    p.grad = np.array([0.5, -1.0], dtype=np.float32)
    opt.step()
    # m1 = 0.1 g1 = [0.05, -0.1], v1 = 0.001 g1^2 = [0.00025, 0.001]; bias-corrected: m^ = g1,
    # v^ = g1^2, so the first step is lr * sign(g1) (up to eps)
    close(p, [0.9, -1.9])
    assert opt.t == 1
    p.grad = np.array([0.2, 0.4], dtype=np.float32)
    opt.step()
    # m2 = 0.9 m1 + 0.1 g2 = [0.065, -0.05]; v2 = 0.999 v1 + 0.001 g2^2 = [0.00028975, 0.001159]
    # m^ = m2 / 0.19 = [0.3421053, -0.2631579]; v^ = v2 / 0.001999 = [0.1449475, 0.5797899]
    # x2 = x1 - 0.1 m^ / sqrt(v^) = [0.9 - 0.0898575, -1.9 + 0.0345606]
    close(p, [0.8101425, -1.8654394])
    assert opt.t == 2


def test_adam_weight_decay_enters_the_gradient():
    p = param([1.0])
    p.grad = np.array([-0.05], dtype=np.float32)
    Adam([p], lr=0.1, weight_decay=0.1).step()
    close(p, [0.9])  # g = -0.05 + 0.1 * 1 = 0.05 > 0: the first Adam step is -lr * sign(g)


def test_adam_default_learning_rate():
    assert Adam([param([1.0])]).lr == 1e-3


def test_make_optimizer():
    ps = [param([1.0])]
    assert type(make_optimizer("sgd", ps, 0.1)) is SGD
    mom = make_optimizer("momentum", ps, 0.1, momentum=0.5, weight_decay=0.01)
    assert type(mom) is Momentum and mom.momentum == 0.5 and mom.weight_decay == 0.01 and not mom.nesterov
    adam = make_optimizer("adam", ps, 0.002)
    assert type(adam) is Adam and adam.lr == 0.002
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of sgd, momentum, adam"):
        make_optimizer("rmsprop", ps, 0.1)


@pytest.mark.parametrize("make, message", [
    (lambda ps: SGD(ps, lr=0), "learning rate must be a positive number, got 0"),
    (lambda ps: SGD(ps, lr=-1), "learning rate must be a positive number, got -1"),
    (lambda ps: SGD(ps, lr=float("nan")), "learning rate must be a positive number"),
    (lambda ps: Adam(ps, lr=float("inf")), "learning rate must be a positive number"),
    (lambda ps: SGD(ps, lr=0.1, weight_decay=-0.1), "weight_decay must be >= 0"),
    (lambda ps: Momentum(ps, lr=0.1, momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
    (lambda ps: Momentum(ps, lr=0.1, momentum=-0.5), r"momentum must be in \[0, 1\)"),
    (lambda ps: Adam(ps, beta1=1.0), r"Adam betas must be in \[0, 1\)"),
    (lambda ps: Adam(ps, beta2=-0.1), r"Adam betas must be in \[0, 1\)"),
    (lambda ps: Adam(ps, eps=0.0), "Adam eps must be a positive number, got 0.0"),
    (lambda ps: SGD([], lr=0.1), "optimizer got no parameters"),
])
def test_invalid_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message):
        make([param([1.0])])
