"""Sequential models, the two presets, and writing the ``.npz`` model file (reading it: model_file.py).

Model file format (one ``.npz``, no pickles):

- ``architecture``: a JSON string ``{"format": "pycnn-model", "version": 1,
  "input_shape": [H, W, C], "layers": [layer configs...], "preset": {...}|null}``.
  ``version`` is the file format's version: files without one are read as
  version 1, files from a newer pycnn (a higher version) are refused;
- ``<layer name>.<param name>`` (for example ``conv1.W``, ``dense1.b``): one
  float32 array per parameter. Conv weights are ``(KH, KW, C, F)``; dense
  weights are ``(D, M)``; activations are channels-last throughout.
"""

from __future__ import annotations

import inspect
import io
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .config import check_conv, whole_number
from .data import to_float
from .errors import ConfigError, ModelFormatError, PycnnError  # noqa: F401  (the last two: pycnn.model's, as before)
from .files import check_save_target, write_atomic
from .im2col import output_size
from .inputs import check_images
from .layers import Layer, Param, count_params, layer_from_config
from .limits import params_problem
from .losses import softmax

FORMAT = "pycnn-model"
VERSION = 1


def layer_names(types: list[str]) -> list[str]:
    """Readable, unique names for layers of these types: conv1, relu1, pool1, flatten1, dense1, ..."""
    short = {"Conv2D": "conv", "ReLU": "relu", "MaxPool2D": "pool", "Flatten": "flatten", "Dense": "dense"}
    counts: dict[str, int] = {}
    names = []
    for kind in types:
        base = short.get(kind, kind.lower())
        counts[base] = counts.get(base, 0) + 1
        names.append(f"{base}{counts[base]}")
    return names


