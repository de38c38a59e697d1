"""The API the browser worker calls: JS buffers in, plain data out, the Session in between.

The page's worker (web/worker.js) imports this module inside Pyodide and calls
only the functions below. Each turns Pyodide's ``JsProxy`` buffers into NumPy
arrays, calls the module's one :class:`~pycnn.session.Session`, and returns
plain dicts, lists, floats, ints, strings or bytes for ``toJs``. Every call
that changes something returns the session's whole :func:`state` under
``"state"``, so the page can render from any reply. The contract (keys and
meanings) is docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data import mnist_from_idx_buffers
from .errors import DataFormatError
from .session import EVAL_BATCH, Session  # noqa: F401  (EVAL_BATCH: the page's evaluation chunk)
from .settings import DEFAULTS, LABELS, validate_config as _validate  # noqa: F401
from . import settings

IMAGE_SHAPE = (28, 28)
MAX_CANVAS = 4096  # pixels per side accepted by predict

_session = Session()


def reset() -> None:
    """Forget everything: a fresh session (as after a page reload)."""
    global _session
    _session = Session()


def _py(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value  # a JsProxy inside Pyodide


def _buffer(data: Any, what: str) -> np.ndarray:
    """A flat uint8 array over a bytes-like object or a Pyodide JsProxy of a typed array."""
    try:
        return np.frombuffer(_py(data), dtype=np.uint8)
    except TypeError:
        raise ValueError(f"{what} must be bytes-like (a Uint8Array in the browser), got {type(data).__name__}") from None


def _floats(data: Any, what: str) -> np.ndarray:
    flat = _buffer(data, what)
    if flat.size % 4:
        raise ValueError(f"{what}: {flat.size} bytes are not whole float32 numbers")
    return flat.view(np.float32)


def _images(data: Any, shape: Any, what: str) -> np.ndarray:
    """Images (N, 28, 28) from their bytes and shape."""
    flat = _buffer(data, what)
    try:
        dims = tuple(int(s) for s in _py(shape))
    except (TypeError, ValueError):
        raise ValueError(f"{what} shape must be a list of whole numbers, got {shape!r}") from None
    if len(dims) != 3 or dims[1:] != IMAGE_SHAPE:
        raise DataFormatError(f"{what} must have shape (N, 28, 28), got {dims}")
    if flat.size != math.prod(dims):
        raise DataFormatError(f"{what}: {flat.size} bytes for shape {dims} ({math.prod(dims)} expected)")
    return flat.reshape(dims).copy()


def _labels(data: Any, count: int, what: str) -> np.ndarray:
    y = _buffer(data, what).astype(np.int64)
    if y.size != count:
        raise DataFormatError(f"{what}: {y.size} labels for {count} images")
    return y


def _with_state(reply: dict | None = None, **more: Any) -> dict:
    return {**(reply or {}), **more, "state": _session.state()}


def state() -> dict:
    return _session.state()


def defaults() -> dict:
    return settings.defaults()


def validate_config(config: Any, train_available: int = 60000) -> dict:
    return _validate(_py(config), train_available)


# -- models

def load_pretrained(npz_bytes: Any) -> dict:
    return _with_state(model=_session.load_pretrained(_buffer(npz_bytes, "the pretrained weights").tobytes()))


def load_model_file(data: Any, source: str = "file") -> dict:
    return _with_state(model=_session.load_model_file(_buffer(data, "the model file").tobytes(), source))


def use_pretrained() -> dict:
    return _with_state(model=_session.use_pretrained())


def restore_previous() -> dict:
    return _with_state(model=_session.restore_previous())


def model_bytes() -> bytes:
    return _session.model_bytes()


def checkpoint() -> dict | None:
    return _session.checkpoint()


# -- MNIST

def set_mnist(train_images: Any, train_labels: Any, test_images: Any, test_labels: Any) -> dict:
    """The four MNIST IDX files' bytes as fetched (gzip or raw): {"train": N, "test": M, "state"}."""
    split = mnist_from_idx_buffers(*(_buffer(b, "an MNIST file").tobytes()
                                     for b in (train_images, train_labels, test_images, test_labels)))
    return _with_state(_session.set_mnist(*split))


def set_dataset(train_images: Any, train_labels: Any, test_images: Any, test_labels: Any,
                train_shape: Any, test_shape: Any) -> dict:
    """MNIST as pixel bytes plus shapes (for bench and tests that hold arrays already)."""
    x_train, x_test = _images(train_images, train_shape, "training images"), _images(test_images, test_shape, "test images")
    y_train = _labels(train_labels, len(x_train), "training labels")
    return _with_state(_session.set_mnist(x_train, y_train, x_test, _labels(test_labels, len(x_test), "test labels")))


def training_sample(n: int = 48, seed: int | None = None) -> dict:
    return _session.training_sample(n, seed)


# -- drawing

def predict(pixels: Any, width: int, height: int) -> dict:
    """Classify canvas ink: ``height`` rows of ``width`` opacity bytes (0 blank, 255 ink).

    {"digit", "probs": [10], "image": [784] (the preprocessed input), "maps": [image blocks]},
    all None for an empty canvas.
    """
    if isinstance(width, bool) or isinstance(height, bool) or int(width) != width or int(height) != height \
            or not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
        raise ValueError(f"canvas size must be whole numbers from 1 to {MAX_CANVAS}, got {width}x{height}")
    flat = _buffer(pixels, "pixels")
    if flat.size != width * height:
        raise ValueError(f"{flat.size} pixels do not make a {width}x{height} canvas")
    return _session.predict(flat.reshape(int(height), int(width)))


def filters() -> dict | None:
    return _session.filters()


def chart() -> dict:
    return _session.chart()


# -- training

def start_training(config: Any, workers: int = 1) -> dict:
    return _with_state(_session.start_training(_py(config), workers))


def train_slice(max_seconds: float = 0.2, max_steps: int | None = None) -> dict:
    return _with_state(_session.train_slice(max_seconds, max_steps))


def request_stop() -> dict:
    _session.request_stop()
    return _with_state()


# -- data-parallel

def shard_data(shard: int) -> dict:
    part = _session.shard_data(shard)
    x = part["images"]
    return {"images": x.tobytes(), "labels": part["labels"].astype(np.uint8).tobytes(), "shape": list(x.shape)}


def params() -> bytes:
    return _session.params().tobytes()


def start_replica(config: Any, images: Any, labels: Any, shape: Any, shard: int, params: Any) -> dict:
    x = _images(images, shape, "shard images")
    return _session.start_replica(_py(config), x, _labels(labels, len(x), "shard labels"), shard,
                                  _floats(params, "parameters"))


def compute_gradients() -> dict:
    part = _session.compute_gradients()
    return {**part, "grads": part["grads"].tobytes()}


def apply_gradients(parts: Any, *grads: Any) -> dict:
    vectors = [None if g is None else _floats(g, "gradients") for g in grads]
    return _with_state(_session.apply_gradients(_py(parts), vectors))


def go_solo() -> dict:
    return _session.go_solo()


def end_run() -> dict:
    _session.end_run()
    return {}


# -- evaluation

def start_evaluation() -> dict:
    return _with_state(evaluation=_session.start_evaluation())


def evaluation_slice(max_seconds: float = 0.2) -> dict:
    return _with_state(_session.evaluation_slice(max_seconds))


def evaluation_cell(label: int, predicted: int) -> dict:
    return _session.evaluation_cell(label, predicted)
