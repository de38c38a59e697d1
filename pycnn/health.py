"""Live layer health: per layer, how spread its outputs are, how large its gradients, how far each step moves it.

:class:`LayerHealth` is a :class:`~pycnn.train.Trainer` observer
(``trainer.observer = LayerHealth(every=5)``). Every ``every``-th step the
trainer hands it the step's layer outputs (kept anyway by the forward pass)
and the weights from before the update, and it records:

- per layer: the standard deviation of its output over the batch ("spread"),
  and for a ReLU the share of outputs that are exactly 0 (a dead layer is 1);
- per weight array: ``|dL/dW|`` (the gradient's root-mean-square) and the
  ratio ``|ΔW| / |W|`` of the update to the weights (norms). About 1e-3 is
  healthy; 1e-1 and above means the learning rate is too high;
- the running training accuracy of the epoch so far, and the learning rate.

Learning-rate changes made during the run (:meth:`set_lr`) are kept as marks.
Steps it does not watch cost one ``wants`` call.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .layers import ReLU

EVERY = 5  # watch one step in this many: every step would make a long run's series needlessly long
MAX_POINTS = 600  # points per series sent to the page; older ones are thinned out


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


class LayerHealth:
    """Collects layer-health measurements of a run, every ``every``-th step; :meth:`series` is the page's view."""

    def __init__(self, every: int = EVERY) -> None:
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ConfigError(f"health is measured every N steps, N a whole number >= 1, got {every!r}")
        self.every = int(every)
        self.steps: list[int] = []
        self.accuracy: list[float] = []
        self.lr: list[float] = []
        self.spread: dict[str, list[float]] = {}
        self.zeros: dict[str, list[float]] = {}
        self.grad: dict[str, list[float]] = {}
        self.ratio: dict[str, list[float]] = {}
        self.marks: list[dict] = []  # learning-rate changes: {"step": the first step with it, "lr"}

    def wants(self, step: int) -> bool:
        """Whether training step number ``step`` (1-based) is measured: the first, then every ``every``-th."""
        return step == 1 or step % self.every == 0

    def observe(self, trainer, outputs: list[np.ndarray], before: list[np.ndarray], event: dict) -> None:
        """Record a step: ``outputs`` its layer outputs, ``before`` the weights before its update
        (in ``model.params()`` order), ``event`` its step event."""
        model = trainer.model
        self.steps.append(int(event["step"]))
        self.accuracy.append(float(event["running_accuracy"]))
        self.lr.append(float(trainer.optimizer.lr))
        for name, layer, out in zip(model.names, model.layers, outputs, strict=True):
            if layer.params() or isinstance(layer, ReLU):
                self.spread.setdefault(name, []).append(float(out.std()))
            if isinstance(layer, ReLU):
                self.zeros.setdefault(name, []).append(float(np.mean(out == 0)))
        for p, old in zip(model.params(), before, strict=True):
            if p.value.ndim < 2:
                continue  # biases: the weights say it
            self.grad.setdefault(p.name, []).append(_rms(p.grad))
            change = np.linalg.norm(p.value - old)
            self.ratio.setdefault(p.name, []).append(float(change / max(np.linalg.norm(old), 1e-12)))

    def set_lr(self, trainer, lr: float) -> None:
        """Use learning rate ``lr`` from the next step on, and mark the change."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 1e-6 <= lr <= 10:
            raise ConfigError(f"learning rate must be a number between 1e-06 and 10, got {lr!r}")
        trainer.optimizer.lr = float(lr)
        self.marks.append({"step": trainer.step + 1, "lr": float(lr)})

    def series(self) -> dict:
        """{"steps", "accuracy", "lr", "spread": {layer: [...]}, "zeros", "grad": {weight: [...]}, "ratio",
        "marks", "every"}: at most MAX_POINTS points per series, evenly thinned."""
        n = len(self.steps)
        keep = np.unique(np.linspace(0, n - 1, MAX_POINTS).astype(int)) if n > MAX_POINTS else np.arange(n)

        def pick(values: list[float]) -> list:
            return [values[i] for i in keep]

        def table(series: dict[str, list[float]]) -> dict[str, list[float]]:
            return {name: pick(values) for name, values in series.items()}

        return {"steps": pick(self.steps), "accuracy": pick(self.accuracy), "lr": pick(self.lr),
                "spread": table(self.spread), "zeros": table(self.zeros), "grad": table(self.grad),
                "ratio": table(self.ratio), "marks": list(self.marks), "every": self.every}
