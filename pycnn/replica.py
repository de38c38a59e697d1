"""One worker of a data-parallel run: a plain Trainer that computes only its shard's part of each step.

The ``n`` training images are split into shards (see
:class:`~pycnn.parallel.ShardSchedule`), one per worker. Every step, each
worker's :class:`Replica` computes the gradients of its shard's part of the
global batch, weighted by that part's share of the batch; the workers swap
these vectors, each adds all of them up in shard order and takes the
optimizer step with the sum. Adding the same vectors in the same order makes
every replica's step bit-identical, so all replicas hold the same weights as
one trainer stepping through the same global batches alone.
"""

from __future__ import annotations

import numpy as np

from .model import Sequential
from .optim import Optimizer
from .parallel import ShardSchedule, ShardView
from .train import Event, Trainer


class Replica:
    """Shard ``shard`` of ``schedule``: ``x_shard`` (N_k, H, W) and ``y_shard`` (N_k,) are its images.

    ``trainer`` is the plain :class:`Trainer` it drives (holding the shard,
    the test set if any, the optimizer and the counters). Each step is
    :meth:`compute_gradients`, the sum of every replica's gradient vectors
    (done by the caller) put in ``Param.grad``, then :meth:`apply_gradients`
    with the summed counts.
    """

    def __init__(self, model: Sequential, x_shard: np.ndarray, y_shard: np.ndarray,
                 x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, *,
                 optimizer: Optimizer, schedule: ShardSchedule, shard: int, epochs: int = 1,
                 eval_batch_size: int = 500, lr_decay: float = 1.0) -> None:
        view = ShardView(schedule, shard)
        if len(x_shard) != view.n:
            raise ValueError(f"shard {shard} of {schedule.n} images over {schedule.shards} shards holds "
                             f"{view.n} images, got {len(x_shard)}")
        self.schedule, self.shard = schedule, int(shard)
        self.trainer = Trainer(model, x_shard, y_shard, x_test, y_test, optimizer=optimizer, epochs=epochs,
                               eval_batch_size=eval_batch_size, lr_decay=lr_decay, schedule=view)
        self.solo = False

    def compute_gradients(self) -> dict:
        """Forward and backward on this shard's part of the next global batch; no update.

        Afterwards every ``Param.grad`` holds the part's mean gradient times
        its share of the global batch (part size / batch size), so the parts'
        gradients sum to the whole batch's mean gradient. Returns the part's
        {"count", "loss" (times its share), "correct"}; summed over the parts,
        these describe the whole batch. Alone (:meth:`go_solo`), the whole batch.
        """
        t = self.trainer
        if self.solo:
            return t.compute_gradients()
        j = t.batch
        idx = self.schedule.local_batch(j, self.shard)
        if len(idx) == 0:  # this shard has run out; the others finish the epoch
            for p in t.model.params():
                p.grad = np.zeros_like(p.value)
            return {"count": 0, "loss": 0.0, "correct": 0}
        return t.part_gradients(t.x_train[idx], t.y_train[idx], share=len(idx) / self.schedule.batch_len(j))

    def apply_gradients(self, batch: dict) -> Event:
        """The optimizer step with the summed gradients in ``Param.grad`` and ``batch`` the summed counts."""
        return self.trainer.apply_gradients(batch)

    def go_solo(self, x_train: np.ndarray, y_train: np.ndarray) -> None:
        """Continue alone on the whole training set (the other replicas are gone), on the same schedule.

        A step whose gradients were computed but not applied is recomputed
        over the whole global batch by the next :meth:`compute_gradients`.
        """
        if len(x_train) != self.schedule.n:
            raise ValueError(f"the whole training set has {self.schedule.n} images, got {len(x_train)}")
        self.trainer.use_training_set(x_train, y_train, self.schedule)
        self.solo = True
