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

import io
import json
import os
from typing import Any

import numpy as np

from .data import to_float
from .errors import ConfigError, ModelFormatError, PycnnError  # noqa: F401  (ModelFormatError: pycnn.model's, as before)
from .layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, Param, ReLU
from .losses import softmax

FORMAT = "pycnn-model"
VERSION = 1


def _layer_names(layers: list[Layer]) -> list[str]:
    """Readable, unique names: conv1, relu1, pool1, flatten1, dense1, ..."""
    short = {"Conv2D": "conv", "ReLU": "relu", "MaxPool2D": "pool", "Flatten": "flatten", "Dense": "dense"}
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        base = short.get(type(layer).__name__, type(layer).__name__.lower())
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
        self.names = _layer_names(self.layers)
        self.shapes = self._infer_shapes()
        for layer in self.layers:
            layer.input_grad = True
        self.layers[0].input_grad = False
        for name, layer in zip(self.names, self.layers):
            for p in layer.params():
                p.name = f"{name}.{p.name.rsplit('.', 1)[-1]}"

    def _infer_shapes(self) -> list[tuple[int, ...]]:
        """Output shape (without N) of every layer; raises if one does not fit."""
        shapes, shape = [], self.input_shape
        for name, layer in zip(self.names, self.layers):
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
        for p, part in zip(self.params(), self._split(flat)):
            p.value[...] = part

    def set_flat_grads(self, flat: np.ndarray) -> None:
        """Make a vector (P,) laid out as :meth:`flat_grads` the parameters' gradients."""
        for p, part in zip(self.params(), self._split(flat)):
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
        """Accept (N, H, W) or (N, H, W, C), uint8 in [0, 255] or float in [0, 1]."""
        x = np.asarray(x)
        given = x.shape
        if x.ndim == len(self.input_shape):
            x = x[..., None]
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, self.input_shape))}), got {given}")
        if x.dtype == np.uint8:
            return to_float(x)
        return x.astype(np.float32, copy=False)

    def predict_proba(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Class probabilities (N, K) for images, computed in chunks of ``batch_size``."""
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        x = np.asarray(x)
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
        for name, layer in zip(self.names, self.layers):
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

        Raises :class:`ConfigError` if the file cannot be written; an
        existing file at ``path`` is then left as it was.
        """
        path = os.fspath(path)
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(self.to_bytes())
            os.replace(tmp, path)
        except OSError as exc:
            _remove_quietly(tmp)
            raise ConfigError(f"cannot save the model to {path}: {exc.strerror or exc}") from None

    def describe(self) -> str:
        """One line per layer: name, type, output shape, parameter count."""
        lines = []
        for name, layer, shape in zip(self.names, self.layers, self.shapes):
            count = sum(p.value.size for p in layer.params())
            lines.append(f"{name:<9} {type(layer).__name__:<10} -> {str(shape):<14} {count:>8,} params")
        return "\n".join(lines)


def seed_model(n_filter: int = 32, h_filter: int = 7, w_filter: int = 7, stride: int = 1,
               padding: int = 1, num_class: int = 10, num_channel: int = 1, img_height: int = 28,
               img_width: int = 28, seed: int | None = 0) -> Sequential:
    """The assignment's model: Conv -> ReLU -> Flatten -> Dense."""
    rng = np.random.default_rng(seed)
    conv = Conv2D(num_channel, n_filter, h_filter, w_filter, stride, padding, rng=rng)
    oh, ow, f = conv.output_shape((img_height, img_width, num_channel))
    hparams = dict(n_filter=n_filter, h_filter=h_filter, w_filter=w_filter, stride=stride,
                   padding=padding, num_class=num_class, num_channel=num_channel,
                   img_height=img_height, img_width=img_width)
    return Sequential([conv, ReLU(), Flatten(), Dense(oh * ow * f, num_class, rng=rng)],
                      (img_height, img_width, num_channel), {"name": "seed", "hparams": hparams})


def lenet_model(c1: int = 16, c2: int = 32, hidden: int = 128, num_class: int = 10,
                num_channel: int = 1, img_height: int = 28, img_width: int = 28,
                seed: int | None = 0) -> Sequential:
    """LeNet-style: (Conv 5x5 -> ReLU -> MaxPool 2) x 2 -> Dense -> ReLU -> Dense.

    The first convolution pads by 2 so 28x28 stays 28x28; the second does not
    pad: 14x14 -> 10x10 -> pooled 5x5.
    """
    rng = np.random.default_rng(seed)
    conv1 = Conv2D(num_channel, c1, 5, 5, 1, 2, rng=rng)
    conv2 = Conv2D(c1, c2, 5, 5, 1, 0, rng=rng)
    h, w = img_height // 2, img_width // 2
    h, w = (h - 4) // 2, (w - 4) // 2
    if h < 1 or w < 1:
        raise ValueError(f"lenet needs images of at least 12x12, got {img_height}x{img_width}")
    hparams = dict(c1=c1, c2=c2, hidden=hidden, num_class=num_class, num_channel=num_channel,
                   img_height=img_height, img_width=img_width)
    layers = [conv1, ReLU(), MaxPool2D(2), conv2, ReLU(), MaxPool2D(2), Flatten(),
              Dense(h * w * c2, hidden, rng=rng), ReLU(), Dense(hidden, num_class, rng=rng)]
    return Sequential(layers, (img_height, img_width, num_channel), {"name": "lenet", "hparams": hparams})


PRESETS = {"seed": seed_model, "lenet": lenet_model}


def build_model(name: str = "seed", **hparams: Any) -> Sequential:
    """A preset model by name (``"seed"`` or ``"lenet"``) with its hyperparameters."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(PRESETS)}")
    try:
        return PRESETS[name](**hparams)
    except TypeError as exc:
        raise ConfigError(f"bad hyperparameters for {name}: {exc}") from None
    except ValueError as exc:  # a layer that does not fit, said by the layer
        raise exc if isinstance(exc, PycnnError) else ConfigError(str(exc)) from None


def check_save_path(path: str | os.PathLike) -> None:
    """Fail now, with :class:`ConfigError`, if :meth:`Sequential.save` could not write ``path``.

    Creates and removes the temporary file the save will use, so a folder
    that does not exist or cannot be written is found before training.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ConfigError(f"cannot save the model to {path}: it is a folder; give a file name such as "
                          f"{os.path.join(path, 'model.npz')}")
    if not os.path.isdir(folder):
        raise ConfigError(f"cannot save the model to {path}: the folder {folder} does not exist")
    tmp = path + ".tmp"
    try:
        with open(tmp, "xb"):
            pass
    except FileExistsError:
        return  # a leftover temporary file: the folder is writable and save will replace it
    except OSError as exc:
        raise ConfigError(f"cannot save the model to {path}: {exc.strerror or exc}") from None
    _remove_quietly(tmp)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# Reading model files is its own module; load_model stays importable from here.
from .model_file import load_model  # noqa: F401  (imported last: it needs Sequential and the presets)
