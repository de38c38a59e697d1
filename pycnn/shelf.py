"""The models the page knows: the one used for drawing, the one before it, and the pretrained one.

Each model comes with its *model info*, the plain dict the page shows::

    {"name", "hparams", "parameters", "source": "pretrained" | "file" | "saved" | "trained",
     "test_accuracy": float | None, "epochs": int | None, "stopped": str | None}
"""

from __future__ import annotations

from .errors import ModelFormatError
from .model import Sequential, load_model

SOURCES = ("pretrained", "file", "saved", "trained")

_HINT = "choose a .npz model saved by `pycnn train --save` or by this page"


def read_model_file(data: bytes | bytearray | memoryview, input_shape: tuple[int, int, int] = (28, 28, 1),
                    num_classes: int = 10) -> Sequential:
    """The model in an uploaded file's bytes, or :class:`ModelFormatError` saying why not.

    :func:`load_model` does every check, including refusing a model for
    other images than ``input_shape`` (H, W, C) or another number of classes;
    this adds a hint on what to choose instead.
    """
    try:
        return load_model(bytes(data), input_shape=input_shape, num_classes=num_classes)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{exc}; {_HINT}") from None


def model_info(model: Sequential, source: str, test_accuracy: float | None = None,
               epochs: int | None = None, stopped: str | None = None) -> dict:
    """The info of ``model``; ``stopped`` is e.g. "stopped after 1,234 images of epoch 1"."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    spec = model.spec
    return {"name": spec["name"], "hparams": dict(spec.get("hparams", {})), "parameters": model.num_params,
            "source": source, "test_accuracy": test_accuracy, "epochs": epochs, "stopped": stopped,
            "code": spec.get("code")}  # {"edited": [...], "sha256"}: trained with the homework's code


class Shelf:
    """The current model (used for drawing), the previous one and the pretrained one, with their infos.

    :meth:`put` makes a model current and the current one previous, so one
    click (:meth:`restore_previous`) undoes any change of model.
    """

    def __init__(self) -> None:
        self.current: tuple[Sequential, dict] | None = None
        self.previous: tuple[Sequential, dict] | None = None
        self.pretrained: tuple[Sequential, dict] | None = None

    @property
    def model(self) -> Sequential | None:
        return None if self.current is None else self.current[0]

    @property
    def info(self) -> dict | None:
        return None if self.current is None else dict(self.current[1])

    @property
    def previous_info(self) -> dict | None:
        return None if self.previous is None else dict(self.previous[1])

    def put(self, model: Sequential, info: dict) -> None:
        if self.current is not None and self.current[0] is model:
            return  # the same model again (use_pretrained twice): nothing to undo
        self.previous, self.current = self.current, (model, dict(info))

    def restore_previous(self) -> None:
        """Swap the current and the previous model."""
        if self.previous is None:
            raise ValueError("there is no previous model to go back to")
        self.current, self.previous = self.previous, self.current
