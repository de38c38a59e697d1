"""Training with the student's code: their classes take the place of pycnn's in the model being trained.

:class:`StudentCode` loads a file (a fresh module, see :mod:`.sandbox`) and
checks it first: training needs every exercise of the parts it will use to
be written, to run, and to pass its float64 numerical gradient check where it
has one. Values that differ from pycnn's are allowed: that is a layer of the
student's own design (a leaky ReLU, say), and the model says it was trained
with edited code. :meth:`StudentCode.apply` then swaps, in place and before
the first step, each layer of a model for an instance of the student's class
of that name holding the *same* :class:`~pycnn.layers.Param` objects, so the
trainer, the optimizer and data-parallel parameter vectors all stay valid; it
also sets the trainer's loss and optimizer to the student's when the file
defines them.
"""

from __future__ import annotations

import hashlib
import time
import types

import numpy as np

from .. import losses, optim
from ..model import Sequential
from ..train import Trainer
from .exercises import EXERCISES
from .runner import check_source, student_object
from .sandbox import UserCodeError, as_user_error, load

OPTIMIZER_CLASSES = {"sgd": "SGD", "momentum": "Momentum"}  # Adam is not an exercise: pycnn's is used


def _blocking(result: dict) -> str | None:
    """Why an exercise's result forbids training with it, or None if it may train."""
    if result["status"] in ("not written", "error"):
        return result["message"]
    bad = [r for r in result["rows"] if not r["passed"] and "numerical gradient" in r["check"]]
    if bad:
        return f"{bad[0]['check']} fails ({bad[0]['detail']})"
    return None


class StudentCode:
    """The student's file, checked, ready to put into models: ``parts`` names what it replaces."""

    def __init__(self, source: str) -> None:
        self.source = str(source)
        self.sha256 = hashlib.sha256(self.source.encode()).hexdigest()
        report = check_source(self.source)
        if report["error"]:
            raise UserCodeError(f"your code does not run: {report['error']['message']}", report["error"]["line"])
        self.module: types.ModuleType = load(self.source)
        self.results = {r["name"]: r for r in report["results"]}
        self.parts = [name for name in ("ReLU", "Dense", "Conv2D", "softmax_cross_entropy", "SGD", "Momentum")
                      if self._defines(name)]
        # Classes the file defines with the name of another pycnn layer (MaxPool2D, Flatten) are used too.
        self.parts += [name for name in ("MaxPool2D", "Flatten") if isinstance(getattr(self.module, name, None), type)
                       and getattr(self.module, name).__module__ == self.module.__name__]
        if not self.parts:
            raise UserCodeError("your code defines none of pycnn's layers, loss or optimizers: nothing to train with")

    def _defines(self, name: str) -> bool:
        return any(student_object(self.module, e) is not None for e in EXERCISES if (e.owner or e.name) == name)

    def check_parts(self, model: Sequential, optimizer: str) -> list[str]:
        """The parts of the file a run of ``model`` with ``optimizer`` uses; raises if one may not train."""
        used = [p for p in self.parts if p in {type(layer).__name__ for layer in model.layers}]
        if "Conv2D" in used:
            used.append("im2col")
        if "softmax_cross_entropy" in self.parts:
            used.append("softmax_cross_entropy")
        if OPTIMIZER_CLASSES.get(optimizer) in self.parts:
            used.append(OPTIMIZER_CLASSES[optimizer])
        for exercise in EXERCISES:
            result = self.results.get(exercise.name)
            if (exercise.owner or exercise.name) in used and result and result["status"] != "missing":
                why = _blocking(result)
                if why:
                    raise UserCodeError(f"{exercise.name} cannot train yet: {why} (write it, or click "
                                        f"“Show pycnn's solution” for it)", result["line"])
        return used

    def apply(self, model: Sequential, trainer: Trainer | None, optimizer: str) -> list[str]:
        """Put the student's classes into ``model`` (and loss, optimizer into ``trainer``); returns the parts used."""
        used = self.check_parts(model, optimizer)
        for i, layer in enumerate(model.layers):
            cls = getattr(self.module, type(layer).__name__, None)
            if type(layer).__name__ in used and isinstance(cls, type):
                mine = cls.__new__(cls)
                mine.__dict__.update(layer.__dict__)  # the same Param objects, settings and input_grad
                model.layers[i] = mine
        if trainer is not None:
            if "softmax_cross_entropy" in used:
                trainer.loss = _guarded_loss(self.module.softmax_cross_entropy)
            name = OPTIMIZER_CLASSES.get(optimizer)
            if name in used:
                trainer.optimizer = _same_optimizer(getattr(self.module, name), trainer.optimizer)
        model.preset = {**(model.preset or {"name": "custom", "hparams": {}}),
                        "code": {"edited": used, "sha256": self.sha256}}
        return used


def _same_optimizer(cls: type, old: optim.Optimizer) -> optim.Optimizer:
    """The student's optimizer class on the same parameters with the same settings (no step taken yet)."""
    mine = cls.__new__(cls)
    mine.__dict__.update(old.__dict__)  # the same Param list, learning rate, velocities
    return mine


def _guarded_loss(fn):
    """The student's loss, its errors reported as theirs (with the line) instead of a crash in the trainer."""
    def loss(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            value, dlogits = fn(logits, labels)
        except Exception as exc:  # noqa: BLE001
            raise as_user_error(exc) from None
        return float(value), np.asarray(dlogits, dtype=logits.dtype)
    return loss


def step_ms(model: Sequential, loss=losses.softmax_cross_entropy, batch: int = 64, repeats: int = 3) -> float:
    """Milliseconds of one forward and backward pass of ``model`` on a random batch (the fastest of ``repeats``)."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, model.num_classes, size=batch)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _, dlogits = loss(model.forward(x, training=True), y)
        model.backward(dlogits)
        best = min(best, time.perf_counter() - start)
    return best * 1000

