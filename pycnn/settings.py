"""The page's training settings: defaults, names, checks, and the model and trainer they describe.

``validate_config`` turns the training form's dict into complete, typed
settings (or a one-line :class:`ConfigError` naming the field, as the page
shows it); ``build`` makes the model they describe, ``check_speed`` refuses
one whose steps would be too slow for a browser tab to hear Stop, and
``build_trainer`` the trainer (or data-parallel replica) of a run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import check_conv, check_limit, check_training
from .errors import ConfigError
from .model import Sequential, build_model
from .optim import DEFAULT_LR, OPTIMIZERS, make_optimizer
from .parallel import ShardSchedule
from .replica import Replica
from .train import Trainer

IMAGE_SHAPE = (28, 28)
MAX_SHARDS = 16  # data-parallel workers a run may use (the page offers at most 8)
MAX_WORKERS = 8  # what the page's worker-count control offers
# A step must stay well under a second in the browser (no BLAS, one thread) so
# Stop is heard quickly: multiply-adds per image (forward) times batch size.
MAX_STEP_MACS = 300e6

DEFAULTS: dict[str, Any] = {
    "preset": "lenet", "optimizer": "adam", "lr": DEFAULT_LR["adam"], "momentum": 0.9, "batch_size": 64,
    "epochs": 1, "train_size": None, "seed": 0,
    "n_filter": 32, "filter_size": 7, "stride": 1, "padding": 1, "shards": 1,
}
LABELS = {"lr": "learning rate", "momentum": "momentum", "batch_size": "batch size", "epochs": "epochs",
          "train_size": "training-set size", "seed": "random seed", "n_filter": "number of filters",
          "filter_size": "filter size", "stride": "stride", "padding": "padding",
          "shards": "number of workers"}


def defaults() -> dict:
    """What the training form starts from: {"settings", "lr": per optimizer, "max_workers"}."""
    return {"settings": dict(DEFAULTS), "lr": dict(DEFAULT_LR), "max_workers": MAX_WORKERS}


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


def build(config: dict) -> Sequential:
    """The untrained model that validated settings ``config`` describe."""
    if config["preset"] == "lenet":
        return build_model("lenet", seed=config["seed"])
    k = config["filter_size"]
    try:
        return build_model("seed", n_filter=config["n_filter"], h_filter=k, w_filter=k,
                           stride=config["stride"], padding=config["padding"], seed=config["seed"])
    except ValueError as e:
        raise ConfigError(f"this seed architecture does not fit 28x28 images: {e}") from None


def macs_per_image(model: Sequential) -> int:
    """Forward multiply-adds for one image: conv and dense layers only."""
    total = 0
    for layer, out in zip(model.layers, model.shapes, strict=True):
        weights = [p.value for p in layer.params() if p.value.ndim > 1]
        if weights:  # each output position costs one multiply-add per weight
            total += math.prod(out[:-1]) * weights[0].size
    return total


def check_speed(model: Sequential, batch_size: int) -> int:
    """Refuse a step too slow for the browser; returns the model's multiply-adds per image."""
    macs = macs_per_image(model)
    if macs * batch_size > MAX_STEP_MACS:
        largest = int(MAX_STEP_MACS // macs)
        fix = f"a batch size of at most {largest}" if largest >= 16 else "fewer or smaller filters or a larger stride"
        raise ConfigError(
            f"too slow for the browser: one step of this model ({macs / 1e6:.1f} million multiply-adds per "
            f"image, batch {batch_size}) would take seconds, so Stop could not answer quickly; use {fix}")
    return macs


def eval_batch(macs: int) -> int:
    """Test images per chunk of the end-of-epoch test pass: about one training step's cost,
    so every slice of work stays short."""
    return max(50, min(1000, int(MAX_STEP_MACS / 3 // max(macs, 1))))


def build_trainer(model: Sequential, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None,
                  y_test: np.ndarray | None, config: dict, shard: int | None = None,
                  eval_batch_size: int = 500) -> tuple[Trainer, Replica | None]:
    """The trainer of a run with ``config`` on images ``x`` (N, 28, 28), and its replica when the
    run is data-parallel and this is shard ``shard`` (then ``x`` holds only that shard)."""
    optimizer = make_optimizer(config["optimizer"], model.params(), config["lr"], config["momentum"])
    schedule = ShardSchedule(config["train_size"], config["batch_size"], config["shards"], config["seed"])
    common = {"optimizer": optimizer, "epochs": config["epochs"], "eval_batch_size": eval_batch_size}
    if shard is None:
        return Trainer(model, x, y, x_test, y_test, schedule=schedule, **common), None
    replica = Replica(model, x, y, x_test, y_test, schedule=schedule, shard=shard, **common)
    return replica.trainer, replica
