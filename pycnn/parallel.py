"""The batch schedule of data-parallel training: which images each shard trains on at each step.

The ``n`` training images are split into ``shards`` contiguous shards, one per
worker, sized in proportion to each shard's share of the batch. Every epoch
one generator (seeded once) draws a permutation of each shard in turn, and
global batch ``j`` is the concatenation of every shard's ``j``-th local batch.
So the global batches depend on the seed and the number of shards, never on
how many processes compute them: a single process holding all the data can
reproduce an N-worker run step for step, and with one shard the schedule is
the classic one (one permutation of the whole set per epoch, batches of
``batch_size`` in order, the last one maybe smaller).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from .config import whole_number


class Schedule(Protocol):
    """What :class:`~pycnn.train.Trainer` needs of a batch schedule over ``n`` images."""

    n: int
    batch_size: int
    steps_per_epoch: int

    def start_epoch(self) -> None: ...

    def batch(self, j: int) -> np.ndarray: ...


class ShardSchedule:
    """Global batches of ``batch_size`` images over ``n`` images held in ``shards`` shards.

    Shard ``k`` holds the images ``bounds[k]:bounds[k + 1]`` and contributes
    ``local_sizes[k]`` of them to each global batch (the batch split as
    evenly as possible). A shard that runs out before the others contributes
    nothing to the epoch's last steps.
    """

    def __init__(self, n: int, batch_size: int, shards: int = 1, seed: int = 0) -> None:
        n, batch_size = whole_number("training-set size", n), whole_number("batch size", batch_size)
        shards = whole_number("shards", shards)
        if shards > batch_size:
            raise ValueError(f"a batch of {batch_size} cannot be split over {shards} shards")
        if shards > n:
            raise ValueError(f"{n} training images cannot be split over {shards} shards")
        self.n, self.batch_size, self.shards = n, batch_size, shards
        cut = [k * batch_size // shards for k in range(shards + 1)]
        self.local_sizes = [cut[k + 1] - cut[k] for k in range(shards)]
        self.bounds = [n * c // batch_size for c in cut]
        self.steps_per_epoch = max(math.ceil(self.shard_size(k) / b) for k, b in enumerate(self.local_sizes))
        self.rng = np.random.default_rng(seed)
        self._orders: list[np.ndarray] = []

    def shard_size(self, k: int) -> int:
        return self.bounds[k + 1] - self.bounds[k]

    def start_epoch(self) -> None:
        """Draw this epoch's order of every shard (all shards, so every process agrees)."""
        self._orders = [self.rng.permutation(self.shard_size(k)) for k in range(self.shards)]

    def local_batch(self, j: int, k: int) -> np.ndarray:
        """Shard ``k``'s part of global batch ``j``: indices into the shard, maybe empty."""
        b = self.local_sizes[k]
        return self._orders[k][j * b : (j + 1) * b]

    def batch(self, j: int) -> np.ndarray:
        """Global batch ``j`` of the current epoch: indices into the whole training set."""
        return np.concatenate([self.bounds[k] + self.local_batch(j, k) for k in range(self.shards)])

    def batch_len(self, j: int) -> int:
        """How many images global batch ``j`` holds over all shards."""
        return sum(len(self.local_batch(j, k)) for k in range(self.shards))


class ShardView:
    """Shard ``k`` of ``schedule`` seen as a schedule of its own: batch ``j`` is the shard's
    part of global batch ``j``, as indices into the shard (a replica's trainer holds only it)."""

    def __init__(self, schedule: ShardSchedule, k: int) -> None:
        if isinstance(k, bool) or int(k) != k or not 0 <= k < schedule.shards:
            raise ValueError(f"shard must be a whole number from 0 to {schedule.shards - 1}, got {k!r}")
        self.whole, self.k = schedule, int(k)
        self.n, self.batch_size = schedule.shard_size(self.k), schedule.batch_size
        self.steps_per_epoch = schedule.steps_per_epoch

    def start_epoch(self) -> None:
        self.whole.start_epoch()  # every shard's order, so going solo later finds the same epoch

    def batch(self, j: int) -> np.ndarray:
        return self.whole.local_batch(j, self.k)
