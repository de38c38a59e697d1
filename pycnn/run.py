"""One training run as the page shows it: its phase, progress, speed and time left.

A :class:`Run` wraps the :class:`~pycnn.train.Trainer` of one run (and its
:class:`~pycnn.replica.Replica` in a data-parallel run) with the clocks the page's
figures need, and turns them into a *run status* (see :meth:`Run.status`):

- images/s counts training steps only, so the test pass after each epoch does
  not drag the speed down;
- the progress fraction and the time left include the test passes, each test
  image weighted by what it costs (measured after the first test chunk, until
  then a third of a training image: a forward pass without the backward);
- a data-parallel run's clocks are wall-clock, waiting for the other workers
  included, and it reports the speed-up over one worker.
"""

from __future__ import annotations

import time

import numpy as np

from .model import Sequential
from .replica import Replica
from .train import Trainer

TEST_COST = 1 / 3  # a test image's cost in training images before one is measured: forward only
RUN_PHASES = ("training", "testing", "done", "stopped", "diverged")  # a run status's "phase"


def format_seconds(s: float) -> str:
    """12 s, or 2 min 05 s."""
    s = max(0, round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def plain(event: dict) -> dict:
    """An event with numpy scalars turned into Python floats and ints."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in event.items()}


class Run:
    """A training run: ``trainer`` training ``model`` on ``train_size`` images with ``config``
    (through ``replica`` when it is one worker of a data-parallel run).

    ``test_size`` is the test images evaluated after each epoch (0 for a
    replica, which has no test set); ``workers`` how many data-parallel
    workers share each step (1: alone).
    """

    def __init__(self, trainer: Trainer, model: Sequential, config: dict, train_size: int, test_size: int,
                 workers: int = 1, replica: Replica | None = None) -> None:
        self.trainer, self.replica, self.model, self.config = trainer, replica, model, config
        self.train_size, self.test_size, self.workers = train_size, test_size, workers
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.outcome: str | None = None   # "done" | "stopped" | "diverged" once over
        self.message: str | None = None
        self.snapshot: bytes | None = None  # the weights after the last finished epoch (checkpoint)
        self.last_epoch: dict | None = None
        # Steps driven one at a time (compute_gradients, apply_gradients) are timed
        # by the wall clock, from computing a part to applying the sum.
        self.stepped = False
        self.steps = 0
        self.wall = self.busy = self.wait = 0.0
        self._computed: tuple[float, float] | None = None  # (start, end) of the last compute_gradients
        self._shown = 0.0  # the progress fraction last reported
        self._anchor = (0.0, 0.0)  # (estimate, fraction shown) where the bar was last re-anchored

    @property
    def is_extra(self) -> bool:
        """An extra worker's run: a replica of a shard after the first (its model is not the page's)."""
        return self.replica is not None and self.replica.shard > 0

    # -- what happened ----------------------------------------------------------

    def record(self, events: list[dict]) -> list[dict]:
        """Note the trainer's ``events`` (plain dicts); keeps a snapshot after each epoch."""
        events = [plain(e) for e in events]
        for e in events:
            if e["kind"] == "epoch":
                self.last_epoch = e
                if self.test_size:  # a replica's weights are the first worker's: no checkpoint
                    self.snapshot = self.model.to_bytes()
        return events

    def computed(self, start: float, end: float) -> None:
        """This worker computed its part of a step from ``start`` to ``end`` (perf_counter)."""
        self.stepped = True
        self._computed = (start, end)

    def applied(self, start: float, end: float, part_seconds: list[float | None]) -> None:
        """The step's summed gradients were applied from ``start`` to ``end``.

        ``part_seconds`` is each worker's compute time (None: this worker's own).
        """
        if self._computed is None:
            return
        c0, c1 = self._computed
        self._computed = None
        self.steps += 1
        self.wall += end - c0
        self.wait += start - c1
        self.busy += sum(c1 - c0 if s is None else float(s) for s in part_seconds) + (end - start)

    def stop_point(self) -> tuple[int, int, bool]:
        """Where a Stop now leaves the run: (images, epoch) for "stopped after N images of
        epoch E", and whether that is the end of a finished epoch (its test accuracy known)."""
        t = self.trainer
        if t.examples == 0 and t.epoch > 0:  # right after an epoch's test pass
            return self.train_size, t.epoch, True
        return self.epoch_examples(), t.epoch + 1, False

    def end(self, outcome: str, message: str) -> None:
        """The run is over: ``outcome`` "done", "stopped" or "diverged", and the line that says so."""
        self.outcome, self.message = outcome, message
        self.ended = time.perf_counter()

    # -- the arithmetic ---------------------------------------------------------

    @property
    def phase(self) -> str:
        if self.outcome is not None:
            return self.outcome
        return "testing" if self.trainer.evaluating and self.test_size else "training"

    def epoch_examples(self) -> int:
        return min(int(self.trainer.examples), self.train_size)

    def trained(self) -> int:
        """Training images done over the whole run (an epoch counts each image once)."""
        t = self.trainer
        return self.train_size * t.epoch + (0 if t.done else self.epoch_examples())

    def tested(self) -> int:
        t = self.trainer
        return self.test_size * t.epoch + (0 if t.done else int(t.evaluated))

    def train_seconds(self) -> float:
        return self.wall if self.stepped else float(self.trainer.train_seconds)

    def images_per_second(self) -> float | None:
        seconds, trained = self.train_seconds(), self.trained()
        return trained / seconds if seconds > 0 and trained > 0 else None

    def _work(self) -> tuple[int, int, float | None, float, float]:
        """(images trained, images tested, images/s, then the seconds of one training and of one
        test image; before any measurement, their relative costs 1 and TEST_COST)."""
        trained, tested, seconds = self.trained(), self.tested(), self.train_seconds()
        rate = trained / seconds if seconds > 0 and trained > 0 else None
        train = 1 / rate if rate else 1.0
        test_seconds = self.trainer.test_seconds
        test = test_seconds / tested if tested and test_seconds > 0 else train * TEST_COST
        return trained, tested, rate, train, test

    def fraction(self) -> float:
        """Work done over all work, each image weighted by its cost; never goes back (a new
        measurement of the costs may lower the estimate, but a progress bar only moves forward)."""
        return self._fraction(*self._work())

    def _fraction(self, trained: int, tested: int, rate: float | None, train: float, test: float) -> float:
        total = self.trainer.epochs * (self.train_size * train + self.test_size * test)
        estimate = min(1.0, (trained * train + tested * test) / total)
        # Shown: the estimate mapped from its value at the anchor to the bar's there, so that it
        # reaches 1 with it. When a new measurement lowers the estimate, the bar holds still and
        # is anchored again, so it neither goes back nor stalls for the rest of the run.
        e0, s0 = self._anchor
        shown = 1.0 if e0 >= 1 else s0 + (estimate - e0) * (1 - s0) / (1 - e0)
        if shown < self._shown:
            self._anchor, shown = (estimate, self._shown), self._shown
        self._shown = shown
        return shown

    def _eta(self, trained: int, tested: int, rate: float | None, train: float, test: float) -> float | None:
        if self.outcome is not None:
            return 0.0 if self.outcome == "done" else None
        if rate is None:
            return None
        epochs = self.trainer.epochs
        return (epochs * self.train_size - trained) * train + (epochs * self.test_size - tested) * test

    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    def speedup(self, rate: float | None, one_worker_rate: float | None) -> tuple[float | None, bool]:
        """(speed-up over one worker, measured?): this run's images/s ``rate`` against
        ``one_worker_rate`` (one worker on this model, if known), else estimated from the
        workers' busy time."""
        if self.workers <= 1 or not self.steps:
            return None, False
        if one_worker_rate and rate:
            return rate / one_worker_rate, True
        return self.busy / self.wall if self.wall > 0 else None, False

    # -- the words --------------------------------------------------------------

    def epoch_shown(self) -> int:
        t = self.trainer
        return min(t.epoch + 1, t.epochs)

    def label(self) -> str:
        head = f"Epoch {self.epoch_shown()} of {self.trainer.epochs}"
        if self.phase == "testing":
            return f"{head} · measuring test accuracy… {self.trainer.evaluated:,} / {self.test_size:,}"
        examples = self.train_size if self.trainer.done else self.epoch_examples()
        return f"{head} · {examples:,} / {self.train_size:,} images"

    def speed(self, rate: float | None, eta: float | None) -> str:
        if self.outcome in ("stopped", "diverged") or rate is None:
            return ""
        if self.outcome == "done":
            return f"{rate:,.0f} images/s · took {format_seconds(self.seconds())}"
        return f"{rate:,.0f} images/s · {format_seconds(eta)} left" if eta is not None else f"{rate:,.0f} images/s"

    def status(self, one_worker_rate: float | None = None) -> dict:
        """The run status the page shows (all plain data; see docs/ARCHITECTURE.md)."""
        work = self._work()
        trained, rate = work[0], work[2]
        cleared = self.outcome in ("stopped", "diverged")  # figures of a run that no longer exists
        eta = None if cleared else self._eta(*work)
        speedup, measured = (None, False) if cleared else self.speedup(rate, one_worker_rate)
        rate = None if cleared else rate
        parallel = self.workers > 1 and self.steps and not cleared
        t = self.trainer
        return {"phase": self.phase, "epoch": self.epoch_shown(), "epochs": t.epochs,
                "epoch_examples": self.train_size if t.done else self.epoch_examples(),
                "train_size": self.train_size, "examples": trained,
                "examples_total": self.train_size * t.epochs,
                "fraction": 1.0 if self.outcome == "done" else self._fraction(*work),
                "images_per_s": rate, "eta_seconds": eta, "seconds": self.seconds(),
                "workers": self.workers, "speedup": speedup, "speedup_measured": measured,
                "wait_ms": 1000 * self.wait / self.steps if parallel else None,
                "step_ms": 1000 * self.wall / self.steps if parallel else None,
                "label": self.label(), "speed": self.speed(rate, eta), "message": self.message}
