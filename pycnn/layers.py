"""Layers: each caches in ``forward`` what its ``backward`` needs.

All activations are channels-last: images are ``(N, H, W, C)``. Every layer
follows one protocol:

- ``forward(x, training=True)`` returns the output and keeps what the
  backward pass needs in named attributes;
- ``backward(dout)`` returns ``dx``, the gradient of the loss with respect
  to the input (``None`` when ``input_grad`` is False, as for the first layer
  of a network), and *assigns* the gradients of its parameters;
- ``params()`` lists its :class:`Param` objects, the only thing optimizers see;
- ``config()`` is the JSON-able description used to save and rebuild it.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops
from .im2col import col2im, im2col, output_size

Shape = tuple[int, ...]


class Param:
    """A trainable array and the gradient of the loss with respect to it."""

    def __init__(self, value: np.ndarray, name: str = "") -> None:
        self.value = np.ascontiguousarray(value, dtype=np.float32)
        self.grad = np.zeros_like(self.value)
        self.name = name

    def __repr__(self) -> str:
        return f"Param({self.name!r}, shape={self.value.shape})"


class Layer:
    """Base class: stateless layers only override forward/backward/output_shape."""

    input_grad = True  # the network turns this off for its first layer

    def params(self) -> list[Param]:
        return []

    def config(self) -> dict:
        return {"type": type(self).__name__}

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError


def he_normal(rng: np.random.Generator, shape: Shape, fan_in: int) -> np.ndarray:
    """He (fan-in) initialisation: N(0, 2 / fan_in), suited to ReLU networks."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


class Conv2D(Layer):
    """2-D convolution (cross-correlation) as im2col plus one matrix product.

    Weights ``W`` are ``(KH, KW, C, F)``, bias ``b`` is ``(F,)``;
    input ``(N, H, W, C)`` -> output ``(N, OH, OW, F)``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kh: int,
        kw: int | None = None,
        stride: int = 1,
        padding: int = 0,
        rng: np.random.Generator | None = None,
    ) -> None:
        kw = kh if kw is None else kw
        for label, v, low in (("in_ch", in_ch, 1), ("out_ch", out_ch, 1), ("kh", kh, 1),
                              ("kw", kw, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if int(v) != v or v < low:
                raise ValueError(f"Conv2D {label} must be an integer >= {low}, got {v!r}")
        self.in_ch, self.out_ch, self.kh, self.kw = in_ch, out_ch, kh, kw
        self.stride, self.padding = stride, padding
        rng = rng or np.random.default_rng()
        fan_in = kh * kw * in_ch
        self.W = Param(he_normal(rng, (kh, kw, in_ch, out_ch), fan_in), "W")
        self.b = Param(np.zeros(out_ch), "b")
        # Patches of images with several channels are ordered position by
        # position, images innermost: im2col and col2im then copy long
        # contiguous runs (docs/PERFORMANCE.md, "Multi-channel patches in
        # position order"). With one channel the image-by-image order is as
        # quick and needs no reordering of the output.
        self.batch_last = in_ch > 1

    def params(self) -> list[Param]:
        return [self.W, self.b]

    def config(self) -> dict:
        return {"type": "Conv2D", "in_ch": self.in_ch, "out_ch": self.out_ch, "kh": self.kh,
                "kw": self.kw, "stride": self.stride, "padding": self.padding}

    def output_shape(self, input_shape: Shape) -> Shape:
        h, w, c = input_shape
        if c != self.in_ch:
            raise ValueError(f"Conv2D expects {self.in_ch} input channels, got {c}")
        return (output_size(h, self.kh, self.stride, self.padding),
                output_size(w, self.kw, self.stride, self.padding), self.out_ch)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        n = x.shape[0]
        oh, ow, f = self.output_shape(x.shape[1:])
        # The patches get a last column of ones and the weights a last row
        # holding the bias: one product then adds the bias, and in backward
        # the same product's last row is the bias gradient.
        cols = im2col(x, self.kh, self.kw, self.stride, self.padding, ones=True,
                      batch_last=self.batch_last)  # (N*OH*OW, K + 1)
        w = np.concatenate([self.W.value.reshape(-1, f), self.b.value[None]])  # (K + 1, F)
        rows = ops.patches_times_weights(cols, w)  # (N*OH*OW, F)
        if training:
            self.x_shape, self.cols = x.shape, cols
        return self._images(rows, n, oh, ow)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        dz = ops.gradient_rows(dout, self._order)  # (N*OH*OW, F), rows in im2col's order
        dw = ops.patches_t_times(self.cols, dz)  # (K + 1, F)
        self.W.grad = dw[:-1].reshape(self.W.value.shape)
        self.b.grad = dw[-1]
        if not self.input_grad:
            return None
        w = self.W.value.reshape(-1, self.out_ch)  # (K, F)
        dcols = ops.rows_times_weights_t(dz, w)  # (N*OH*OW, K)
        return col2im(dcols, self.x_shape, self.kh, self.kw, self.stride, self.padding,
                      batch_last=self.batch_last)

    def _images(self, rows: np.ndarray, n: int, oh: int, ow: int) -> np.ndarray:
        """One row per patch (N*OH*OW, F), in im2col's order -> contiguous (N, OH, OW, F)."""
        if self.batch_last:  # rows in the order (i, j, n)
            return np.ascontiguousarray(rows.reshape(oh, ow, n, -1).transpose(2, 0, 1, 3))
        return np.ascontiguousarray(rows.reshape(n, oh, ow, -1))

    @property
    def _order(self) -> tuple[int, int, int, int]:
        """The axes of (N, OH, OW, F) in im2col's order of the patches, F last."""
        return (1, 2, 0, 3) if self.batch_last else (0, 1, 2, 3)