class Sequential:
    """Layers applied one after another to images ``(N, H, W, C)``.

    ``forward`` returns logits ``(N, num_classes)``; ``backward(dlogits)``
    fills every ``Param.grad``. The first layer computes no input gradient
    during training (nothing upstream of it learns); ``backward(...,
    input_grad=True)`` asks for it, as saliency maps do.
    """

    def __init__(self, layers: list[Layer], input_shape: tuple[int, int, int] = (28, 28, 1),
                 preset: dict | None = None) -> None:
        if not layers:
            raise ValueError("a model needs at least one layer")
        self.layers = list(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.preset = preset
        self.names = layer_names([type(layer).__name__ for layer in self.layers])
        self.shapes = self._infer_shapes()
        for layer in self.layers:
            layer.input_grad = True
        self.layers[0].input_grad = False
        for name, layer in zip(self.names, self.layers, strict=True):
            for p in layer.params():
                p.name = f"{name}.{p.name.rsplit('.', 1)[-1]}"

    def _infer_shapes(self) -> list[tuple[int, ...]]:
        """Output shape (without N) of every layer; raises if one does not fit."""
        shapes, shape = [], self.input_shape
        for name, layer in zip(self.names, self.layers, strict=True):
            try:
                shape = tuple(layer.output_shape(shape))
            except ValueError as exc:
                raise ValueError(f"{name} ({type(layer).__name__}) on input {shape}: {exc}") from None
            shapes.append(shape)
        if len(shape) != 1:
            raise ValueError(f"the last layer must output class scores (K,), got {shape}")
        return shapes

    @property
    def num_classes(self) -> int:
        return self.shapes[-1][0]

    def params(self) -> list[Param]:
        return [p for layer in self.layers for p in layer.params()]

    @property
    def num_params(self) -> int:
        """How many trainable numbers the model has."""
        return sum(p.value.size for p in self.params())

    def flat_params(self) -> np.ndarray:
        """Every parameter's value in one float32 vector (P,), in ``params()`` order."""
        return np.concatenate([p.value.ravel() for p in self.params()]).astype(np.float32, copy=False)

    def flat_grads(self) -> np.ndarray:
        """Every parameter's gradient in one float32 vector (P,), in ``params()`` order."""
        return np.concatenate([p.grad.ravel() for p in self.params()]).astype(np.float32, copy=False)

    def set_flat_params(self, flat: np.ndarray) -> None:
        """Copy a vector (P,) from :meth:`flat_params` into the parameters' values, in place."""
        for p, part in zip(self.params(), self._split(flat), strict=True):
            p.value[...] = part

    def set_flat_grads(self, flat: np.ndarray) -> None:
        """Make a vector (P,) laid out as :meth:`flat_grads` the parameters' gradients."""
        for p, part in zip(self.params(), self._split(flat), strict=True):
            p.grad = part.copy()

    def _split(self, flat: np.ndarray) -> list[np.ndarray]:
        flat = np.asarray(flat)
        if flat.shape != (self.num_params,) or flat.dtype != np.float32:
            raise ValueError(f"expected a float32 vector of {self.num_params} numbers (one per parameter), "
                             f"got {flat.dtype} {flat.shape}")
        parts, start = [], 0
        for p in self.params():
            parts.append(flat[start : start + p.value.size].reshape(p.value.shape))
            start += p.value.size
        return parts

    def forward(self, x: np.ndarray, training: bool = True, outputs: list | None = None) -> np.ndarray:
        """Logits (N, K) for float32 images (N, H, W, C).

        ``outputs``, if given, receives every layer's output in order (the
        last is the logits): one pass shows a step layer by layer.
        """
        for layer in self.layers:
            x = layer.forward(x, training)
            if outputs is not None:
                outputs.append(x)
        return x

    def backward(self, dlogits: np.ndarray, input_grad: bool = False,
                 gradients: list | None = None) -> np.ndarray | None:
        """Back-propagate ``dlogits`` (N, K), assigning every parameter's gradient.

        ``input_grad=True`` also returns the gradient with respect to the input
        images (N, H, W, C), which training skips (the first layer does not
        compute it). ``gradients``, if given, receives the gradient reaching
        each layer's output, last layer first (the first is ``dlogits``).
        """
        first = self.layers[0]
        first.input_grad = input_grad
        try:
            dout = dlogits
            for layer in reversed(self.layers):
                if gradients is not None:
                    gradients.append(dout)
                dout = layer.backward(dout)
        finally:
            first.input_grad = False
        return dout

    def as_images(self, x: np.ndarray) -> np.ndarray:
        """Float32 images (N, H, W, C) from uint8 0-255 or float [0, 1] ones that pycnn.inputs accepts."""
        x = check_images(x, self.input_shape)
        if x.ndim == len(self.input_shape):
            x = x[..., None]
        if x.dtype == np.uint8:
            return to_float(x)
        return x.astype(np.float32, copy=False)

    def predict_proba(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Class probabilities (N, K) for images, computed in chunks of ``batch_size``."""
        batch_size = whole_number("batch_size", batch_size)
        x = check_images(x, self.input_shape)
        out = np.empty((len(x), self.num_classes), dtype=np.float32)
        for start in range(0, len(x), batch_size):
            chunk = self.as_images(x[start : start + batch_size])
            out[start : start + batch_size] = softmax(self.forward(chunk, training=False))
        return out

    def predict(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Predicted class (N,) for images."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def activations(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Every layer's output for images ``x``, as ``(layer name, array)`` pairs."""
        out, h = [], self.as_images(x)
        for name, layer in zip(self.names, self.layers, strict=True):
            h = layer.forward(h, training=False)
            out.append((name, h))
        return out

    # -- saving and loading -------------------------------------------------

    def architecture(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "input_shape": list(self.input_shape),
                "layers": [layer.config() for layer in self.layers], "preset": self.preset}

    @property
    def spec(self) -> dict[str, Any]:
        """The preset name and hyperparameters, or ``{"name": "custom", ...}``."""
        return self.preset or {"name": "custom", "hparams": {}}

    def state(self) -> dict[str, np.ndarray]:
        return {p.name: p.value for p in self.params()}

    def to_bytes(self) -> bytes:
        """The model as ``.npz`` file contents (see the module docstring)."""
        buf = io.BytesIO()
        np.savez(buf, architecture=np.array(json.dumps(self.architecture())), **self.state())
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` (a ``.npz`` file), atomically.

        Raises :class:`ConfigError` if the file cannot or must not be written
        (see :func:`check_save_path`); an existing file at ``path`` is then
        left as it was.
        """
        path = os.fspath(path)
        check_save_path(path)
        try:
            write_atomic(path, self.to_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot save the model to {path}: {exc.strerror or exc}") from None

    def describe(self) -> str:
        """One line per layer: name, type, output shape, parameter count."""
        lines = []
        for name, layer, shape in zip(self.names, self.layers, self.shapes, strict=True):
            count = sum(p.value.size for p in layer.params())
            lines.append(f"{name:<9} {type(layer).__name__:<10} -> {str(shape):<14} {count:>8,} params")
        return "\n".join(lines)


def seed_layers(n_filter: int = 32, h_filter: int = 7, w_filter: int = 7, stride: int = 1,
                padding: int = 1, num_class: int = 10, num_channel: int = 1, img_height: int = 28,
                img_width: int = 28) -> list[dict]:
    """The assignment's model, Conv -> ReLU -> Flatten -> Dense, as layer configs."""
    oh, ow = output_size(img_height, h_filter, stride, padding), output_size(img_width, w_filter, stride, padding)
    return [{"type": "Conv2D", "in_ch": num_channel, "out_ch": n_filter, "kh": h_filter, "kw": w_filter,
             "stride": stride, "padding": padding}, {"type": "ReLU"}, {"type": "Flatten"},
            {"type": "Dense", "in_features": oh * ow * n_filter, "out_features": num_class}]


def lenet_layers(c1: int = 16, c2: int = 32, hidden: int = 128, num_class: int = 10,
                 num_channel: int = 1, img_height: int = 28, img_width: int = 28) -> list[dict]:
    """LeNet-style, (Conv 5x5 -> ReLU -> MaxPool 2) x 2 -> Dense -> ReLU -> Dense, as layer configs.

    The first convolution pads by 2 so 28x28 stays 28x28; the second does not
    pad: 14x14 -> 10x10 -> pooled 5x5.
    """
    h, w = (img_height // 2 - 4) // 2, (img_width // 2 - 4) // 2
    if h < 1 or w < 1:
        raise ValueError(f"lenet needs images of at least 12x12, got {img_height}x{img_width}")
    conv = {"type": "Conv2D", "kh": 5, "kw": 5, "stride": 1}
    pool, relu = {"type": "MaxPool2D", "k": 2, "stride": 2}, {"type": "ReLU"}
    return [{**conv, "in_ch": num_channel, "out_ch": c1, "padding": 2}, relu, pool,
            {**conv, "in_ch": c1, "out_ch": c2, "padding": 0}, relu, pool, {"type": "Flatten"},
            {"type": "Dense", "in_features": h * w * c2, "out_features": hidden}, relu,
            {"type": "Dense", "in_features": hidden, "out_features": num_class}]


PRESETS = {"seed": seed_layers, "lenet": lenet_layers}


def build_model(name: str = "seed", seed: int | None = 0, **hparams: Any) -> Sequential:
    """A preset model by name (``"seed"`` or ``"lenet"``) with its hyperparameters.

    Runs the checks the CLI and the page run (pycnn.config) and refuses a model
    of more than pycnn.limits.MAX_PARAMS parameters before allocating it;
    ``seed`` (>= 0) draws the initial weights.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(PRESETS)}")
    if seed is not None:
        whole_number("seed", seed, low=0)
    defaults = {k: p.default for k, p in inspect.signature(PRESETS[name]).parameters.items()}
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ConfigError(f"bad hyperparameters for {name}: unknown {', '.join(unknown)}; "
                          f"it takes {', '.join(defaults)}")
    hparams = {**defaults, **hparams}
    if name == "seed":
        check_conv(*(hparams[k] for k in ("n_filter", "h_filter", "w_filter", "stride", "padding",
                                          "img_height", "img_width")))
    for key in defaults:
        whole_number(key, hparams[key], low=0 if key == "padding" else 1)
    try:
        layers = PRESETS[name](**hparams)
    except ValueError as exc:  # a layer that does not fit, said by the layer
        raise ConfigError(str(exc)) from None
    problem = params_problem(count_params(layers))
    if problem:
        raise ConfigError(f"the {name} model with these settings has {problem}")
    rng = np.random.default_rng(seed)
    input_shape = (hparams["img_height"], hparams["img_width"], hparams["num_channel"])
    return Sequential([layer_from_config(c, rng) for c in layers], input_shape, {"name": name, "hparams": hparams})


def check_save_path(path: str | os.PathLike, protect: Iterable[str | os.PathLike] = ()) -> None:
    """Fail now, with :class:`ConfigError`, if :meth:`Sequential.save` could not or must not write ``path``.

    See :func:`pycnn.files.check_save_target`: ``protect`` lists inputs (the
    data file) the save must not overwrite, and the check creates and removes
    a temporary file in the folder just as the save does.
    """
    check_save_target(path, protect)


# Reading model files is its own module; load_model stays importable from here.
from .model_file import load_model  # noqa: E402, F401  (imported last: it needs Sequential and the presets)
