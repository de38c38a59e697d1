"""The API the browser worker calls: thin adapters over the library.

The page's worker (web/worker.js) imports this module inside Pyodide and calls
only the functions below. They take plain values (numbers, dicts, bytes-like
buffers) and return plain dicts, lists, floats, ints, strings or bytes, so the
worker can convert replies with ``toJs``. Training and prediction use the same
``model.py``, ``train.py`` and ``preprocess.py`` as the CLI; nothing here is
browser-specific except accepting Pyodide's ``JsProxy`` buffers.

State lives in this module: the data set, the model used for drawing (the
*active* model: pretrained until a training run produces a better one) and at
most one training run.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from . import insight
from .config import check_conv, check_limit, check_training
from .errors import ConfigError, DataFormatError, DivergedError
from .model import Sequential, build_model, load_model
from .optim import OPTIMIZERS, make_optimizer
from .parallel import ShardSchedule
from .preprocess import preprocess_digit
from .train import Trainer

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
MAX_CANVAS = 4096  # pixels per side accepted by predict
# A step must stay well under a second in the browser (no BLAS, one thread) so
# Stop is heard quickly: multiply-adds per image (forward) times batch size.
MAX_STEP_MACS = 300e6
HISTORY_SMOOTHING = 0.95  # the history chart's smoothed loss: about 20 steps, beside the raw losses
CHART_POINTS = 1000  # at most this many points per loss series sent to the page
EVAL_BATCH = 250  # test images per evaluation chunk: about 0.1 s for LeNet in the browser
MODEL_SOURCES = ("file", "saved")  # where load_model_file's bytes came from
MAX_SHARDS = 16  # data-parallel workers a run may use (the page offers at most 8)

DEFAULTS: dict[str, Any] = {
    "preset": "lenet", "optimizer": "adam", "lr": 0.001, "momentum": 0.9, "batch_size": 64,
    "epochs": 1, "train_size": None, "seed": 0,
    "n_filter": 32, "filter_size": 7, "stride": 1, "padding": 1, "shards": 1,
}
LABELS = {"lr": "learning rate", "momentum": "momentum", "batch_size": "batch size", "epochs": "epochs",
          "train_size": "training-set size", "seed": "random seed", "n_filter": "number of filters",
          "filter_size": "filter size", "stride": "stride", "padding": "padding",
          "shards": "number of workers"}


class _Run:
    """One training run: its trainer plus what the page's progress display needs."""

    def __init__(self, trainer: Trainer, model: Sequential, config: dict) -> None:
        self.trainer, self.model, self.config = trainer, model, config
        self.train_size = trainer.train_size
        self.seconds = 0.0      # time spent inside train_slice
        self.phase = "train"    # "train" or "test" (evaluating after an epoch)
        self.snapshot: bytes | None = None  # weights after the last finished epoch
        self.last_epoch: dict | None = None
        # Runs driven step by step (compute_gradients, apply_gradients) count
        # wall-clock time, waiting for the other workers included.
        self.started = time.perf_counter()
        self.wall_clock = trainer.shard is not None


class _State:
    def __init__(self) -> None:
        self.data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.model: Sequential | None = None
        self.info: dict | None = None
        self.run: _Run | None = None
        self.pretrained: tuple[Sequential, dict] | None = None
        self.evaluator: insight.Evaluator | None = None
        self.report: dict | None = None  # the finished evaluation of the active model
        self.history = insight.ChartHistory(smoothing=HISTORY_SMOOTHING, max_points=CHART_POINTS)


_state = _State()


def reset() -> None:
    """Forget the data set, the model and any run (for tests)."""
    global _state
    _state = _State()


# --------------------------------------------------------------------- inputs

def _buffer(data: Any, what: str) -> np.ndarray:
    """A flat uint8 array over a bytes-like object or a Pyodide JsProxy of a Uint8Array."""
    if hasattr(data, "to_py"):  # a JS typed array inside Pyodide: copy it into Python
        data = data.to_py()
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        raise ValueError(f"{what} must be bytes-like (a Uint8Array in the browser), "
                         f"got {type(data).__name__}") from None


