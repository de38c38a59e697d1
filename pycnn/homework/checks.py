"""The checks of every exercise: shapes, values against pycnn's own code, float64 gradient checks.

Each check builds the student's object and pycnn's from the same seeded
random numbers, runs both, and returns :class:`~.compare.Row` objects: one
per array compared with pycnn's (float32, :data:`~.compare.VALUE_TOL`) and
one per gradient compared with central differences (float64,
:data:`~.compare.GRAD_TOL`). The inputs are small, so all checks run in a
second or two, also in the browser.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import layers, losses, optim
from ..im2col import im2col as pycnn_im2col
from .compare import GRAD_TOL, Row, compare, numeric_gradient

Check = Callable[[object, np.random.Generator], list[Row]]


def _unchanged(dout: np.ndarray, before: np.ndarray) -> Row:
    same = dout.shape == before.shape and np.array_equal(dout, before)
    return Row("dout left unchanged", None, None, bool(same), "" if same else "backward wrote into dout")


def _forward(layer: layers.Layer, base: type, x: np.ndarray) -> np.ndarray:
    """The student's forward if they wrote one, else pycnn's (a backward check needs some forward)."""
    try:
        return layer.forward(x)
    except NotImplementedError:
        return base.forward(layer, x)


def _as64(layer: layers.Layer) -> layers.Layer:
    for p in layer.params():
        p.value = p.value.astype(np.float64)
    return layer


def _gradient_rows(make: Callable[[], layers.Layer], base: type, x: np.ndarray,
                   rng: np.random.Generator, what: str = "") -> list[Row]:
    """dx and every parameter gradient of the student's layer against float64 central differences."""
    layer = _as64(make())
    x = x.astype(np.float64)
    dout = rng.standard_normal(_forward(layer, base, x).shape)
    dx = layer.backward(dout)
    grads = {p.name: np.array(p.grad, dtype=np.float64) for p in layer.params()}

    def loss() -> float:
        return float(np.sum(_forward(layer, base, x) * dout))

    rows = [compare(f"dx vs numerical gradient{what}", dx, numeric_gradient(loss, x), GRAD_TOL)]
    for p in layer.params():
        rows.append(compare(f"d{p.name} vs numerical gradient{what}", grads[p.name],
                            numeric_gradient(loss, p.value), GRAD_TOL))
    return rows


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random numbers at least 0.1 from 0, where max(x, 0) has its kink (finite differences need smoothness)."""
    x = rng.standard_normal(shape)
    return (x + np.sign(x) * 0.1).astype(np.float32)


def relu_backward(cls: type, rng: np.random.Generator) -> list[Row]:
    x = _away_from_zero(rng, (4, 5, 5, 3))
    dout = rng.standard_normal(x.shape).astype(np.float32)
    layer, ref = cls(), layers.ReLU()
    _forward(layer, layers.ReLU, x)
    ref.forward(x)
    before = dout.copy()
    rows = [compare("dx vs pycnn", layer.backward(dout), ref.backward(dout.copy())), _unchanged(dout, before)]
    return rows + _gradient_rows(cls, layers.ReLU, _away_from_zero(rng, (2, 3, 3, 2)), rng)


def _dense_pair(cls: type, rng: np.random.Generator, d: int = 6, m: int = 4) -> tuple[layers.Layer, layers.Layer]:
    """The student's Dense and pycnn's with the same weights, and a bias that is not zero."""
    layer, ref = cls(d, m, rng=np.random.default_rng(1)), layers.Dense(d, m, rng=np.random.default_rng(1))
    b = rng.standard_normal(m).astype(np.float32)
    layer.b.value, ref.b.value = b.copy(), b.copy()
    return layer, ref


def dense_forward(cls: type, rng: np.random.Generator) -> list[Row]:
    layer, ref = _dense_pair(cls, rng)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    want = ref.forward(x)
    return [compare("out vs pycnn", layer.forward(x), want),
            compare("out (training=False) vs pycnn", layer.forward(x, training=False), want)]


def dense_backward(cls: type, rng: np.random.Generator) -> list[Row]:
    layer, ref = _dense_pair(cls, rng)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    dout = rng.standard_normal((5, 4)).astype(np.float32)
    _forward(layer, layers.Dense, x)
    ref.forward(x)
    before = dout.copy()
    rows = [compare("dx vs pycnn", layer.backward(dout), ref.backward(dout.copy())),
            compare("dW vs pycnn", layer.W.grad, ref.W.grad), compare("db vs pycnn", layer.b.grad, ref.b.grad),
            _unchanged(dout, before)]
    def make() -> layers.Layer:
        return _dense_pair(cls, rng, 4, 3)[0]

    return rows + _gradient_rows(make, layers.Dense, rng.standard_normal((3, 4)), rng)


def softmax_cross_entropy(fn: Callable, rng: np.random.Generator) -> list[Row]:
    rows = []
    for scale, what in ((3.0, ""), (1000.0, " (logits in the thousands)")):
        logits = (rng.standard_normal((6, 5)) * scale).astype(np.float32)
        labels = rng.integers(0, 5, size=6)
        got = fn(logits.copy(), labels)
        want_loss, want_grad = losses.softmax_cross_entropy(logits, labels)
        if not (isinstance(got, tuple) and len(got) == 2):
            return [Row(f"returns (loss, dlogits){what}", None, None, False,
                        f"got {type(got).__name__}, expected a tuple (loss, dlogits)")]
        rows += [compare(f"loss vs pycnn{what}", np.asarray(got[0]), np.asarray(want_loss)),
                 compare(f"dlogits vs pycnn{what}", got[1], want_grad)]
    logits = rng.standard_normal((4, 3)) * 2
    labels = rng.integers(0, 3, size=4)
    got = fn(logits, labels)[1]
    rows.append(compare("dlogits vs numerical gradient", got,
                        numeric_gradient(lambda: float(fn(logits, labels)[0]), logits), GRAD_TOL))
    return rows


IM2COL_CASES = [  # (x shape, kh, kw, stride, padding, ones, batch_last)
    ((2, 5, 6, 1), 3, 3, 1, 0, False, False),
    ((2, 5, 5, 3), 3, 3, 2, 1, False, False),
    ((2, 6, 5, 2), 3, 2, 1, 2, False, False),
    ((1, 6, 6, 2), 2, 2, 2, 0, True, False),
    ((3, 4, 4, 2), 3, 3, 1, 1, True, True),
]


def im2col(fn: Callable, rng: np.random.Generator) -> list[Row]:
    rows = []
    for shape, kh, kw, stride, padding, ones, batch_last in IM2COL_CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        flags = "".join((", ones" if ones else "", ", batch_last" if batch_last else ""))
        label = f"x {shape}, kernel {kh}x{kw}, stride {stride}, padding {padding}{flags}"
        want = pycnn_im2col(x, kh, kw, stride, padding, ones=ones, batch_last=batch_last)
        rows.append(compare(label, fn(x.copy(), kh, kw, stride, padding, ones=ones, batch_last=batch_last),
                            np.ascontiguousarray(want)))
    return rows


CONV_CASES = [  # (x shape, filters, kernel, stride, padding): one channel, and several (position-first patches)
    ((2, 6, 6, 1), 3, 3, 1, 1),
    ((2, 7, 7, 2), 3, 3, 2, 1),
]


def _conv_pair(cls: type, case: tuple, rng: np.random.Generator) -> tuple[layers.Layer, layers.Layer]:
    shape, f, k, stride, padding = case
    def make(c: type) -> layers.Layer:
        return c(shape[3], f, k, stride=stride, padding=padding, rng=np.random.default_rng(2))

    layer, ref = make(cls), make(layers.Conv2D)
    b = rng.standard_normal(f).astype(np.float32)
    layer.b.value, ref.b.value = b.copy(), b.copy()
    return layer, ref


def conv_forward(cls: type, rng: np.random.Generator) -> list[Row]:
    rows = []
    for case in CONV_CASES:
        layer, ref = _conv_pair(cls, case, rng)
        x = rng.standard_normal(case[0]).astype(np.float32)
        rows.append(compare(f"out vs pycnn, x {case[0]}, stride {case[3]}, padding {case[4]}",
                            layer.forward(x), ref.forward(x)))
    return rows


def conv_backward(cls: type, rng: np.random.Generator) -> list[Row]:
    rows = []
    for case in CONV_CASES:
        layer, ref = _conv_pair(cls, case, rng)
        x = rng.standard_normal(case[0]).astype(np.float32)
        dout = rng.standard_normal(ref.forward(x).shape).astype(np.float32)
        _forward(layer, layers.Conv2D, x)
        before, what = dout.copy(), f", x {case[0]}"
        rows += [compare(f"dx vs pycnn{what}", layer.backward(dout), ref.backward(dout.copy())),
                 compare(f"dW vs pycnn{what}", layer.W.grad, ref.W.grad),
                 compare(f"db vs pycnn{what}", layer.b.grad, ref.b.grad), _unchanged(dout, before)]
    small = ((2, 5, 5, 2), 2, 3, 2, 1)
    def make() -> layers.Layer:
        return _conv_pair(cls, small, rng)[0]

    return rows + _gradient_rows(make, layers.Conv2D, rng.standard_normal(small[0]), rng, f", x {small[0]}")


def _params(rng: np.random.Generator) -> list[layers.Param]:
    return [layers.Param(rng.standard_normal((3, 4)), "W"), layers.Param(rng.standard_normal(4), "b")]


def _steps(cls: type, base: type, rng: np.random.Generator, steps: int, **settings: object) -> list[Row]:
    """Run the student's optimizer and pycnn's on copies of the same parameters and gradients."""
    start = _params(rng)
    mine = [layers.Param(p.value.copy(), p.name) for p in start]
    theirs = [layers.Param(p.value.copy(), p.name) for p in start]
    opt, ref = cls(mine, **settings), base(theirs, **settings)
    for _ in range(steps):
        for a, b in zip(mine, theirs, strict=True):
            a.grad = rng.standard_normal(a.value.shape).astype(np.float32)
            b.grad = a.grad.copy()
        opt.step()
        ref.step()
    what = ", ".join(f"{k} {v}" for k, v in settings.items())
    return [compare(f"{p.name} after {steps} steps ({what})", p.value, q.value)
            for p, q in zip(mine, theirs, strict=True)]


def sgd_step(cls: type, rng: np.random.Generator) -> list[Row]:
    return _steps(cls, optim.SGD, rng, 2, lr=0.1) + _steps(cls, optim.SGD, rng, 2, lr=0.1, weight_decay=0.01)


def momentum_step(cls: type, rng: np.random.Generator) -> list[Row]:
    return (_steps(cls, optim.Momentum, rng, 3, lr=0.1, momentum=0.9)
            + _steps(cls, optim.Momentum, rng, 3, lr=0.1, momentum=0.9, nesterov=True))


CHECKS: dict[str, Check] = {
    "ReLU.backward": relu_backward,
    "Dense.forward": dense_forward,
    "Dense.backward": dense_backward,
    "softmax_cross_entropy": softmax_cross_entropy,
    "im2col": im2col,
    "Conv2D.forward": conv_forward,
    "Conv2D.backward": conv_backward,
    "SGD.step": sgd_step,
    "Momentum.step": momentum_step,
}
