"""The API the browser worker calls: Pyodide's JS buffers in, plain data out, one Session in between.

Every call that changes something returns the session's whole :func:`state`
under ``"state"``, so the page renders from any reply (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import session_insight, settings, userdigits
from .data import mnist_from_idx_buffers
from .errors import DataFormatError
from .homework import page as homework_page
from .session import Session

MAX_CANVAS = 4096  # pixels per side accepted by predict
_session = Session()


def reset() -> None:
    """A fresh session, as after a page reload (the same object, so the aliases below stay valid)."""
    _session.__init__()


# Calls that take and give plain data already are the session's own methods.
state = _session.state
defaults = settings.defaults
model_bytes = _session.model_bytes
checkpoint = _session.checkpoint
training_sample = _session.training_sample
filters = _session.filters
chart = _session.chart
go_solo = _session.go_solo
evaluation_cell = _session.evaluation_cell
# The Code card (pycnn/homework): exercises and sources, checks of the student's file.
homework = homework_page.homework
check_code = homework_page.check_code
exercise_code = homework_page.exercise_code
exercise_lines = homework_page.exercise_lines


def _py(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value  # a JsProxy inside Pyodide


def _buffer(data: Any, what: str) -> np.ndarray:
    """A flat uint8 array over bytes or a Pyodide JsProxy of a typed array."""
    try:
        return np.frombuffer(_py(data), dtype=np.uint8)
    except TypeError:
        raise ValueError(f"{what} must be bytes-like (a Uint8Array in the browser), "
                         f"got {type(data).__name__}") from None


def _floats(data: Any, what: str) -> np.ndarray:
    flat = _buffer(data, what)
    if flat.size % 4:
        raise ValueError(f"{what}: {flat.size} bytes are not whole float32 numbers")
    return flat.view(np.float32)


def _images(data: Any, shape: Any, what: str) -> np.ndarray:
    """Images (N, 28, 28) from their bytes and shape (the label counts are the session's to check)."""
    flat = _buffer(data, what)
    try:
        dims = tuple(int(d) for d in _py(shape))
    except (TypeError, ValueError):
        raise ValueError(f"{what} shape must be a list of whole numbers, got {shape!r}") from None
    if len(dims) != 3 or dims[1:] != settings.IMAGE_SHAPE or flat.size != math.prod(dims):
        raise DataFormatError(f"{what}: {flat.size} bytes are not images of shape (N, 28, 28) = {dims}")
    return flat.reshape(dims).copy()


def _labels(data: Any, what: str) -> np.ndarray:
    return _buffer(data, what).astype(np.int64)


def _with_state(reply: dict | None = None, **more: Any) -> dict:
    return {**(reply or {}), **more, "state": _session.state()}


def validate_config(config: Any, train_available: int = 60000) -> dict:
    return settings.validate_config(_py(config), train_available)


def load_pretrained(npz_bytes: Any) -> dict:
    return _with_state(model=_session.load_pretrained(_buffer(npz_bytes, "the pretrained weights").tobytes()))


def load_model_file(data: Any, source: str = "file") -> dict:
    return _with_state(model=_session.load_model_file(_buffer(data, "the model file").tobytes(), source))


def use_pretrained() -> dict:
    return _with_state(model=_session.use_pretrained())


def restore_previous() -> dict:
    return _with_state(model=_session.restore_previous())


def set_mnist(train_images: Any, train_labels: Any, test_images: Any, test_labels: Any) -> dict:
    """The four MNIST IDX files' bytes as fetched (gzip or raw): {"train": N, "test": M, "state"}."""
    files = (train_images, train_labels, test_images, test_labels)
    return _with_state(_session.set_mnist(*mnist_from_idx_buffers(*(_buffer(f, "an MNIST file") for f in files))))


def set_dataset(train_images: Any, train_labels: Any, test_images: Any, test_labels: Any,
                train_shape: Any, test_shape: Any) -> dict:
    """MNIST as pixel bytes plus shapes (for bench and tests, which hold the arrays already)."""
    return _with_state(_session.set_mnist(_images(train_images, train_shape, "training images"),
                                          _labels(train_labels, "training labels"),
                                          _images(test_images, test_shape, "test images"),
                                          _labels(test_labels, "test labels")))


def predict(pixels: Any, width: int, height: int) -> dict:
    """Classify ``height`` rows of ``width`` ink bytes (0 blank, 255 ink): {"digit", "probs": [10],
    "image": [784] (the network's input), "maps": [image blocks]}, all None for an empty canvas."""
    return _session.predict(_ink(pixels, width, height))


def _ink(pixels: Any, width: int, height: int) -> np.ndarray:
    """Canvas ink (height, width) uint8 from ``height`` rows of ``width`` bytes."""
    if isinstance(width, bool) or isinstance(height, bool) or int(width) != width or int(height) != height \
            or not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
        raise ValueError(f"canvas size must be whole numbers from 1 to {MAX_CANVAS}, got {width}x{height}")
    flat = _buffer(pixels, "pixels")
    if flat.size != width * height:
        raise ValueError(f"{flat.size} pixels do not make a {width}x{height} canvas")
    return flat.reshape(int(height), int(width))


def start_training(config: Any, workers: int = 1) -> dict:
    reply = homework_page.start_training(_session, config, workers)
    session_insight.watch_health(_session)
    return _with_state(reply)


def train_slice(max_seconds: float = 0.2, max_steps: int | None = None) -> dict:
    return _with_state(_session.train_slice(max_seconds, max_steps))


def request_stop() -> dict:
    _session.request_stop()
    return _with_state()


def shard_data(shard: int) -> dict:
    part = _session.shard_data(shard)
    x = part["images"]
    return {"images": x.tobytes(), "labels": part["labels"].astype(np.uint8).tobytes(), "shape": list(x.shape)}


def params() -> bytes:
    return _session.params().tobytes()


def start_replica(config: Any, images: Any, labels: Any, shape: Any, shard: int, params: Any) -> dict:
    return homework_page.start_replica(_session, config, _images(images, shape, "shard images"),
                                       _labels(labels, "shard labels"), shard, _floats(params, "parameters"))


def compute_gradients() -> dict:
    part = _session.compute_gradients()
    return {**part, "grads": part["grads"].tobytes()}


def apply_gradients(parts: Any, *grads: Any) -> dict:
    vectors = [None if g is None else _floats(g, "gradients") for g in grads]
    return _with_state(_session.apply_gradients(_py(parts), vectors))


def end_run() -> dict:
    _session.end_run()
    return {}


def start_evaluation() -> dict:
    return _with_state(evaluation=_session.start_evaluation())


def evaluation_slice(max_seconds: float = 0.2) -> dict:
    return _with_state(_session.evaluation_slice(max_seconds))


# -- seeing learning happen (pycnn.session_insight) ---------------------------------


def saliency(pixels: Any, width: int, height: int, target: int | None = None) -> dict:
    """The saliency map of the drawn digit for class ``target`` (None: the predicted one)."""
    return session_insight.saliency(_session, _ink(pixels, width, height), target)


def step_apart(pixels: Any, width: int, height: int, label: int, optimizer: str = "sgd",
               lr: float | None = None) -> dict:
    """One training step taken apart on the drawn digit, labelled ``label``."""
    return session_insight.step_apart(_session, label, _ink(pixels, width, height), optimizer=optimizer, lr=lr)


def step_apart_test(index: int, optimizer: str = "sgd", lr: float | None = None) -> dict:
    """One training step taken apart on test image ``index`` with its true label."""
    return session_insight.step_apart(_session, None, test_index=index, optimizer=optimizer, lr=lr)


def step_apart_mistake(k: int, optimizer: str = "sgd", lr: float | None = None) -> dict:
    """One training step taken apart on the ``k``-th mistake of the Evaluation panel's gallery."""
    return session_insight.step_apart_mistake(_session, k, optimizer, lr)


def user_digit(pixels: Any, width: int, height: int) -> dict:
    """The drawn digit as your gallery keeps it: {"image": 784 bytes, "digit", "probs"}."""
    return session_insight.user_digit(_session, _ink(pixels, width, height))


def _digits(images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _buffer(images, "your digits"), _labels(labels, "your digits' labels")
    if x.size != 784 * len(y):
        raise DataFormatError(f"your digits: {x.size} bytes are not {len(y)} images of 28x28")
    return userdigits.check_digits(x.reshape(-1, 28, 28), y)


def digits_file(images: Any, labels: Any) -> bytes:
    """Your digits (N * 784 bytes, N label bytes) as the .npz that `pycnn train --extra` reads."""
    return userdigits.digits_to_bytes(*_digits(images, labels))


def read_digits_file(data: Any) -> dict:
    """A digits .npz's contents: {"images": N * 784 bytes, "labels": [N], "count": N}."""
    x, y = userdigits.read_digits(_buffer(data, "the digits file").tobytes())
    return {"images": x.tobytes(), "labels": y.tolist(), "count": len(y)}


def fine_tune(images: Any, labels: Any, seconds: float = 3.0) -> dict:
    """Fine-tune the current model on MNIST mixed with your digits; the result is used for drawing."""
    return _with_state(session_insight.fine_tune(_session, *_digits(images, labels), float(seconds)))


def health() -> dict | None:
    """The run's layer health over its steps (pycnn.health.LayerHealth.series), or None."""
    return session_insight.health(_session)


def set_lr(lr: float) -> dict:
    """Use learning rate ``lr`` from the running run's next step: {"mark": {"step", "lr"}, "state"}."""
    return _with_state(mark=session_insight.set_lr(_session, _py(lr)))
