"""The page's session: everything the page shows, in one place, with an explicit state.

A :class:`Session` owns the models (:class:`~pycnn.shelf.Shelf`), MNIST, the
current or last training run (:class:`~pycnn.run.Run`), the evaluation of the
current model (:class:`~pycnn.evaluation.Evaluation`) and the run's
checkpoint. Its :attr:`phase` is one of :data:`~pycnn.phases.PHASES`; each method either
takes a legal transition (see :mod:`pycnn.phases`) or raises
:class:`SessionError` saying why not. Every method returns plain data or
arrays (``pycnn.web`` turns those into bytes); :meth:`state` is the page's
whole picture.
"""

from __future__ import annotations

import numpy as np

from . import insight, phases, settings
from .chart import ChartHistory
from .data import check_split
from .errors import DataFormatError, DivergedError, SessionError
from .evaluation import Evaluation
from .losses import softmax
from .model import Sequential, load_model
from .parallel import ShardSchedule
from .phases import EMPTY, EVALUATING, IDLE, STOPPING, TRAINING
from .preprocess import preprocess_digit
from .run import Run
from .session_parallel import ParallelCalls
from .shelf import Shelf, model_info, read_model_file

IMAGE_SHAPE = settings.IMAGE_SHAPE
HISTORY_SMOOTHING = 0.95  # the history chart's smoothed loss: about 20 steps, beside the raw losses
CHART_POINTS = 1000  # at most this many points per loss series sent to the page
EVAL_BATCH = 250  # test images per evaluation chunk: about 0.1 s for LeNet in the browser

DONE = "Done. Your model is now used for drawing."
NOTHING_LEARNED = "Stopped before the first step; the previous model is still used for drawing."


def _speed_key(config: dict) -> tuple:
    """Runs whose images/s compare: the same model and batch size (lr, epochs, size, optimizer aside)."""
    arch = ("n_filter", "filter_size", "stride", "padding") if config["preset"] == "seed" else ()
    return tuple(config[k] for k in ("preset", "batch_size", *arch))


