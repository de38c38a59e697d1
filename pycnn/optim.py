"""Optimizers: each takes the model's Param list once and updates it in place.

They see only ``Param.value`` and ``Param.grad``, never a layer. Updates are
in place so every reference to a weight array stays valid. ``weight_decay``
adds the L2 term ``weight_decay * value`` to each gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

import numpy as np

from .errors import ConfigError
from .layers import Param


def _number(value: object) -> bool:
    """A finite real number (not a bool, not a string such as "0.01")."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


class Optimizer:
    """Common constructor and the L2-regularised gradient."""

    def __init__(self, params: Iterable[Param], lr: float, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got no parameters")
        if not _number(lr) or lr <= 0:
            raise ConfigError(f"learning rate must be a positive number, got {lr!r}")
        if not _number(weight_decay) or weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)

    def gradient(self, p: Param) -> np.ndarray:
        if self.weight_decay:
            return p.grad + self.weight_decay * p.value
        return p.grad

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Plain gradient descent: ``value -= lr * grad``."""

    def step(self) -> None:
        for p in self.params:
            p.value -= self.lr * self.gradient(p)


class Momentum(Optimizer):
    """SGD with (optionally Nesterov) momentum.

    ``v = momentum * v - lr * grad``, then ``value += v``; Nesterov applies
    ``value += momentum * v - lr * grad``, looking one step ahead.
    """

    def __init__(self, params: Iterable[Param], lr: float, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        if not _number(momentum) or not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), nesterov
        self.velocity = [np.zeros_like(p.value) for p in self.params]

    def step(self) -> None:
        for p, v in zip(self.params, self.velocity, strict=True):
            g = self.gradient(p)
            v *= self.momentum
            v -= self.lr * g
            if self.nesterov:
                p.value += self.momentum * v - self.lr * g
            else:
                p.value += v


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015).

    With ``t`` the step count: ``m = beta1 * m + (1 - beta1) * g`` (first moment),
    ``v = beta2 * v + (1 - beta2) * g**2`` (second moment), bias-corrected
    ``m_hat = m / (1 - beta1**t)``, ``v_hat = v / (1 - beta2**t)``, and
    ``value -= lr * m_hat / (sqrt(v_hat) + eps)``.
    """

    def __init__(self, params: Iterable[Param], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        if not (_number(beta1) and _number(beta2) and 0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ConfigError(f"Adam betas must be in [0, 1), got {beta1!r}, {beta2!r}")
        if not (_number(eps) and eps > 0):
            raise ConfigError(f"Adam eps must be a positive number, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        # lr * m_hat / (sqrt(v_hat) + eps) == (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2)):
        # one division pass over the weights fewer (docs/PERFORMANCE.md, "Adam folds the bias corrections").
        scale, eps = self.lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = self.gradient(p)
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            update = np.sqrt(v)
            update += eps
            np.divide(m, update, out=update)
            update *= scale
            p.value -= update


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
# A learning rate that trains the presets well with each optimizer (what the page offers first).
DEFAULT_LR = {"adam": 0.001, "momentum": 0.01, "sgd": 0.1}


def make_optimizer(name: str, params: Iterable[Param], lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> Optimizer:
    """Build an optimizer from its name: ``"sgd"``, ``"momentum"`` or ``"adam"``."""
    if name == "sgd":
        return SGD(params, lr, weight_decay=weight_decay)
    if name == "momentum":
        return Momentum(params, lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
