"""The training loop shared by the CLI and the browser.

:class:`Trainer` is a resumable loop: ``run`` does a bounded amount of work
(training steps, then the end-of-epoch test evaluation in chunks) and returns
what happened as plain dicts, so the CLI can print them and the browser can
train in short slices between which it stays responsive. It prints nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import Optimizer, make_optimizer

Event = dict


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; the weights are left as they were before that step."""


def _check_dataset(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"{what}: the data set is empty")


class Trainer:
    """Mini-batch training of ``model`` on uint8 images ``(N, H, W)`` and int labels ``(N,)``.

    Each epoch visits the training set once in a fresh random order drawn
    from ``seed``; the last batch of an epoch may be smaller. After each
    epoch the test set (if given) is evaluated in chunks of
    ``eval_batch_size`` images, and the optimizer's learning rate is
    multiplied by ``lr_decay`` (1 keeps it constant).
    """

    def __init__(self, model: Sequential, x_train: np.ndarray, y_train: np.ndarray,
                 x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, *,
                 optimizer: Optimizer, batch_size: int = 64, epochs: int = 1, seed: int = 0,
                 eval_batch_size: int = 500, lr_decay: float = 1.0) -> None:
        _check_dataset(x_train, y_train, "training set")
        if x_test is not None:
            _check_dataset(x_test, y_test, "test set")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch size must be a whole number >= 1, got {batch_size!r}")
        if int(eval_batch_size) != eval_batch_size or eval_batch_size < 1:
            raise ValueError(f"evaluation batch size must be a whole number >= 1, got {eval_batch_size!r}")
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
        if not 0 < lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
        self.model, self.optimizer, self.lr_decay = model, optimizer, float(lr_decay)
        self.x_train, self.y_train = x_train, np.asarray(y_train)
        self.x_test, self.y_test = x_test, None if y_test is None else np.asarray(y_test)
        self.batch_size, self.epochs = int(batch_size), int(epochs)
        self.eval_batch_size = int(eval_batch_size)
        self.rng = np.random.default_rng(seed)
        self.steps_per_epoch = math.ceil(len(x_train) / self.batch_size)
        self.step = 0          # training steps done, over all epochs
        self.epoch = 0         # epochs finished (trained and evaluated)
        self._order: np.ndarray | None = None
        self._eval_pos: int | None = None
        self._start_epoch()

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def _start_epoch(self) -> None:
        self._order = self.rng.permutation(len(self.x_train))
        self._batch = 0
        self._seen = self._correct = 0
        self._loss_sum = 0.0
        self._test_correct = 0
        self._seconds = 0.0

    def run(self, max_steps: int | None = None, max_seconds: float | None = None) -> list[Event]:
        """Train for at most ``max_steps`` steps and/or about ``max_seconds`` seconds.

        Does at least one unit of work (a step or an evaluation chunk) unless
        training is finished. With only ``max_steps``, an epoch that ends
        within the call is also evaluated within it. Returns the events.
        """
        events: list[Event] = []
        start = time.perf_counter()
        steps = 0
        while not self.done:
            tick = time.perf_counter()
            if self._eval_pos is not None:
                event = self._eval_chunk()
            elif max_steps is not None and steps >= max_steps:
                break
            else:
                event = self._train_step()
                steps += 1
            self._seconds += time.perf_counter() - tick
            if event is not None:
                events.append(event)
            if event is not None and event["kind"] == "epoch" and not self.done:
                self._start_epoch()
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
        return events

    def _train_step(self) -> Event | None:
        """One forward/backward/update on the next batch; returns a step event."""
        lo = self._batch * self.batch_size
        idx = self._order[lo : lo + self.batch_size]
        x = self.model.as_images(self.x_train[idx])
        y = self.y_train[idx]
        logits = self.model.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y)
        if not math.isfinite(loss):
            raise DivergedError(
                f"the loss became {loss} at step {self.step + 1} (epoch {self.epoch + 1}): "
                f"training diverged; lower the learning rate (it is {self.optimizer.lr:g})")
        self.model.backward(dlogits)
        self.optimizer.step()
        correct = int((logits.argmax(axis=1) == y).sum())
        self.step += 1
        self._batch += 1
        self._seen += len(idx)
        self._correct += correct
        self._loss_sum += loss * len(idx)
        event = {"kind": "step", "step": self.step, "epoch": self.epoch + 1, "batch": self._batch,
                 "steps_per_epoch": self.steps_per_epoch, "loss": loss,
                 "accuracy": correct / len(idx), "running_accuracy": self._correct / self._seen,
                 "examples": self._seen, "examples_total": len(self.x_train)}
        if self._batch == self.steps_per_epoch:
            self._eval_pos = 0  # the next unit of work evaluates the test set
        return event

    def _eval_chunk(self) -> Event | None:
        """Evaluate the next test chunk; returns the epoch event after the last one."""
        if self.x_test is not None:
            lo = self._eval_pos
            hi = lo + self.eval_batch_size
            pred = self.model.predict(self.x_test[lo:hi], batch_size=self.eval_batch_size)
            self._test_correct += int((pred == self.y_test[lo:hi]).sum())
            self._eval_pos = hi
            if hi < len(self.x_test):
                return None
        self._eval_pos = None
        return self._finish_epoch()

    def _finish_epoch(self) -> Event:
        self.epoch += 1
        self.optimizer.lr *= self.lr_decay
        test_accuracy = None if self.x_test is None else self._test_correct / len(self.x_test)
        event = {"kind": "epoch", "epoch": self.epoch, "loss": self._loss_sum / self._seen,
                 "train_accuracy": self._correct / self._seen, "test_accuracy": test_accuracy,
                 "seconds": self._seconds}
        return event


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` on images ``x`` and labels ``y``, and its predictions (N,)."""
    _check_dataset(x, y, "evaluation set")
    pred = model.predict(x, batch_size=batch_size)
    return float((pred == np.asarray(y)).mean()), pred


def fit(model: Sequential, x_train: np.ndarray, y_train: np.ndarray,
        x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, epochs: int = 1,
        batch_size: int = 64, optimizer: str | Optimizer = "sgd", lr: float = 0.01, seed: int = 0,
        callback: Callable[[Event], None] | None = None, momentum: float = 0.9,
        weight_decay: float = 0.0, lr_decay: float = 1.0) -> list[Event]:
    """Train ``model`` for ``epochs`` epochs; returns the per-epoch events.

    ``optimizer`` is an :class:`Optimizer` or a name (``"sgd"``, ``"momentum"``,
    ``"adam"``) built with ``lr``, ``momentum`` and ``weight_decay``.
    ``callback`` receives every event: one per step, one per epoch. The
    learning rate is multiplied by ``lr_decay`` after every epoch.
    """
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, model.params(), lr, momentum, weight_decay)
    trainer = Trainer(model, x_train, y_train, x_test, y_test, optimizer=optimizer,
                      batch_size=batch_size, epochs=epochs, seed=seed, lr_decay=lr_decay)
    history = []
    while not trainer.done:
        for event in trainer.run(max_steps=trainer.steps_per_epoch):
            if callback is not None:
                callback(event)
            if event["kind"] == "epoch":
                history.append(event)
    return history
