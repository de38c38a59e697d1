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
import sys

import numpy as np

from .im2col import col2im, im2col, output_size

Shape = tuple[int, ...]

# Native numpy and Pyodide's numpy (WebAssembly: no BLAS, no SIMD) are fast
# at different spellings of the same formula, so the hot spots have two:
# - Natively `@` goes to BLAS, fast for any operand layout. In Pyodide `@` is
#   a plain loop, 1.3-8x slower than `np.einsum` with operands laid out so
#   that its innermost loop walks long contiguous rows (a scaled row added to
#   a row, or a dot product of two rows).
# - Pyodide's `np.maximum` branches per element (slow on random signs) and a
#   float times a bool mask goes through a cast, while `np.where` is quick;
#   natively it is the other way round.
# docs/PERFORMANCE.md has the timings. Tests set PYODIDE = True to check the
# Pyodide spellings in CPython.
PYODIDE = sys.platform == "emscripten"


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
        # contiguous runs, several times faster (docs/PERFORMANCE.md). With
        # one channel the image-by-image order is as quick and needs no
        # reordering of the output.
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
        if not PYODIDE:
            rows = cols @ w
        else:
            # rows.T[f] = sum over k of w[k, f] * cols.T[k]: rows of N*OH*OW numbers
            rows_t = _row_buffer(f, len(cols), np.result_type(cols, w))
            rows = np.einsum("mk,kf->fm", cols, w, out=rows_t).T
        if training:
            self.x_shape, self.cols = x.shape, cols
        return self._images(rows, n, oh, ow)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        f = self.out_ch
        if not PYODIDE:
            dz = self._rows(dout)  # (N*OH*OW, F)
            dw = self.cols.T @ dz  # (K + 1, F)
        else:
            dz_t = self._rows_t(dout)  # (F, N*OH*OW): dw[k, f] is a dot product of two rows
            dw = np.einsum("mk,fm->kf", self.cols, dz_t)
        self.W.grad = dw[:-1].reshape(self.W.value.shape)
        self.b.grad = dw[-1]
        if not self.input_grad:
            return None
        # dcols (N*OH*OW, K) = dz @ w.T, computed transposed so that it is
        # column-major like cols, the layout col2im reads without copying
        w = self.W.value.reshape(-1, f)  # (K, F)
        if not PYODIDE:
            dcols = (w @ dz.T).T
        else:
            dcols = np.einsum("kf,fm->km", w, dz_t).T
        return col2im(dcols, self.x_shape, self.kh, self.kw, self.stride, self.padding,
                      batch_last=self.batch_last)

    def _images(self, rows: np.ndarray, n: int, oh: int, ow: int) -> np.ndarray:
        """One row per patch (N*OH*OW, F), in im2col's order -> contiguous (N, OH, OW, F)."""
        if self.batch_last:  # rows in the order (i, j, n)
            return np.ascontiguousarray(rows.reshape(oh, ow, n, -1).transpose(2, 0, 1, 3))
        return np.ascontiguousarray(rows.reshape(n, oh, ow, -1))

    def _rows(self, images: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_images`: (N, OH, OW, F) -> (N*OH*OW, F) in im2col's order."""
        if self.batch_last:
            images = images.transpose(1, 2, 0, 3)
        return images.reshape(-1, images.shape[-1])

    def _rows_t(self, images: np.ndarray) -> np.ndarray:
        """Contiguous transpose of :meth:`_rows`: (N, OH, OW, F) -> (F, N*OH*OW), in one copy."""
        order = (3, 1, 2, 0) if self.batch_last else (3, 0, 1, 2)
        return np.ascontiguousarray(images.transpose(order)).reshape(images.shape[-1], -1)


def _row_buffer(rows: int, length: int, dtype: np.dtype) -> np.ndarray:
    """An empty (rows, length) array whose rows lie an odd number of 64-byte cache lines apart.

    Copying it transposed (as Conv2D does with its output) reads down its
    columns. Rows a multiple of 4 KiB apart (the seed model's 18,432 or 36,864
    patches of 4 bytes) all fall in the same cache set, and in Pyodide that copy
    took 1.29 ms instead of 0.33 ms at batch 32 (2.47 vs 0.69 ms at batch 64).
    """
    per_line = max(1, 64 // np.dtype(dtype).itemsize)
    lines = -(-length // per_line)
    lines += 1 - lines % 2
    return np.empty((rows, lines * per_line), dtype)[:, :length]


def _masked(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` where ``mask`` is True, else 0 (for gradients; see PYODIDE)."""
    return np.where(mask, values, 0) if PYODIDE else values * mask


class ReLU(Layer):
    """max(x, 0), elementwise."""

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        positive = x > 0
        # equal results, except that np.where turns a NaN into 0
        out = np.where(positive, x, 0) if PYODIDE else np.maximum(x, 0)
        if training:
            self.positive = positive
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.input_grad:
            return None
        return _masked(dout, self.positive)


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
            out = np.where(larger, candidate, out) if PYODIDE else np.maximum(out, candidate)
        if training:
            self.x_shape, self.argmax = x.shape, argmax
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.input_grad:
            return None
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        for index, (rows, cols) in enumerate(self._offsets(*dout.shape[1:3])):
            # += because overlapping windows (stride < k) may share a pixel
            dx[:, rows, cols, :] += _masked(dout, self.argmax == index)
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
        if not PYODIDE:
            out = x @ self.W.value
        else:
            # out[n, m] is a dot product of x[n] with the contiguous row w_t[m]
            w_t = np.ascontiguousarray(self.W.value.T)  # (M, D)
            out = np.einsum("nd,md->nm", x, w_t)
            if training:
                self.w_t = w_t
        out += self.b.value
        if training:
            self.x = x
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not PYODIDE:
            self.W.grad = self.x.T @ dout
        else:
            # dW.T[m] = sum over n of dout[n, m] * x[n]: rows of D numbers
            self.W.grad = np.ascontiguousarray(np.einsum("nm,nd->md", dout, self.x).T)
        self.b.grad = dout.sum(axis=0)
        if not self.input_grad:
            return None
        if not PYODIDE:
            return dout @ self.W.value.T
        return np.einsum("nm,md->nd", dout, self.w_t)


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
