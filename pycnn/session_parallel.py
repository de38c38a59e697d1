"""The data-parallel calls of the page's session, as the workers of one run make them.

The first worker holds MNIST and trains shard 0 (its session's
``start_training(config, workers)``), hands the other shards out
(:meth:`ParallelCalls.shard_data`) and runs the test pass; each extra worker's
session holds one :class:`~pycnn.replica.Replica` run
(:meth:`ParallelCalls.start_replica`). Every step, each worker calls
``compute_gradients``, sends the vector to the others, and ``apply_gradients``
with all of them. A mixin of :class:`~pycnn.session.Session`: it uses the
session's run, phase and MNIST.
"""

from __future__ import annotations

import time

import numpy as np

from . import phases, settings
from .errors import DivergedError, SessionError
from .run import Run

ABANDONED = "Training was abandoned; the previous model is still used for drawing."


class ParallelCalls:
    """The data-parallel methods of :class:`~pycnn.session.Session`."""

    def _parallel(self) -> Run:
        run = self._run()
        if run.replica is None:
            raise SessionError("this run is not data-parallel: start it with several workers")
        return run

    def shard_data(self, shard: int) -> dict:
        """Shard ``shard``'s training images (N_k, 28, 28) and labels (N_k,), for the worker that trains it."""
        schedule = self._parallel().replica.schedule
        if isinstance(shard, bool) or int(shard) != shard or not 1 <= shard < schedule.shards:
            raise ValueError(f"shard must be a whole number from 1 to {schedule.shards - 1}, got {shard!r}")
        x_train, y_train, _, _ = self._mnist()
        lo, hi = schedule.bounds[int(shard)], schedule.bounds[int(shard) + 1]
        return {"images": x_train[lo:hi], "labels": y_train[lo:hi]}

    def start_replica(self, config: dict, x: np.ndarray, y: np.ndarray, shard: int, params: np.ndarray) -> dict:
        """Begin a run as extra worker ``shard`` (>= 1) on that shard's images, from the first worker's weights."""
        n = config.get("train_size") if isinstance(config, dict) else None
        config = settings.validate_config(config, n if isinstance(n, int) and n > 0 else 1)
        if isinstance(shard, bool) or int(shard) != shard or not 1 <= shard < config["shards"]:
            raise ValueError(f"shard must be a whole number from 1 to {config['shards'] - 1}, got {shard!r}")
        if self.running:
            raise SessionError(f"cannot start a replica while the session is {self.phase}")
        model = settings.build(config)
        model.set_flat_params(params)
        trainer, replica = settings.build_trainer(model, x, y, None, None, config, int(shard))
        self.evaluation.cancel()
        self._go(phases.TRAINING, "start a replica")
        self.run = Run(trainer, model, config, config["train_size"], 0, config["shards"], replica)
        return {"shard": int(shard), "train_size": len(x)}

    def compute_gradients(self) -> dict:
        """This worker's part of the next global batch; its gradients stay in the model."""
        run = self._run()
        start = time.perf_counter()
        part = (run.replica or run.trainer).compute_gradients()
        end = time.perf_counter()
        run.computed(start, end)
        return {"grads": run.model.flat_grads(), "count": int(part["count"]), "loss": float(part["loss"]),
                "correct": int(part["correct"]), "seconds": end - start}

    def apply_gradients(self, parts: list[dict], grads: list[np.ndarray | None]) -> dict:
        """The step with every worker's gradients summed in shard order (None: this worker's own)."""
        run = self._run()
        if len(grads) != len(parts) or sum(g is None for g in grads) != 1:
            raise ValueError(f"apply_gradients needs one gradient vector per part with None in this worker's "
                             f"place, got {len(grads)} for {len(parts)} parts")
        if self.phase == phases.STOPPING:
            self._stop(run)
            return {"events": [], "done": True, "evaluating": False}
        start = time.perf_counter()
        own = run.model.flat_grads()
        total = None
        for g in grads:  # the same order on every worker, so every replica's sum is bit-identical
            vector = own if g is None else g
            total = vector.copy() if total is None else np.add(total, vector, out=total)
        batch = {key: sum(part[key] for part in parts) for key in ("count", "loss", "correct")}
        try:
            run.model.set_flat_grads(total)
            events = run.record([(run.replica or run.trainer).apply_gradients(batch)])
        except DivergedError as e:
            self._end(run, "diverged", str(e))
            return {"events": [], "done": True, "evaluating": False}
        seconds = [None if g is None else p.get("seconds") for p, g in zip(parts, grads, strict=True)]
        run.applied(start, time.perf_counter(), seconds)
        if run.is_extra and run.trainer.evaluating:  # no test set: its epoch ends at once
            events += run.record(run.trainer.run(max_steps=0))
        reply = self._after(run, events)
        return {**reply, "evaluating": bool(self.running and run.trainer.evaluating)}

    def go_solo(self) -> dict:
        """The other workers are gone: the first worker goes on alone on the whole set, same schedule."""
        run = self._parallel()
        x_train, y_train, _, _ = self._mnist()
        run.replica.go_solo(x_train[: run.train_size], y_train[: run.train_size])
        return {"shards": 1}

    def end_run(self) -> None:
        """Drop the run without keeping its model: an extra worker's run that the first worker
        ended, or any run the worker cannot carry on (its calls keep failing)."""
        if self.running:
            run = self.run
            self._end(run, "stopped", "Stopped." if run.is_extra else ABANDONED)
