"""The page's session: everything the page shows, in one place, with an explicit state.

A :class:`Session` owns the models (:class:`~pycnn.shelf.Shelf`), MNIST, the
current or last training run (:class:`~pycnn.run.Run`), the evaluation of the
current model and the run's checkpoint. Its :attr:`phase` is one of
:data:`PHASES`; each method either takes a legal transition (see
:data:`TRANSITIONS`) or raises :class:`SessionError` saying why not. Every
method returns plain data; :meth:`state` is the page's whole picture.
"""

from __future__ import annotations

import time

import numpy as np

from . import insight, settings
from .errors import DataFormatError, DivergedError, SessionError
from .losses import softmax
from .model import Sequential, load_model
from .optim import make_optimizer
from .parallel import ShardSchedule
from .preprocess import preprocess_digit
from .replica import Replica
from .run import Run
from .shelf import Shelf, model_info
from .train import Trainer

IMAGE_SHAPE = settings.IMAGE_SHAPE
NUM_CLASSES = 10
HISTORY_SMOOTHING = 0.95  # the history chart's smoothed loss: about 20 steps, beside the raw losses
CHART_POINTS = 1000  # at most this many points per loss series sent to the page
EVAL_BATCH = 250  # test images per evaluation chunk: about 0.1 s for LeNet in the browser

EMPTY, IDLE, TRAINING, STOPPING, EVALUATING = "empty", "idle", "training", "stopping", "evaluating"
PHASES = (EMPTY, IDLE, TRAINING, STOPPING, EVALUATING)
# Where each phase may go. A model change is no transition (it may happen in any
# phase) but ends an evaluation; a run's end goes to IDLE, or EMPTY without a model.
TRANSITIONS = {
    EMPTY: {IDLE, TRAINING},
    IDLE: {IDLE, TRAINING, EVALUATING},
    EVALUATING: {IDLE, TRAINING, EVALUATING},
    TRAINING: {STOPPING, IDLE, EMPTY},
    STOPPING: {IDLE, EMPTY},
}


def _speed_key(config: dict) -> tuple:
    """Runs whose images/s are comparable: same model and batch size (not lr, epochs, size, optimizer)."""
    keep = ("preset", "batch_size", "n_filter", "filter_size", "stride", "padding")
    return tuple(config.get(k) for k in keep if config["preset"] == "seed" or k in ("preset", "batch_size"))