class Session(ParallelCalls):
    """The state behind the page (one per worker; an extra worker's holds only its replica run).
    The data-parallel calls are :class:`~pycnn.session_parallel.ParallelCalls`'."""

    def __init__(self) -> None:
        self.phase = EMPTY
        self.shelf = Shelf()
        self.data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.run: Run | None = None  # the current run, or the last one (its outcome set)
        self.evaluation = Evaluation()
        self.history = ChartHistory(smoothing=HISTORY_SMOOTHING, max_points=CHART_POINTS)
        self.one_worker_rates: dict[tuple, float] = {}  # images/s of 1-worker runs, by _speed_key

    def _go(self, phase: str, action: str) -> None:
        self.phase = phases.check(self.phase, phase, action)

    @property
    def running(self) -> bool:
        return self.phase in (TRAINING, STOPPING)

    def state(self) -> dict:
        """The page's whole picture (keys: docs/ARCHITECTURE.md)."""
        data, run = self.data, self.run
        rate = None if run is None or run.workers <= 1 else self.one_worker_rates.get(_speed_key(run.config))
        return {"phase": self.phase, "model": self.shelf.info, "previous": self.shelf.previous_info,
                "mnist": None if data is None else {"train": len(data[0]), "test": len(data[2])},
                "run": None if run is None else run.status(rate),
                "evaluation": self.evaluation.progress(), "report": self.evaluation.status(self.shelf.model)}

    # -- models -----------------------------------------------------------------

    def _changed_model(self) -> dict:
        """The model used for drawing changed: an evaluation of the old one is cancelled."""
        if self.evaluation.cancel() and self.phase == EVALUATING:
            self._go(IDLE, "cancel the evaluation")
        if self.phase == EMPTY:
            self._go(IDLE, "load a model")
        return self.shelf.info

    def load_pretrained(self, data: bytes) -> dict:
        model = load_model(data, input_shape=(*IMAGE_SHAPE, 1), num_classes=10)
        self.shelf.pretrained = (model, model_info(model, "pretrained"))
        self.shelf.put(*self.shelf.pretrained)
        return self._changed_model()

    def load_model_file(self, data: bytes, source: str = "file") -> dict:
        if source not in ("file", "saved"):
            raise ValueError(f"source must be one of file, saved, got {source!r}")
        model = read_model_file(data, input_shape=(*IMAGE_SHAPE, 1), num_classes=10)
        self.shelf.put(model, model_info(model, source))
        return self._changed_model()

    def use_pretrained(self) -> dict:
        if self.shelf.pretrained is None:
            raise SessionError("no pretrained model is loaded yet")
        self.shelf.put(*self.shelf.pretrained)
        return self._changed_model()

    def restore_previous(self) -> dict:
        if self.shelf.previous is None:
            raise SessionError("there is no previous model to go back to")
        self.shelf.restore_previous()
        return self._changed_model()

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
                "image": [round(float(v), 3) for v in image.ravel()], "maps": insight.activation_maps(model, acts)}

    def filters(self) -> dict | None:
        """The first convolution's filters: of the model in training during a run, else the current one."""
        model = self.run.model if self.running else self.shelf.model
        return None if model is None else insight.filter_images(model)

    def params(self) -> np.ndarray:
        """The weights of the model in training (else the current one) as one float32 vector."""
        return (self.run.model if self.running else self._model()).flat_params()

    # -- MNIST ------------------------------------------------------------------

    def set_mnist(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict:
        """Hand over MNIST: uint8 images (N, 28, 28) and labels (N,) in 0..9, for training and test."""
        split = check_split(x_train, np.asarray(y_train, np.int64), x_test, np.asarray(y_test, np.int64), "MNIST")
        if x_train.shape[1:] != IMAGE_SHAPE or x_test.shape[1:] != IMAGE_SHAPE:
            raise DataFormatError(f"MNIST images must be 28x28, got {x_train.shape[1:]} and {x_test.shape[1:]}")
        self.data = split
        return {"train": len(x_train), "test": len(x_test)}

    def _mnist(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.data is None:
            raise SessionError("MNIST is not loaded yet")
        return self.data

    def training_sample(self, n: int = 48, seed: int | None = None) -> dict:
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
        config = settings.validate_config({**config, "shards": int(workers)} if workers > 1 else config, len(x_train))
        if self.running:
            raise SessionError(f"cannot start training while the session is {self.phase}: stop the run first")
        model = settings.build(config)
        macs = settings.check_speed(model, config["batch_size"])
        n, shard = config["train_size"], (0 if workers > 1 else None)
        hi = ShardSchedule(n, config["batch_size"], config["shards"]).bounds[1] if shard == 0 else n
        trainer, replica = settings.build_trainer(model, x_train[:hi], y_train[:hi], x_test, y_test, config,
                                                  shard, settings.eval_batch(macs))
        self.evaluation.cancel()
        self._go(TRAINING, "start training")
        self.run = Run(trainer, model, config, n, len(x_test), int(workers), replica)
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
        """Train (or test) for about ``max_seconds``; after request_stop, end the run instead.
        In a data-parallel run (steps come from apply_gradients) only the test pass runs here."""
        run = self._run()
        if self.phase == STOPPING:
            self._stop(run)
            return {"events": [], "done": True}
        try:
            work = run.trainer.run(0 if run.replica else max_steps, max_seconds=float(max_seconds))
        except DivergedError as e:
            self._end(run, "diverged", str(e))
            return {"events": [], "done": True}
        return self._after(run, run.record(work))

    def _after(self, run: Run, events: list[dict]) -> dict:
        self.history.extend(events)
        if run.workers == 1 and run.train_seconds() >= 1:
            self.one_worker_rates[_speed_key(run.config)] = run.images_per_second()
        if run.trainer.done:
            last = run.last_epoch
            info = None if run.is_extra else model_info(run.model, "trained", last["test_accuracy"], last["epoch"])
            self._end(run, "done", DONE, info)
        return {"events": events, "done": run.trainer.done}

    def request_stop(self) -> None:
        """Ask the run to end at its next slice or step; it keeps the weights reached."""
        if self.phase == TRAINING:
            self._go(STOPPING, "stop")

    def _stop(self, run: Run) -> None:
        if run.is_extra or run.trainer.step == 0:
            self._end(run, "stopped", "Stopped." if run.is_extra else NOTHING_LEARNED)
            return
        images, epoch, finished = run.stop_point()
        stopped = f"stopped after {images:,} images of epoch {epoch}"
        previous = "; the previous one is a click away." if self.shelf.model is not None else "."
        accuracy = run.last_epoch["test_accuracy"] if finished else None
        self._end(run, "stopped", f"S{stopped[1:]}. That model is now used for drawing{previous}",
                  model_info(run.model, "trained", accuracy, run.trainer.epoch, stopped))

    def _end(self, run: Run, outcome: str, message: str, info: dict | None = None) -> None:
        """End ``run``; with ``info``, its model becomes the one used for drawing."""
        run.end(outcome, message)
        if info is not None:
            self.shelf.put(run.model, info)
        self._go(IDLE if self.shelf.model is not None else EMPTY, "end the run")

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

    # -- evaluation -------------------------------------------------------------

    def start_evaluation(self) -> dict:
        """Begin evaluating the current model on the whole test set (then: evaluation_slice)."""
        _, _, x_test, y_test = self._mnist()
        model = self._model()
        self._go(EVALUATING, "evaluate")
        return self.evaluation.start(model, x_test, y_test, EVAL_BATCH)

    def evaluation_slice(self, max_seconds: float = 0.2) -> dict:
        """Evaluate for about ``max_seconds``: {"progress", "report" (when done), "cancelled"}."""
        reply = self.evaluation.slice(max_seconds, self.shelf.info)
        if reply["report"] is not None:
            self._go(IDLE, "finish the evaluation")
        return reply

    def evaluation_cell(self, label: int, predicted: int) -> dict:
        return self.evaluation.cell(label, predicted, self._mnist()[2])

