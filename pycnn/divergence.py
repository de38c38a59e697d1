"""When training has diverged, and which weights it keeps then.

A step's loss has diverged when it is not finite or has exploded (see
:meth:`DivergenceGuard.limit`). The guard keeps a copy of the weights before
each update, so a diverged run ends with the last finite weights and a
one-line :class:`~pycnn.errors.DivergedError` saying what to change.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DivergedError
from .layers import Param

EXPLODED = 100  # a loss this many times its start (or ln K) has exploded: see DivergenceGuard.limit


class DivergenceGuard:
    """Checks every step's loss before the update of ``params`` (a model over ``num_classes`` classes)."""

    def __init__(self, params: list[Param], num_classes: int) -> None:
        self._params = params
        self._num_classes = num_classes
        # The weights before the last update: put back if that update made them non-finite.
        self._previous = [np.array(p.value) for p in params]
        self.first_loss: float | None = None  # the first step's loss, the yardstick of an exploding loss

    @property
    def previous(self) -> list[np.ndarray]:
        """The weights before the last update, one array per parameter (read them, do not change them)."""
        return self._previous

    def before_update(self, loss: float, step: int, epoch: int, lr: float) -> None:
        """Raise DivergedError if ``loss`` (of 1-based ``step`` in ``epoch``) diverged; else keep the weights.

        Call it with the step's loss after the backward pass and before the optimizer changes the weights.
        """
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss) or loss > self.limit():
            self._diverged(loss, step, epoch, lr)
        for p, previous in zip(self._params, self._previous, strict=True):
            np.copyto(previous, p.value)

    def limit(self) -> float:
        """A loss above this has exploded: 100 times the larger of the first step's loss and ln K,
        the loss of a uniform guess over K classes (230 for 10 classes)."""
        return EXPLODED * max(self.first_loss, math.log(self._num_classes))

    def _diverged(self, loss: float, step: int, epoch: int, lr: float) -> None:
        """Raise DivergedError, first putting back the last finite weights.

        The weights that gave the loss are kept if they are finite (the loss
        overflowed or exploded); otherwise the last update broke them and the
        weights from before it, kept by :meth:`before_update`, come back.
        """
        if not all(np.isfinite(p.value).all() for p in self._params):
            for p, previous in zip(self._params, self._previous, strict=True):
                np.copyto(p.value, previous)
        became = f"became {loss}" if not math.isfinite(loss) else f"reached {loss:.3g}"
        limit = "" if not math.isfinite(loss) else (
            f", far above its start ({self.first_loss:.3g}; the limit is {self.limit():.3g})")
        raise DivergedError(
            f"training diverged: the loss {became} at step {step} (epoch {epoch}){limit}; "
            f"lower the learning rate (it is {lr:g}), for example to {lr / 10:g}. "
            "The model keeps its last finite weights.", step=step, lr=lr)