def _shape(shape: Any, what: str) -> tuple[int, ...]:
    if hasattr(shape, "to_py"):
        shape = shape.to_py()
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a list of whole numbers, got {shape!r}") from None


def _images(data: Any, shape: Any, what: str) -> np.ndarray:
    flat = _buffer(data, what)
    dims = _shape(shape, f"{what} shape")
    if len(dims) != 3 or dims[1:] != IMAGE_SHAPE:
        raise DataFormatError(f"{what} must have shape (N, 28, 28), got {dims}")
    if flat.size != math.prod(dims):
        raise DataFormatError(f"{what}: {flat.size} bytes for shape {dims} ({math.prod(dims)} expected)")
    return flat.reshape(dims).copy()


def _labels(data: Any, count: int, what: str) -> np.ndarray:
    y = _buffer(data, what).astype(np.int64)
    if y.size != count:
        raise DataFormatError(f"{what}: {y.size} labels for {count} images")
    if y.size and y.max() >= NUM_CLASSES:
        raise DataFormatError(f"{what}: labels must lie in 0..9 (found {y.max()})")
    return y


def _number(config: dict, key: str, lo: float, hi: float, integer: bool) -> int | float:
    value, name = config[key], LABELS[key]
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be {kind} between {lo:g} and {hi:g}, got {value!r}")
    if integer and value != int(value):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, got {value:g}")
    return int(value) if integer else float(value)


