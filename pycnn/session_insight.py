"""The session's views of learning: saliency, one step taken apart, your handwriting, and layer health.

Functions of a :class:`~pycnn.session.Session` (kept apart from it: one
concept per file). They read the model used for drawing and never touch a
run, except that a run's layer health is watched (:func:`watch_health`) and its
learning rate may change (:func:`set_lr`); :func:`fine_tune` makes the
fine-tuned model the one used for drawing (the previous one stays a click away).
"""

from __future__ import annotations

import numpy as np

from .anatomy import take_step
from .anatomy_view import step_view
from .errors import ConfigError, SessionError
from .health import LayerHealth
from .losses import softmax
from .preprocess import preprocess_digit
from .saliency import saliency_map
from .session import Session
from .shelf import model_info
from .userdigits import fine_tune as tune

EMPTY_CANVAS = "draw a digit first: the canvas is empty"


def _digit(ink: np.ndarray) -> np.ndarray:
    """The network's input (28, 28) float32 for canvas ink (H, W), or SessionError for an empty canvas."""
    image = preprocess_digit(ink)
    if image is None:
        raise SessionError(EMPTY_CANVAS)
    return image


def saliency(session: Session, ink: np.ndarray, target: int | None = None) -> dict:
    """:func:`pycnn.saliency.saliency_map` of the drawn digit for class ``target`` (default: the predicted one)."""
    return saliency_map(session._model(), _digit(ink), target)


def step_apart(session: Session, label: int, ink: np.ndarray | None = None, test_index: int | None = None,
               optimizer: str = "sgd", lr: float | None = None) -> dict:
    """One training step of (a copy of) the current model taken apart (:func:`pycnn.anatomy_view.step_view`),
    on the drawn digit with ``label``, or on test image ``test_index`` with its true label (``label`` None)."""
    model = session._model()
    if test_index is not None:
        _, _, x_test, y_test = session._mnist()
        if isinstance(test_index, bool) or int(test_index) != test_index or not 0 <= test_index < len(x_test):
            raise ConfigError(f"the test image must be a number from 0 to {len(x_test) - 1}, got {test_index!r}")
        image, label = x_test[int(test_index)], int(y_test[int(test_index)]) if label is None else label
    else:
        image = _digit(ink)
    if label is None:
        raise ConfigError("say which digit this is: a label from 0 to 9")
    view = step_view(take_step(model, image, label, optimizer, lr))
    return {**view, "test_index": None if test_index is None else int(test_index)}


def step_apart_mistake(session: Session, k: int, optimizer: str = "sgd", lr: float | None = None) -> dict:
    """:func:`step_apart` on the ``k``-th image of the last evaluation's gallery of mistakes, with its true label."""
    report = session.evaluation.report
    if report is None:
        raise SessionError("no gallery of mistakes yet: evaluate the model first")
    gallery = report["gallery"]
    if isinstance(k, bool) or int(k) != k or not 0 <= k < len(gallery):
        raise ConfigError(f"the gallery holds mistakes 0 to {len(gallery) - 1}, got {k!r}")
    return step_apart(session, None, test_index=gallery[int(k)]["index"], optimizer=optimizer, lr=lr)


def user_digit(session: Session, ink: np.ndarray) -> dict:
    """The drawn digit as it is stored in your gallery: {"image": 784 bytes (uint8, ink 255), "digit", "probs"}."""
    image = _digit(ink)
    probs = softmax(session._model().forward(image[None, ..., None], training=False))[0]
    pixels = np.rint(255 * np.clip(image, 0, 1)).astype(np.uint8)
    return {"image": pixels.tobytes(), "digit": int(probs.argmax()), "probs": [float(p) for p in probs]}


def fine_tune(session: Session, digits: np.ndarray, labels: np.ndarray, seconds: float = 3.0) -> dict:
    """Fine-tune the current model on MNIST mixed with your ``digits`` (N, 28, 28); the result becomes
    the model used for drawing. Returns :func:`pycnn.userdigits.fine_tune`'s report plus "model"."""
    if session.running:
        raise SessionError(f"cannot fine-tune while the session is {session.phase}: stop the run first")
    x_train, y_train, x_test, y_test = session._mnist()
    model, report = tune(session._model(), x_train, y_train, x_test, y_test, digits, labels, seconds)
    # ModelInfo's "stopped" is how the model's training ended, what the page's model line says after the name.
    words = f"fine-tuned on {len(report['digits'])} of your digits"
    session.shelf.put(model, model_info(model, "trained", stopped=words))
    return {**report, "model": session._changed_model()}


# -- live layer health of the run (pycnn.health) ------------------------------------


def watch_health(session: Session) -> None:
    """Measure layer health during the session's new run (on the worker that applies its updates)."""
    if session.run is not None and not session.run.is_extra:
        session.run.trainer.observer = LayerHealth()


def health(session: Session) -> dict | None:
    """The current or last run's :meth:`LayerHealth.series`, or None (no run, or an extra worker's)."""
    observer = None if session.run is None else session.run.trainer.observer
    return None if observer is None else observer.series()


def set_lr(session: Session, lr: float) -> dict:
    """Change the running run's learning rate from its next step on: {"step": that step, "lr"}."""
    if not session.running:
        raise SessionError("no training run to change the learning rate of: start one first")
    run = session.run
    if run.workers > 1:
        raise SessionError("the learning rate of a data-parallel run cannot change mid-run (every worker "
                           "updates its own copy of the weights); use one worker")
    run.trainer.observer.set_lr(run.trainer, lr)
    return run.trainer.observer.marks[-1]