class ReLU(Layer):
    """max(x, 0), elementwise."""

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        positive = x > 0
        out = ops.relu(x, positive)
        if training:
            self.positive = positive
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.input_grad:
            return None
        return ops.masked(dout, self.positive)


class MaxPool2D(Layer):
    """Max over ``k x k`` windows moved by ``stride`` (default ``k``).

    Input ``(N, H, W, C)`` -> output ``(N, OH, OW, C)``. When a window holds
    several equal maxima, the gradient goes to the first one in row-major
    order (as in PyTorch), so it is never counted twice.

    Both passes loop over the k*k offsets inside a window, each handling the
    element at that offset of every window at once as one strided view.
    """

    def __init__(self, k: int = 2, stride: int | None = None) -> None:
        stride = k if stride is None else stride
        if int(k) != k or k < 1 or int(stride) != stride or stride < 1:
            raise ValueError(f"MaxPool2D k and stride must be integers >= 1, got {k!r}, {stride!r}")
        self.k, self.stride = k, stride

    def config(self) -> dict:
        return {"type": "MaxPool2D", "k": self.k, "stride": self.stride}

    def output_shape(self, input_shape: Shape) -> Shape:
        h, w, c = input_shape
        return (output_size(h, self.k, self.stride, 0), output_size(w, self.k, self.stride, 0), c)

    def _offsets(self, oh: int, ow: int) -> list[tuple[slice, slice]]:
        """For each of the k*k window offsets, in row-major order, the rows and
        columns of the input it picks from every window: (N, OH, OW, C) views."""
        s = self.stride
        return [(slice(i, i + s * oh, s), slice(j, j + s * ow, s))
                for i in range(self.k) for j in range(self.k)]

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        oh, ow, _ = self.output_shape(x.shape[1:])
        offsets = self._offsets(oh, ow)
        rows, cols = offsets[0]
        out = x[:, rows, cols, :].copy()
        argmax = np.zeros(out.shape, dtype=np.min_scalar_type(len(offsets)))  # offset of each max
        for index, (rows, cols) in enumerate(offsets[1:], start=1):
            candidate = x[:, rows, cols, :]
            larger = candidate > out  # strictly: on ties the earlier offset keeps the maximum
            argmax = np.where(larger, index, argmax)
            out = ops.maximum(out, candidate, larger)
        if training:
            self.x_shape, self.argmax = x.shape, argmax
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.input_grad:
            return None
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        for index, (rows, cols) in enumerate(self._offsets(*dout.shape[1:3])):
            # += because overlapping windows (stride < k) may share a pixel
            dx[:, rows, cols, :] += ops.masked(dout, self.argmax == index)
        return dx


class Flatten(Layer):
    """(N, H, W, C) -> (N, H * W * C)."""

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if training:
            self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.input_grad:
            return None
        return dout.reshape(self.x_shape)


class Dense(Layer):
    """Affine map ``x @ W + b``: (N, D) -> (N, M), with ``W`` (D, M), ``b`` (M,)."""

    def __init__(self, in_features: int, out_features: int,
                 rng: np.random.Generator | None = None) -> None:
        for label, v in (("in_features", in_features), ("out_features", out_features)):
            if int(v) != v or v < 1:
                raise ValueError(f"Dense {label} must be an integer >= 1, got {v!r}")
        self.in_features, self.out_features = in_features, out_features
        rng = rng or np.random.default_rng()
        self.W = Param(he_normal(rng, (in_features, out_features), in_features), "W")
        self.b = Param(np.zeros(out_features), "b")

    def params(self) -> list[Param]:
        return [self.W, self.b]

    def config(self) -> dict:
        return {"type": "Dense", "in_features": self.in_features, "out_features": self.out_features}

    def output_shape(self, input_shape: Shape) -> Shape:
        if input_shape != (self.in_features,):
            raise ValueError(f"Dense expects {self.in_features} input features, got shape {input_shape}")
        return (self.out_features,)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        out, w_t = ops.dense_product(x, self.W.value)
        out += self.b.value
        if training:
            self.x, self.w_t = x, w_t
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        self.W.grad = ops.dense_weight_gradient(self.x, dout)
        self.b.grad = dout.sum(axis=0)
        if not self.input_grad:
            return None
        return ops.dense_input_gradient(dout, self.W.value, self.w_t)


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Conv2D, ReLU, MaxPool2D, Flatten, Dense)
}


def param_shapes(config: dict) -> dict[str, Shape]:
    """The shape of each parameter, by name, of the layer ``config`` describes, without building it.

    Settings that are not whole numbers count as 0 (building the layer refuses them).
    """
    def n(key: str) -> int:
        v = config.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v == int(v)
        return max(int(v), 0) if ok else 0

    if config.get("type") == "Conv2D":
        kh = n("kh")
        kw = kh if config.get("kw") is None else n("kw")
        return {"W": (kh, kw, n("in_ch"), n("out_ch")), "b": (n("out_ch"),)}
    if config.get("type") == "Dense":
        return {"W": (n("in_features"), n("out_features")), "b": (n("out_features"),)}
    return {}


def count_params(configs: list[dict]) -> int:
    """How many parameters the layers ``configs`` describe, computed without building them."""
    return sum(math.prod(shape) for config in configs for shape in param_shapes(config).values())


def layer_from_config(config: dict, rng: np.random.Generator | None = None) -> Layer:
    """Rebuild a layer (with fresh weights) from :meth:`Layer.config`."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[kind]
    if cls in (Conv2D, Dense):
        config["rng"] = rng
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"bad settings for {kind}: {exc}") from None