def validate_config(config: dict, train_available: int = 60000) -> dict:
    """Check a training configuration from the page; return it complete and typed.

    Keys (all optional, see DEFAULTS): preset ("seed" | "lenet"), optimizer
    ("sgd" | "momentum" | "adam"), lr, momentum, batch_size, epochs,
    train_size (the first N training images; default all), seed, shards (the
    number of data-parallel workers the batch schedule is made for, see
    ``parallel.ShardSchedule``; 1 is the classic schedule), and for the
    seed preset n_filter, filter_size, stride, padding. A train_size above
    ``train_available`` uses all the images and the result gets a "note"
    saying so. Raises ConfigError (a ValueError) with a message fit to show
    the user: the checks of ``pycnn.config`` (as the CLI), then the page's
    limits.
    """
    if hasattr(config, "to_py"):
        config = config.to_py()
    if not isinstance(config, dict):
        raise ConfigError(f"the training settings must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown training setting {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
    c = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if c["preset"] not in ("seed", "lenet"):
        raise ConfigError(f"preset must be 'seed' or 'lenet', got {c['preset']!r}")
    if c["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {c['optimizer']!r}")
    # The library's checks (pycnn.config, shared with the CLI) first, then the page's own limits.
    check_training(c["lr"], c["epochs"], c["batch_size"])
    train_size, note = check_limit(c["train_size"], train_available)
    out = {"preset": c["preset"], "optimizer": c["optimizer"],
           "lr": _number(c, "lr", 1e-6, 1.0, False),
           "momentum": _number(c, "momentum", 0.0, 0.999, False),
           "batch_size": _number(c, "batch_size", 1, 512, True),
           "epochs": _number(c, "epochs", 1, 20, True),
           "train_size": _number({"train_size": train_size}, "train_size", min(100, train_available),
                                 train_available, True),
           "seed": _number(c, "seed", 0, 2**31 - 1, True)}
    out["shards"] = _number(c, "shards", 1, min(MAX_SHARDS, out["batch_size"]), True)
    if out["preset"] == "seed":
        k = c["filter_size"]
        check_conv(c["n_filter"], k, k, c["stride"], c["padding"], *IMAGE_SHAPE)
        out["n_filter"] = _number(c, "n_filter", 1, 64, True)
        out["filter_size"] = _number(c, "filter_size", 1, 28, True)
        out["stride"] = _number(c, "stride", 1, 28, True)
        out["padding"] = _number(c, "padding", 0, out["filter_size"] - 1, True)
    if note:
        out["note"] = note
    return out


def _build(config: dict) -> Sequential:
    if config["preset"] == "lenet":
        return build_model("lenet", seed=config["seed"])
    k = config["filter_size"]
    try:
        return build_model("seed", n_filter=config["n_filter"], h_filter=k, w_filter=k,
                           stride=config["stride"], padding=config["padding"], seed=config["seed"])
    except ValueError as e:
        raise ConfigError(f"this seed architecture does not fit 28x28 images: {e}") from None


def _macs_per_image(model: Sequential) -> int:
    """Forward multiply-adds for one image: conv and dense layers only."""
    total = 0
    for layer, out in zip(model.layers, model.shapes, strict=True):
        weights = [p.value for p in layer.params() if p.value.ndim > 1]
        if weights:  # each output position costs one multiply-add per weight
            total += math.prod(out[:-1]) * weights[0].size
    return total


# --------------------------------------------------------------------- outputs

def _model_info(model: Sequential, source: str, test_accuracy: float | None = None,
                epochs: int | None = None) -> dict:
    spec = model.spec
    return {"name": spec["name"], "hparams": dict(spec.get("hparams", {})),
            "parameters": model.num_params,
            "source": source, "test_accuracy": test_accuracy, "epochs": epochs}


def _plain(event: dict) -> dict:
    """An event with numpy scalars turned into Python floats and ints."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in event.items()}


def _activate(model: Sequential, info: dict) -> dict:
    """Make ``model`` the one used for drawing; any evaluation of the previous one is dropped."""
    _state.model, _state.info = model, info
    _state.evaluator = _state.report = None
    return dict(info)


# --------------------------------------------------------------------- API

def set_dataset(train_images: Any, train_labels: Any, test_images: Any, test_labels: Any,
                train_shape: Any, test_shape: Any) -> dict:
    """Hand MNIST to Python: the pixel bytes after each IDX header, and the header's shape.

    Images are uint8 bytes of shape (N, 28, 28) given as ``train_shape`` /
    ``test_shape``; labels are uint8 bytes (N,). Returns {"train": N, "test": M}.
    """
    x_train = _images(train_images, train_shape, "training images")
    y_train = _labels(train_labels, len(x_train), "training labels")
    x_test = _images(test_images, test_shape, "test images")
    y_test = _labels(test_labels, len(x_test), "test labels")
    if len(x_train) == 0 or len(x_test) == 0:
        raise DataFormatError("the training and test sets must not be empty")
    _state.data = (x_train, y_train, x_test, y_test)
    return {"train": len(x_train), "test": len(x_test)}


def load_pretrained(npz_bytes: Any) -> dict:
    """Make the model in ``npz_bytes`` (a file written by ``pycnn train --save``) the active one.

    Returns its info: {"name", "hparams", "parameters", "source": "pretrained",
    "test_accuracy": None, "epochs": None}. Raises ModelFormatError (a
    ValueError) if the bytes are not a pycnn model for 28x28 digits.
    """
    model = load_model(_buffer(npz_bytes, "the pretrained weights").tobytes(),
                       input_shape=(*IMAGE_SHAPE, 1), num_classes=NUM_CLASSES)
    info = _model_info(model, "pretrained")
    _state.pretrained = (model, info)
    return _activate(model, dict(info))


def load_model_file(data: Any, source: str = "file") -> dict:
    """Make the model in an .npz file's bytes the active one; returns its info.

    ``source`` says where the bytes came from: "file" (chosen or dropped by
    the visitor) or "saved" (the page's own copy of its last model, kept in
    IndexedDB); it becomes the info's ``"source"``. A corrupt file, a
    non-npz file or a model for other images or another number of classes
    raises ModelFormatError (a ValueError) with a specific message, and the
    active model stays as it was.
    """
    if source not in MODEL_SOURCES:
        raise ValueError(f"source must be one of {', '.join(MODEL_SOURCES)}, got {source!r}")
    model = insight.read_model_file(_buffer(data, "the model file").tobytes(),
                                    input_shape=(*IMAGE_SHAPE, 1), num_classes=NUM_CLASSES)
    return _activate(model, _model_info(model, source))


def use_pretrained() -> dict:
    """Make the pretrained model (from load_pretrained) the active one again; returns its info."""
    if _state.pretrained is None:
        raise ValueError("no pretrained model is loaded yet")
    model, info = _state.pretrained
    return _activate(model, dict(info))


def model_info() -> dict | None:
    """Info about the active model (see load_pretrained), or None before one is loaded."""
    return None if _state.info is None else dict(_state.info)


def model_bytes() -> bytes:
    """The active model as an .npz file, loadable with ``pycnn.load_model`` and the CLI."""
    if _state.model is None:
        raise ValueError("no model is loaded yet")
    return _state.model.to_bytes()


def predict(pixels: Any, width: int, height: int, with_maps: bool = False) -> dict:
    """Classify a drawing with the active model.

    ``pixels`` holds ``height`` rows of ``width`` bytes, the ink's opacity
    (0 = blank, 255 = full ink), as read from the canvas. Returns
    {"digit": int, "probs": [10 floats], "image": [784 floats]} where image is
    the preprocessed 28x28 input, row-major; or {"digit": None, "probs": None,
    "image": None} for an empty canvas. With ``with_maps`` the reply also has
    "maps": each convolution's activation maps for that input (see
    ``insight.feature_maps``: one image block per convolution), None for an
    empty canvas.
    """
    if _state.model is None:
        raise ValueError("no model is loaded yet")
    if isinstance(width, bool) or isinstance(height, bool) or int(width) != width or int(height) != height \
            or not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
        raise ValueError(f"canvas size must be whole numbers from 1 to {MAX_CANVAS}, got {width}x{height}")
    flat = _buffer(pixels, "pixels")
    if flat.size != width * height:
        raise ValueError(f"{flat.size} pixels do not make a {width}x{height} canvas")
    image = preprocess_digit(flat.reshape(int(height), int(width)))
    if image is None:
        out = {"digit": None, "probs": None, "image": None}
        return {**out, "maps": None} if with_maps else out
    probs = _state.model.predict_proba(image[None])[0]
    out = {"digit": int(probs.argmax()), "probs": [float(p) for p in probs],
           "image": [round(float(v), 3) for v in image.ravel()]}
    if with_maps:
        out["maps"] = insight.feature_maps(_state.model, image)
    return out


def start_training(config: dict, shard: int | None = None) -> dict:
    """Begin a training run with ``config`` (see validate_config); replaces any run.

    With ``shard=None`` this worker trains whole global batches alone (on a
    schedule made for ``config["shards"]`` workers). With ``shard=0`` it is
    the first of ``config["shards"]`` data-parallel workers: it trains on
    shard 0 only, step by step with compute_gradients and apply_gradients,
    evaluates the test set, and hands the other shards out (shard_data); the
    others run start_replica. Returns {"epochs", "train_size", "test_size",
    "batch_size", "shards", "steps_per_epoch", "total_steps", "chart_end": the
    global step (see chart) this run ends at if it is not stopped, "note":
    validate_config's note or None, "model": info of the new model}.
    """
    if _state.data is None:
        raise ValueError("MNIST is not loaded yet")
    x_train, y_train, x_test, y_test = _state.data
    config = validate_config(config, len(x_train))
    if shard not in (None, 0):
        raise ValueError(f"the worker holding the data set trains shard 0, not {shard!r}")
    model = _build(config)
    macs = _check_speed(model, config)
    n = config["train_size"]
    x, y = x_train[:n], y_train[:n]
    if shard == 0:
        hi = ShardSchedule(n, config["batch_size"], config["shards"]).bounds[1]
        x, y = x[:hi], y[:hi]
    # Test chunks as costly as about one training step keep every slice short.
    eval_batch = max(50, min(1000, int(MAX_STEP_MACS / 3 // max(macs, 1))))
    trainer = _trainer(model, x, y, x_test, y_test, config, shard, eval_batch)
    _state.run = _Run(trainer, model, config)
    _state.history.start_run()
    return {"epochs": config["epochs"], "train_size": n, "test_size": len(x_test), "note": config.get("note"),
            "batch_size": config["batch_size"], "shards": config["shards"],
            "steps_per_epoch": trainer.steps_per_epoch,
            "total_steps": trainer.total_steps, "chart_end": _state.history.step + trainer.total_steps,
            "model": _model_info(model, "training")}


def _check_speed(model: Sequential, config: dict) -> int:
    """Refuse a step too slow for the browser; returns the model's multiply-adds per image."""
    macs = _macs_per_image(model)
    if macs * config["batch_size"] > MAX_STEP_MACS:
        largest = int(MAX_STEP_MACS // macs)
        fix = f"a batch size of at most {largest}" if largest >= 16 else "fewer or smaller filters or a larger stride"
        raise ConfigError(
            f"too slow for the browser: one step of this model ({macs / 1e6:.1f} million multiply-adds per "
            f"image, batch {config['batch_size']}) would take seconds, so Stop could not answer quickly; use {fix}")
    return macs


def _trainer(model: Sequential, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None,
             y_test: np.ndarray | None, config: dict, shard: int | None, eval_batch: int = 500) -> Trainer:
    optimizer = make_optimizer(config["optimizer"], model.params(), config["lr"], config["momentum"])
    return Trainer(model, x, y, x_test, y_test, optimizer=optimizer, batch_size=config["batch_size"],
                   epochs=config["epochs"], seed=config["seed"], eval_batch_size=eval_batch,
                   shards=config["shards"], shard=shard, train_size=config["train_size"])


# --------------------------------------------------------------------- data-parallel training
# Each worker of a run (web/parallel.js) runs the same steps: compute_gradients
# on its part of the global batch, send that part to every other worker, then
# apply_gradients with all of them, added up in the same order everywhere, so
# all replicas take the identical optimizer step and stay bit-identical.


def _run(parallel: bool = True) -> _Run:
    run = _state.run
    if run is None:
        raise ValueError("no training run: call start_training first")
    if parallel and run.trainer.shard is None:
        raise ValueError("this run is not data-parallel: start it with a shard")
    return run


def shard_data(shard: int) -> dict:
    """The training images of ``shard`` of the current data-parallel run, for the worker that trains it.

    Returns {"images": bytes (N_k, 28, 28), "labels": bytes (N_k,), "shape": [N_k, 28, 28]}.
    """
    run = _run()
    schedule = run.trainer.schedule
    if isinstance(shard, bool) or int(shard) != shard or not 1 <= shard < schedule.shards:
        raise ValueError(f"shard must be a whole number from 1 to {schedule.shards - 1}, got {shard!r}")
    x_train, y_train, _, _ = _state.data
    lo, hi = schedule.bounds[int(shard)], schedule.bounds[int(shard) + 1]
    return {"images": x_train[lo:hi].tobytes(), "labels": y_train[lo:hi].astype(np.uint8).tobytes(),
            "shape": [hi - lo, *IMAGE_SHAPE]}


def start_replica(config: dict, images: Any, labels: Any, shape: Any, shard: int, params: Any) -> dict:
    """Begin a run as data-parallel worker ``shard`` (1 or more) on that shard's images only.

    ``config`` is the first worker's, validated and complete; ``images``,
    ``labels`` and ``shape`` come from its shard_data; ``params`` is its
    flat_params() (float32 bytes), so every replica starts from the same
    weights. Returns {"shard", "train_size": images held}.
    """
    if hasattr(config, "to_py"):
        config = config.to_py()
    n = config.get("train_size") if isinstance(config, dict) else None
    config = validate_config(config, n if isinstance(n, int) and n > 0 else 1)
    x = _images(images, shape, "shard images")
    y = _labels(labels, len(x), "shard labels")
    if isinstance(shard, bool) or int(shard) != shard or not 1 <= shard < config["shards"]:
        raise ValueError(f"shard must be a whole number from 1 to {config['shards'] - 1}, got {shard!r}")
    model = _build(config)
    model.set_flat_params(_floats(params, "parameters"))
    _state.run = _Run(_trainer(model, x, y, None, None, config, int(shard)), model, config)
    return {"shard": int(shard), "train_size": len(x)}


def _floats(data: Any, what: str) -> np.ndarray:
    """A float32 vector over bytes-like data or a Pyodide JsProxy of a Float32Array or Uint8Array."""
    flat = _buffer(data, what)
    if flat.size % 4:
        raise ValueError(f"{what}: {flat.size} bytes are not whole float32 numbers")
    return flat.view(np.float32)


def params() -> bytes:
    """The model being trained (or else the active one) as one float32 vector, as bytes."""
    model = _state.run.model if _state.run is not None else _state.model
    if model is None:
        raise ValueError("no model is loaded yet")
    return model.flat_params().tobytes()


def compute_gradients() -> dict:
    """This worker's part of the next global batch: forward and backward, no update.

    Returns {"grads": float32 bytes, its share-weighted gradient vector (see
    ``Trainer.compute_gradients``), "count", "loss", "correct", "seconds":
    time taken}. The worker keeps its own gradients; it sends "grads" and
    the counts to every other worker, and each worker hands all of them to
    its own apply_gradients.
    """
    run = _run(parallel=False)
    run.wall_clock = True
    start = time.perf_counter()
    part = run.trainer.compute_gradients()
    grads = run.model.flat_grads().tobytes()
    return {"grads": grads, **{k: _plain(part)[k] for k in ("count", "loss", "correct")},
            "seconds": time.perf_counter() - start}


def apply_gradients(parts: Any, *grads: Any) -> dict:
    """Take the optimizer step with the gradients of every worker's part of the global batch.

    ``parts`` is every worker's {"count", "loss", "correct"} in shard order;
    ``grads`` are the gradient vectors (float32 bytes) in the same order,
    with None in this worker's own place: it still holds its own. Every
    worker adds the same vectors in the same order, so every replica takes
    the identical optimizer step and they stay bit-identical. Returns what
    train_slice returns, for this one step. A diverged run (the summed loss
    is not finite, or exploded: see Trainer) ends and leaves the previous model active. If the
    epoch's training is over, train_slice(max_steps=0) evaluates it.
    """
    if hasattr(parts, "to_py"):
        parts = parts.to_py()
    if len(grads) != len(parts) or sum(g is None for g in grads) != 1:
        raise ValueError(f"apply_gradients needs one gradient vector per part with None in this worker's place, "
                         f"got {len(grads)} for {len(parts)} parts")
    run = _run(parallel=False)
    start = time.perf_counter()
    own = run.model.flat_grads()
    total = None
    for g in grads:
        vector = own if g is None else _floats(g, "gradients")
        total = vector.copy() if total is None else np.add(total, vector, out=total)
    batch = {key: sum(part[key] for part in parts) for key in ("count", "loss", "correct")}
    try:
        run.model.set_flat_grads(total)
        events = [_plain(run.trainer.apply_gradients(batch))]
    except DivergedError as e:
        return _diverged(run, start, e)
    return _after_work(run, start, events)


def go_solo() -> dict:
    """The other workers are gone: go on alone with the whole training set, same schedule.

    Returns {"shards": 1 (workers left)}.
    """
    run = _run()
    x_train, y_train, _, _ = _state.data
    run.trainer.go_solo(x_train[: run.train_size], y_train[: run.train_size])
    return {"shards": 1}


def _progress(run: _Run) -> dict:
    t = run.trainer
    in_epoch = 0 if t.done else min(t.step - t.epoch * t.steps_per_epoch, t.steps_per_epoch)
    epoch_examples = min(in_epoch * t.batch_size, run.train_size)
    done = run.train_size * t.epoch + (0 if t.done else epoch_examples)
    total = run.train_size * t.epochs
    rate = done / run.seconds if run.seconds > 0 else 0.0
    return {"epoch": min(t.epoch + 1, t.epochs), "epochs": t.epochs, "phase": run.phase,
            "epoch_examples": epoch_examples if not t.done else run.train_size,
            "train_size": run.train_size, "examples": done, "examples_total": total,
            "fraction": done / total, "seconds": run.seconds, "examples_per_second": rate,
            "eta_seconds": (total - done) / rate if rate > 0 else None}


def _finish(run: _Run) -> dict:
    """End the run; the model from its last finished epoch becomes active. Returns that info."""
    _state.run = None
    if run.snapshot is None and not run.trainer.done:
        return dict(_state.info) if _state.info else None
    last = run.last_epoch
    model = run.model if run.trainer.done else load_model(run.snapshot)
    return _activate(model, _model_info(model, "trained", last["test_accuracy"], last["epoch"]))


def train_slice(max_seconds: float = 0.2, max_steps: int | None = None) -> dict:
    """Train for about ``max_seconds`` (at least one step or test chunk), and at
    most ``max_steps`` training steps when given (the page sets only the time).

    Returns {"events": [...] (the Trainer's step and epoch dicts),
    "progress": {...}, "done": bool, "evaluating": bool (the epoch's test
    evaluation is due), "diverged": message or None, "model":
    info of the active model when done, else None}; :func:`chart` has the
    curves. A diverged run (NaN, infinite or exploding loss) ends and
    leaves the previous model active.
    """
    run = _run(parallel=False)
    start = time.perf_counter()
    try:
        events = [_plain(e) for e in run.trainer.run(max_steps, max_seconds=float(max_seconds))]
    except DivergedError as e:
        return _diverged(run, start, e)
    return _after_work(run, start, events)


def _clock(run: _Run, start: float) -> None:
    if run.wall_clock:
        run.seconds = time.perf_counter() - run.started
    else:
        run.seconds += time.perf_counter() - start


def _diverged(run: _Run, start: float, error: DivergedError) -> dict:
    _clock(run, start)
    _state.run = None
    return {"events": [], "progress": _progress(run), "done": True, "diverged": str(error), "model": model_info()}


def _after_work(run: _Run, start: float, events: list[dict]) -> dict:
    _clock(run, start)
    _state.history.extend(events)
    for e in events:
        if e["kind"] == "epoch":
            run.last_epoch = e
            if run.trainer.x_test is not None:  # replicas, without a test set, need no snapshot for Stop
                run.snapshot = run.model.to_bytes()
    if events:
        last = events[-1]
        run.phase = "test" if last["kind"] == "step" and last["batch"] == last["steps_per_epoch"] else "train"
    done = run.trainer.done
    return {"events": events, "progress": _progress(run), "done": done, "evaluating": run.trainer.evaluating,
            "diverged": None, "model": _finish(run) if done else None}


def stop() -> dict:
    """Abandon the run. If an epoch finished, the weights after the last finished
    epoch become the active model. Returns {"kept": bool, "model": active info}."""
    run = _state.run
    if run is None:
        return {"kept": False, "model": model_info()}
    kept = run.snapshot is not None
    return {"kept": kept, "model": _finish(run)}


def checkpoint() -> dict | None:
    """The running training run's model after its last finished epoch, for the page to keep.

    The worker stores it (IndexedDB) after each epoch, so a reload during
    training restores that progress. Returns {"bytes": the .npz file,
    "name": preset, "epoch": epochs finished, "epochs": the run's epochs,
    "test_accuracy"}, or None without a run or before its first epoch ends.
    """
    run = _state.run
    if run is None or run.snapshot is None:
        return None
    return {"bytes": run.snapshot, "name": run.model.spec["name"], "epoch": run.last_epoch["epoch"],
            "epochs": run.trainer.epochs, "test_accuracy": run.last_epoch["test_accuracy"]}


# --------------------------------------------------------------------- insight


def filters() -> dict | None:
    """The first convolution's filters as grey images (see ``insight.filter_images``).

    During a training run, those of the model being trained (so the page can
    show them change); otherwise those of the active model. None if the model
    has no convolution or no model is loaded.
    """
    model = _state.run.model if _state.run is not None else _state.model
    return None if model is None else insight.filter_images(model)


def chart() -> dict:
    """Loss per step (raw and smoothed) and accuracy per epoch of every run so far, on one step axis.

    See ``insight.ChartHistory.series``: {"steps", "runs", "loss",
    "loss_smoothed", "train_accuracy", "test_accuracy"}, each series
    {"x": [global steps], "y": [values]}, losses downsampled to at most
    CHART_POINTS points.
    """
    return _state.history.series()


def training_sample(n: int = 48, seed: int | None = None) -> dict:
    """``n`` random training images with labels: an image block plus "indices" and "labels"."""
    if _state.data is None:
        raise ValueError("MNIST is not loaded yet")
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= 400:
        raise ValueError(f"the sample size must be a whole number from 1 to 400, got {n!r}")
    x_train, y_train, _, _ = _state.data
    return insight.dataset_sample(x_train, y_train, int(n), seed)


def start_evaluation() -> dict:
    """Begin evaluating the active model on the whole test set (in chunks: evaluation_slice).

    Replaces any unfinished evaluation. Returns {"evaluated": 0, "total", "done"}.
    """
    if _state.data is None:
        raise ValueError("MNIST is not loaded yet")
    if _state.model is None:
        raise ValueError("no model is loaded yet")
    _, _, x_test, y_test = _state.data
    _state.evaluator = insight.Evaluator(_state.model, x_test, y_test, batch_size=EVAL_BATCH)
    _state.report = None
    return _state.evaluator.progress()


def evaluation_slice(max_seconds: float = 0.2) -> dict:
    """Evaluate test chunks for about ``max_seconds`` (at least one chunk).

    Returns {"progress": {"evaluated", "total", "done"}, "report": None until
    done}. The report is ``insight.Evaluator.result()`` (accuracy,
    per_class_accuracy, class_counts, confusion, cells, mistakes, gallery)
    plus "confusion_share" (each confusion count divided by its row's total,
    for shading), "gallery_images" (an image block of the gallery's images, in
    its order) and "model" (info of the evaluated model).
    """
    evaluator = _state.evaluator
    if evaluator is None:
        raise ValueError("no evaluation is running: call start_evaluation first")
    progress = evaluator.run(max_seconds=float(max_seconds))
    if not evaluator.done:
        return {"progress": progress, "report": None}
    report = evaluator.result()
    counts = np.asarray(report["confusion"], dtype=np.float64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    report["confusion_share"] = np.round(share, 4).tolist()
    report["gallery_images"] = insight.images(evaluator.x, [g["index"] for g in report["gallery"]])
    report["model"] = dict(_state.info)
    _state.report, _state.evaluator = report, None
    return {"progress": progress, "report": report}


def evaluation_cell(label: int, predicted: int) -> dict:
    """The test images in one confusion-matrix cell of the last finished evaluation.

    Returns {"label", "predicted", "cell_count" (images in the cell),
    "indices" (the first ``cell_limit`` of them)} plus their image block
    (whose "count" is how many are shown).
    """
    report = _state.report
    if report is None:
        raise ValueError("no finished evaluation: evaluate the model first")
    for name, value in (("label", label), ("predicted", predicted)):
        if isinstance(value, bool) or int(value) != value or not 0 <= value < NUM_CLASSES:
            raise ValueError(f"{name} must be a digit from 0 to 9, got {value!r}")
    label, predicted = int(label), int(predicted)
    indices = report["cells"][label][predicted]
    _, _, x_test, _ = _state.data
    return {"label": label, "predicted": predicted, "cell_count": report["confusion"][label][predicted],
            "indices": list(indices), **insight.images(x_test, indices)}