class Session:
    """The state behind the page (one per worker)."""

    def __init__(self) -> None:
        self.phase = EMPTY
        self.shelf = Shelf()
        self.data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.run: Run | None = None          # the current run, or the last one (its outcome set)
        self.replica = False                 # the run is an extra worker's part of a data-parallel run
        self.evaluator: insight.Evaluator | None = None
        self.eval_cancelled = False
        self.report: dict | None = None
        self.report_model: Sequential | None = None
        self.history = insight.ChartHistory(smoothing=HISTORY_SMOOTHING, max_points=CHART_POINTS)
        self.one_worker_rates: dict[tuple, float] = {}

    # -- state ------------------------------------------------------------------

    def _go(self, phase: str, action: str) -> None:
        if phase not in TRANSITIONS[self.phase]:
            raise SessionError(f"cannot {action} while the session is {self.phase}")
        self.phase = phase

    def _at_rest(self) -> str:
        return IDLE if self.shelf.model is not None else EMPTY

    @property
    def running(self) -> bool:
        return self.phase in (TRAINING, STOPPING)

    def state(self) -> dict:
        """The page's whole picture (see docs/ARCHITECTURE.md for the keys)."""
        data = self.data
        evaluation = None if self.evaluator is None else self.evaluator.progress()
        report = "none" if self.report is None else ("current" if self.report_model is self.shelf.model else "stale")
        return {"phase": self.phase, "model": self.shelf.info, "previous": self.shelf.previous_info,
                "mnist": None if data is None else {"train": len(data[0]), "test": len(data[2])},
                "run": None if self.run is None else self.run_status(),
                "evaluation": evaluation, "report": report}

    def run_status(self) -> dict:
        run = self.run
        return run.status(None if run.workers <= 1 else self.one_worker_rates.get(_speed_key(run.config)))

    # -- models -----------------------------------------------------------------

    def _use(self, model: Sequential, info: dict) -> dict:
        """Make ``model`` the one used for drawing; an evaluation of another model is cancelled."""
        self.shelf.put(model, info)
        self._cancel_evaluation()
        if self.phase == EMPTY:
            self._go(IDLE, "load a model")
        return self.shelf.info

    def load_pretrained(self, data: bytes) -> dict:
        model = load_model(data, input_shape=(*IMAGE_SHAPE, 1), num_classes=NUM_CLASSES)
        self.shelf.pretrained = (model, model_info(model, "pretrained"))
        return self._use(*self.shelf.pretrained)

    def load_model_file(self, data: bytes, source: str = "file") -> dict:
        if source not in ("file", "saved"):
            raise ValueError(f"source must be one of file, saved, got {source!r}")
        model = insight.read_model_file(data, input_shape=(*IMAGE_SHAPE, 1), num_classes=NUM_CLASSES)
        return self._use(model, model_info(model, source))

    def use_pretrained(self) -> dict:
        if self.shelf.pretrained is None:
            raise SessionError("no pretrained model is loaded yet")
        return self._use(*self.shelf.pretrained)

    def restore_previous(self) -> dict:
        if self.shelf.previous is None:
            raise SessionError("there is no previous model to go back to")
        self.shelf.restore_previous()
        self._cancel_evaluation()
        return self.shelf.info

    def _model(self) -> Sequential:
        if self.shelf.model is None:
            raise SessionError("no model is loaded yet")
        return self.shelf.model

    def model_bytes(self) -> bytes:
        return self._model().to_bytes()

    def predict(self, ink: np.ndarray) -> dict:
        """Classify canvas ink (H, W) uint8 with one forward pass: probabilities and feature maps."""
        model = self._model()
        image = preprocess_digit(ink)
        if image is None:
            return {"digit": None, "probs": None, "image": None, "maps": None}
        acts = model.activations(image[None])
        probs = softmax(acts[-1][1])[0]
        return {"digit": int(probs.argmax()), "probs": [float(p) for p in probs],
                "image": [round(float(v), 3) for v in image.ravel()],
                "maps": insight.activation_maps(model, acts)}

    def filters(self) -> dict | None:
        """The first convolution's filters: of the model in training during a run, else the current one."""
        model = self.run.model if self.running else self.shelf.model
        return None if model is None else insight.filter_images(model)

    def params(self) -> np.ndarray:
        """The weights of the model in training (else the current one) as one float32 vector."""
        model = self.run.model if self.running else self._model()
        return model.flat_params()

    # -- MNIST ------------------------------------------------------------------

    def set_mnist(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict:
        """Hand over MNIST: uint8 images (N, 28, 28) and labels (N,) in 0..9, for training and test."""
        for what, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
            if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
                raise DataFormatError(f"{what} images must have shape (N, 28, 28), got {x.shape}")
            if len(x) != len(y):
                raise DataFormatError(f"{what} set: {len(y)} labels for {len(x)} images")
            if len(x) == 0:
                raise DataFormatError("the training and test sets must not be empty")
            if y.max() >= NUM_CLASSES:
                raise DataFormatError(f"{what} labels must lie in 0..9 (found {y.max()})")
        self.data = (x_train, np.asarray(y_train, np.int64), x_test, np.asarray(y_test, np.int64))
        return {"train": len(x_train), "test": len(x_test)}

    def _mnist(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.data is None:
            raise SessionError("MNIST is not loaded yet")
        return self.data

    def training_sample(self, n: int, seed: int | None = None) -> dict:
        x_train, y_train, _, _ = self._mnist()
        if isinstance(n, bool) or int(n) != n or not 1 <= n <= 400:
            raise ValueError(f"the sample size must be a whole number from 1 to 400, got {n!r}")
        return insight.dataset_sample(x_train, y_train, int(n), seed)

    # -- training ---------------------------------------------------------------

    def start_training(self, config: dict, workers: int = 1) -> dict:
        """Begin a run (see settings.validate_config); ``workers`` > 1: as shard 0 of a data-parallel run."""
        x_train, y_train, x_test, y_test = self._mnist()
        if isinstance(workers, bool) or int(workers) != workers or not 1 <= workers <= settings.MAX_SHARDS:
            raise ValueError(f"workers must be a whole number from 1 to {settings.MAX_SHARDS}, got {workers!r}")
        workers = int(workers)
        if workers > 1:
            config = {**config, "shards": workers}
        config = settings.validate_config(config, len(x_train))
        if self.running:
            raise SessionError(f"cannot start training while the session is {self.phase}: stop the run first")
        model = settings.build(config)
        macs = settings.check_speed(model, config["batch_size"])
        n = config["train_size"]
        x, y = x_train[:n], y_train[:n]
        shard = None
        if workers > 1:
            shard, hi = 0, ShardSchedule(n, config["batch_size"], workers).bounds[1]
            x, y = x[:hi], y[:hi]
        trainer, replica = _trainer(model, x, y, x_test, y_test, config, shard, settings.eval_batch(macs))
        self._cancel_evaluation()
        self._go(TRAINING, "start training")
        self.run, self.replica = Run(trainer, model, config, n, len(x_test), workers, replica), False
        self.history.start_run()
        return {"epochs": config["epochs"], "train_size": n, "test_size": len(x_test), "note": config.get("note"),
                "batch_size": config["batch_size"], "shards": config["shards"],
                "steps_per_epoch": trainer.steps_per_epoch, "total_steps": trainer.total_steps,
                "chart_end": self.history.step + trainer.total_steps, "model": model_info(model, "trained")}

    def _run(self) -> Run:
        if not self.running:
            raise SessionError("no training run: call start_training first")
        return self.run

    def train_slice(self, max_seconds: float = 0.2, max_steps: int | None = None) -> dict:
        """Train (or test) for about ``max_seconds``; after request_stop, end the run instead."""
        run = self._run()
        if self.phase == STOPPING:
            self._stop(run)
            return {"events": [], "done": True}
        if run.replica is not None:
            max_steps = 0  # a data-parallel run steps by apply_gradients: a slice only runs the test pass
        try:
            events = run.record(run.trainer.run(max_steps, max_seconds=float(max_seconds)))
        except DivergedError as e:
            self._end(run, "diverged", str(e))
            return {"events": [], "done": True}
        return self._after(run, events)

    def _after(self, run: Run, events: list[dict]) -> dict:
        self.history.extend(events)
        if run.workers == 1 and run.train_seconds() >= 1:
            self.one_worker_rates[_speed_key(run.config)] = run.images_per_second()
        if run.trainer.done:
            self._end(run, "done", "Done. Your model is now used for drawing.")
        return {"events": events, "done": run.trainer.done}

    def request_stop(self) -> None:
        """Ask the run to end at its next slice or step; it keeps the weights reached."""
        if self.phase == TRAINING:
            self._go(STOPPING, "stop")

    def _stop(self, run: Run) -> None:
        t = run.trainer
        if t.step == 0 or self.replica:
            self._end(run, "stopped", "Stopped before the first step; the previous model is still used for drawing."
                      if not self.replica else "Stopped.")
            return
        at_boundary = t.examples == 0 and t.epoch > 0
        images, epoch = (run.train_size, t.epoch) if at_boundary else (run.epoch_examples(), t.epoch + 1)
        stopped = f"stopped after {images:,} images of epoch {epoch}"
        accuracy = run.last_epoch["test_accuracy"] if at_boundary else None
        had_model = self.shelf.model is not None
        self._end(run, "stopped", f"S{stopped[1:]}. That model is now used for drawing"
                  + ("; the previous one is a click away." if had_model else "."),
                  model_info(run.model, "trained", accuracy, t.epoch, stopped))

    def _end(self, run: Run, outcome: str, message: str, info: dict | None = None) -> None:
        """End ``run``; the run's model becomes current when done (or ``info`` is given, as on Stop)."""
        if outcome == "done" and not self.replica:
            last = run.last_epoch
            info = model_info(run.model, "trained", last["test_accuracy"], last["epoch"])
        run.end(outcome, message, None if info is None else info["stopped"])
        if info is not None:
            self.shelf.put(run.model, info)
        self._go(self._at_rest(), "end the run")

    def checkpoint(self) -> dict | None:
        """The running run's model after its last finished epoch: {"bytes", "name", "epoch", "epochs",
        "test_accuracy"}, or None (no run, or no epoch finished)."""
        run = self.run
        if not self.running or run.snapshot is None:
            return None
        return {"bytes": run.snapshot, "name": run.model.spec["name"], "epoch": run.last_epoch["epoch"],
                "epochs": run.trainer.epochs, "test_accuracy": run.last_epoch["test_accuracy"]}

    def chart(self) -> dict:
        return self.history.series()

    # -- data-parallel ----------------------------------------------------------

    def _parallel(self) -> Run:
        run = self._run()
        if run.replica is None:
            raise SessionError("this run is not data-parallel: start it with several workers")
        return run

    def shard_data(self, shard: int) -> dict:
        """Shard ``shard``'s training images (N_k, 28, 28) and labels (N_k,) as arrays."""
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
        trainer, replica = _trainer(model, x, y, None, None, config, int(shard))
        self._cancel_evaluation()
        self._go(TRAINING, "start a replica")
        self.run = Run(trainer, model, config, config["train_size"], 0, config["shards"], replica)
        self.replica = True
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
        if self.phase == STOPPING:
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
        run.applied(start, time.perf_counter(), [p.get("seconds") if g is not None else None
                                                 for p, g in zip(parts, grads)])
        if self.replica and run.trainer.evaluating:  # no test set: the epoch ends at once
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
        """Drop an extra worker's run (the first worker ended it, or the mesh broke)."""
        if self.running and self.replica:
            self._end(self.run, "stopped", "Stopped.")

    # -- evaluation -------------------------------------------------------------

    def _cancel_evaluation(self) -> None:
        if self.evaluator is not None:
            self.evaluator, self.eval_cancelled = None, True
            if self.phase == EVALUATING:
                self._go(IDLE, "cancel the evaluation")

    def start_evaluation(self) -> dict:
        """Begin evaluating the current model on the whole test set (then: evaluation_slice)."""
        _, _, x_test, y_test = self._mnist()
        model = self._model()
        self._go(EVALUATING, "evaluate")
        self.evaluator, self.eval_cancelled = insight.Evaluator(model, x_test, y_test, batch_size=EVAL_BATCH), False
        return self.evaluator.progress()

    def evaluation_slice(self, max_seconds: float = 0.2) -> dict:
        """Evaluate for about ``max_seconds``: {"progress", "report" (when done), "cancelled"}."""
        evaluator = self.evaluator
        if evaluator is None:
            if self.eval_cancelled:
                return {"progress": None, "report": None, "cancelled": True}
            raise SessionError("no evaluation is running: call start_evaluation first")
        progress = evaluator.run(max_seconds=float(max_seconds))
        if not evaluator.done:
            return {"progress": progress, "report": None, "cancelled": False}
        report = insight.page_report(evaluator)
        report["model"] = self.shelf.info
        self.report, self.report_model, self.evaluator = report, evaluator.model, None
        self._go(IDLE, "finish the evaluation")
        return {"progress": progress, "report": report, "cancelled": False}

    def evaluation_cell(self, label: int, predicted: int) -> dict:
        if self.report is None:
            raise SessionError("no finished evaluation: evaluate the model first")
        for name, value in (("label", label), ("predicted", predicted)):
            if isinstance(value, bool) or int(value) != value or not 0 <= value < NUM_CLASSES:
                raise ValueError(f"{name} must be a digit from 0 to 9, got {value!r}")
        label, predicted = int(label), int(predicted)
        indices = self.report["cells"][label][predicted]
        return {"label": label, "predicted": predicted, "cell_count": self.report["confusion"][label][predicted],
                "indices": list(indices), **insight.images(self._mnist()[2], indices)}


def _trainer(model: Sequential, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None,
             y_test: np.ndarray | None, config: dict, shard: int | None,
             eval_batch: int = 500) -> tuple[Trainer, Replica | None]:
    """The run's trainer, and its replica if it is shard ``shard`` of a data-parallel run."""
    optimizer = make_optimizer(config["optimizer"], model.params(), config["lr"], config["momentum"])
    schedule = ShardSchedule(config["train_size"], config["batch_size"], config["shards"], config["seed"])
    common = dict(optimizer=optimizer, epochs=config["epochs"], eval_batch_size=eval_batch)
    if shard is None:
        return Trainer(model, x, y, x_test, y_test, schedule=schedule, **common), None
    replica = Replica(model, x, y, x_test, y_test, schedule=schedule, shard=shard, **common)
    return replica.trainer, replica
