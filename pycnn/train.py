"""The training loop shared by the CLI and the browser.

:class:`Trainer` is a resumable loop: ``run`` does a bounded amount of work
(training steps, then the end-of-epoch test evaluation in chunks) and returns
what happened as plain dicts, so the CLI can print them and the browser can
train in short slices between which it stays responsive. It prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from .config import check_lr_decay, whole_number
from .divergence import DivergenceGuard
from .errors import ConfigError, DataFormatError
from .inputs import check_images, check_labels
from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import Optimizer, make_optimizer
from .parallel import Schedule, ShardSchedule

Event = dict


def _check_dataset(model: Sequential, x: object, y: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W[, C]) and labels (N,) the model can take (pycnn.inputs), as arrays."""
    x, y = check_images(x, model.input_shape, f"{what} images"), check_labels(y, model.num_classes, f"{what} labels")
    if len(x) != len(y):
        raise DataFormatError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise DataFormatError(f"{what}: the data set is empty")
    return x, y


class Trainer:
    """Mini-batch training of ``model`` on uint8 images ``(N, H, W)`` and int labels ``(N,)``.

    Each epoch visits the training set once in a fresh random order drawn
    from ``seed``; the last batch of an epoch may be smaller. After each
    epoch the test set (if given) is evaluated in chunks of
    ``eval_batch_size`` images, and the optimizer's learning rate is
    multiplied by ``lr_decay`` (1 keeps it constant).

    The batches follow ``schedule`` (default: the classic one, a fresh
    permutation of the training set per epoch in batches of ``batch_size``);
    a :class:`~pycnn.parallel.ShardSchedule` over several shards makes the
    batches of a data-parallel run, which :class:`~pycnn.replica.Replica`
    computes part by part on several workers. With a ``schedule``,
    ``batch_size`` and ``seed`` are the schedule's.
    """

    def __init__(self, model: Sequential, x_train: np.ndarray, y_train: np.ndarray,
                 x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, *,
                 optimizer: Optimizer, batch_size: int = 64, epochs: int = 1, seed: int = 0,
                 eval_batch_size: int = 500, lr_decay: float = 1.0, schedule: Schedule | None = None) -> None:
        x_train, y_train = _check_dataset(model, x_train, y_train, "training set")
        if (x_test is None) != (y_test is None):
            raise ConfigError("give both x_test and y_test (test images and their labels), or neither")
        if x_test is not None:
            x_test, y_test = _check_dataset(model, x_test, y_test, "test set")
        batch_size, epochs = whole_number("batch size", batch_size), whole_number("epochs", epochs)
        eval_batch_size = whole_number("evaluation batch size", eval_batch_size)
        seed = whole_number("seed", seed, low=0)
        self.model, self.optimizer, self.lr_decay = model, optimizer, check_lr_decay(lr_decay)
        # (logits, labels) -> (loss, dlogits); the homework's "train with your code" puts the student's here
        self.loss = softmax_cross_entropy
        self.x_test, self.y_test = x_test, y_test
        self.epochs, self.eval_batch_size = epochs, eval_batch_size
        if schedule is None:
            schedule = ShardSchedule(len(x_train), batch_size, 1, seed)
        self.batch_size = schedule.batch_size
        self.use_training_set(x_train, y_train, schedule)  # checks the images and labels
        self.steps_per_epoch = self.schedule.steps_per_epoch
        self.step = 0          # training steps done, over all epochs
        self.epoch = 0         # epochs finished (trained and evaluated)
        # Time spent in training steps and in test passes over the whole run, apart:
        # a speed in images/s is only meaningful over the steps.
        self.train_seconds = self.test_seconds = 0.0
        self._guard = DivergenceGuard(model.params(), model.num_classes)
        self._eval_pos: int | None = None
        # Something that watches the steps (pycnn.health.LayerHealth): asked before each step whether it
        # wants it, then handed the step's layer outputs; None costs nothing.
        self.observer = None
        self._outputs: list | None = None
        self._start_epoch()

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    @property
    def evaluating(self) -> bool:
        """The epoch's training steps are done and its test evaluation is not."""
        return self._eval_pos is not None

    @property
    def examples(self) -> int:
        """Training images of the current epoch trained on so far (all of them while its test pass runs)."""
        return self._seen

    @property
    def evaluated(self) -> int:
        """Test images evaluated so far in the current test pass (0 outside one)."""
        if self._eval_pos is None or self.x_test is None:
            return 0
        return min(self._eval_pos, len(self.x_test))

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def _start_epoch(self) -> None:
        self.schedule.start_epoch()
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
            if self.evaluating:
                with self._clock("test_seconds"):
                    event = self._eval_chunk()
            elif max_steps is not None and steps >= max_steps:
                break
            else:
                event = self._train_step()  # timed by compute_gradients and apply_gradients
                steps += 1
            if event is not None:
                events.append(event)
            if event is not None and event["kind"] == "epoch" and not self.done:
                self._start_epoch()
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
        return events

    def use_training_set(self, x_train: np.ndarray, y_train: np.ndarray, schedule: Schedule) -> None:
        """Train on ``x_train`` with ``schedule``'s batches from now on (same position in the epoch).

        A data-parallel replica that goes on alone swaps its shard for the whole set this way.
        """
        x_train, y_train = _check_dataset(self.model, x_train, y_train, "training set")
        if len(x_train) != schedule.n:
            raise ValueError(f"the batch schedule is for {schedule.n} training images, got {len(x_train)}")
        self.x_train, self.y_train, self.schedule = x_train, y_train, schedule
        self.train_size = schedule.n

    @property
    def batch(self) -> int:
        """The next training batch's number within the epoch (0-based)."""
        return self._batch

    def _train_step(self) -> Event | None:
        """One forward/backward/update on the next batch; returns a step event."""
        return self.apply_gradients(self.compute_gradients())

    def compute_gradients(self) -> dict:
        """Forward and backward on the next batch; no update.

        Afterwards every ``Param.grad`` holds the batch's mean gradient.
        Returns {"count": images, "loss": mean loss, "correct": right
        predictions}, what :meth:`apply_gradients` takes. Calling it again
        before :meth:`apply_gradients` recomputes the same step.
        """
        idx = self.schedule.batch(self._batch)
        return self.part_gradients(self.x_train[idx], self.y_train[idx])

    def part_gradients(self, x: np.ndarray, y: np.ndarray, share: float = 1.0) -> dict:
        """Forward and backward on images ``x`` (n, H, W) with labels ``y`` (n,), a ``share`` of the batch.

        Every ``Param.grad`` then holds their mean gradient times ``share``,
        and the returned "loss" is their mean loss times ``share``: the parts
        of a global batch, each weighted by its size over the batch's, add up
        to the whole batch's (see :class:`~pycnn.replica.Replica`).
        """
        with self._clock("train_seconds"):
            if self.evaluating or self.done:
                raise RuntimeError("no training step is due: the epoch's test evaluation or the run is unfinished")
            images = self.model.as_images(x)
            if self.observer is not None and self.observer.wants(self.step + 1):
                self._outputs = []
                logits = self.model.forward(images, training=True, outputs=self._outputs)
            else:
                self._outputs = None
                logits = self.model.forward(images, training=True)
            loss, dlogits = self.loss(logits, y)
            if share != 1.0:
                # Gradients are linear in dlogits: scaling its (N, K) numbers scales
                # every Param.grad, without a pass over all the parameters
                # (docs/PERFORMANCE.md, "A part's share scales dlogits").
                dlogits *= np.float32(share)
            self.model.backward(dlogits)
            return {"count": len(y), "loss": loss * share, "correct": int((logits.argmax(axis=1) == y).sum())}

    def apply_gradients(self, batch: dict) -> Event:
        """The optimizer step with the gradients in ``Param.grad``; returns the step event.

        ``batch`` is :meth:`compute_gradients`'s dict (or :meth:`part_gradients`'
        summed over all parts of the global batch). Raises :class:`DivergedError`,
        keeping the last finite weights, if its loss is not finite or has exploded
        (see :class:`~pycnn.divergence.DivergenceGuard`).
        """
        with self._clock("train_seconds"):
            loss, count, correct = float(batch["loss"]), int(batch["count"]), int(batch["correct"])
            self._guard.before_update(loss, self.step + 1, self.epoch + 1, self.optimizer.lr)
            self.optimizer.step()
            self.step += 1
            self._batch += 1
            self._seen += count
            self._correct += correct
            self._loss_sum += loss * count
            event = {"kind": "step", "step": self.step, "epoch": self.epoch + 1, "batch": self._batch,
                     "steps_per_epoch": self.steps_per_epoch, "loss": loss,
                     "accuracy": correct / count, "running_accuracy": self._correct / self._seen,
                     "examples": self._seen, "examples_total": self.train_size}
            if self._outputs is not None:
                self.observer.observe(self, self._outputs, self._guard.previous, event)
                self._outputs = None
            if self._batch == self.steps_per_epoch:
                self._eval_pos = 0  # the next unit of work evaluates the test set
            return event

    @contextmanager
    def _clock(self, total: str) -> Iterator[None]:
        """Count the time inside the block as the epoch's (its event's "seconds") and in ``self.<total>``."""
        tick = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - tick
            self._seconds += spent
            setattr(self, total, getattr(self, total) + spent)

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
        """The epoch event; its "seconds" is the time this trainer spent on the epoch's
        steps and test evaluation (waiting between calls excluded)."""
        self.epoch += 1
        self.optimizer.lr *= self.lr_decay
        test_accuracy = None if self.x_test is None else self._test_correct / len(self.x_test)
        event = {"kind": "epoch", "epoch": self.epoch, "loss": self._loss_sum / self._seen,
                 "train_accuracy": self._correct / self._seen, "test_accuracy": test_accuracy,
                 "seconds": self._seconds}
        return event


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` on images ``x`` and labels ``y``, and its predictions (N,)."""
    x, y = _check_dataset(model, x, y, "evaluation set")
    pred = model.predict(x, batch_size=batch_size)
    return float((pred == y).mean()), pred


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
    elif not isinstance(optimizer, Optimizer):
        raise ConfigError(f"optimizer must be 'sgd', 'momentum', 'adam' or an Optimizer, "
                          f"got {type(optimizer).__name__}")
    trainer = Trainer(model, x_train, y_train, x_test, y_test, optimizer=optimizer,
                      batch_size=batch_size, epochs=epochs, seed=seed, lr_decay=lr_decay)
    return train_to_end(trainer, callback)


def train_to_end(trainer: Trainer, callback: Callable[[Event], None] | None = None) -> list[Event]:
    """Run ``trainer`` until it is done, handing ``callback`` every event; returns the epoch events.

    The loop of :func:`fit` and of ``pycnn train``. It takes a step at a time,
    so an interrupt (Ctrl-C) finds ``trainer`` between two steps.
    """
    history = []
    while not trainer.done:
        for event in trainer.run(max_steps=1):
            if callback is not None:
                callback(event)
            if event["kind"] == "epoch":
                history.append(event)
    return history
