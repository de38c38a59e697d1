"""The loss and accuracy chart of every training run so far, on one step axis."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def downsample(y: Sequence[float], max_points: int = 2000) -> np.ndarray:
    """Indices (sorted, at most ``max_points`` >= 4) of points of ``y`` (N,) worth drawing.

    Keeps the first and last points and, in each of (max_points - 2) // 2
    equal runs of the points between, the lowest and the highest, so spikes
    and the envelope of a noisy curve survive.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    m, buckets = n - 2, (max_points - 2) // 2
    bucket = np.arange(m, dtype=np.int64) * buckets // m  # non-decreasing: every bucket is one block
    order = np.lexsort((y[1:-1], bucket))  # by bucket, then value
    starts = np.searchsorted(bucket, np.arange(buckets))
    ends = np.append(starts[1:], m) - 1
    return np.unique(np.concatenate(([0, n - 1], order[starts] + 1, order[ends] + 1)))


class ChartHistory:
    """Loss per step and accuracy per epoch over several training runs, on one step axis.

    Feed it the Trainer's events with :meth:`extend`. Steps count on across
    runs: a run that starts at global step ``s`` draws its step ``i`` at
    ``s + i``. Call :meth:`start_run` before each new Trainer's events (a
    step number that does not increase also starts a new run). The smoothed
    loss is an exponential moving average with weight ``smoothing`` on the
    past, debiased so its first value is the first loss, restarted each run.
    """

    def __init__(self, smoothing: float = 0.98, max_points: int = 2000) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
        self.smoothing, self.max_points = smoothing, max_points
        self.steps: list[int] = []           # global step of each loss
        self.loss: list[float] = []
        self.smoothed: list[float] = []
        self.epochs: list[dict] = []         # {"step", "run", "epoch", "train_accuracy", "test_accuracy"}
        self.runs: list[dict] = []           # {"start", "end"}: global steps before its first / at its last step

    @property
    def step(self) -> int:
        """The global step of the latest loss (0 before any)."""
        return self.runs[-1]["end"] if self.runs else 0

    def start_run(self) -> None:
        """Begin a new run at the current global step."""
        self.runs.append({"start": self.step, "end": self.step})
        self._ema, self._ema_steps, self._last = 0.0, 0, 0

    def extend(self, events: Iterable[dict]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: dict) -> None:
        """Record one Trainer event; events of other kinds are ignored."""
        if event.get("kind") == "step":
            self._add_step(int(event["step"]), float(event["loss"]))
        elif event.get("kind") == "epoch":
            if not self.runs:
                self.start_run()
            self.epochs.append({"step": self.step, "run": len(self.runs), "epoch": int(event["epoch"]),
                                "train_accuracy": event["train_accuracy"],
                                "test_accuracy": event.get("test_accuracy")})

    def _add_step(self, step: int, loss: float) -> None:
        if not self.runs or step <= self._last:
            self.start_run()
        self._last = step
        run = self.runs[-1]
        run["end"] = run["start"] + step
        b = self.smoothing
        self._ema = b * self._ema + (1 - b) * loss
        self._ema_steps += 1
        self.steps.append(run["end"])
        self.loss.append(loss)
        self.smoothed.append(self._ema / (1 - b**self._ema_steps))

    def series(self) -> dict:
        """What to draw; every series is ``{"x": [global steps], "y": [values]}``.

        ``loss`` and ``loss_smoothed`` are per step, each downsampled to at
        most ``max_points``; ``train_accuracy`` and ``test_accuracy`` are per
        epoch, at the step that ended it (epochs without a test set are left
        out). ``runs`` lists ``{"start", "end"}`` of each run; ``steps`` is the
        last global step.
        """
        steps = np.asarray(self.steps, dtype=np.int64)
        out = {"steps": self.step, "runs": [dict(r) for r in self.runs]}
        for key, values in (("loss", self.loss), ("loss_smoothed", self.smoothed)):
            keep = downsample(values, self.max_points)
            out[key] = {"x": steps[keep].tolist(), "y": np.asarray(values)[keep].tolist()}
        for key in ("train_accuracy", "test_accuracy"):
            points = [e for e in self.epochs if e[key] is not None]
            out[key] = {"x": [e["step"] for e in points], "y": [float(e[key]) for e in points]}
        return out
