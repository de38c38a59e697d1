"""The models the page knows: the one used for drawing, the one before it, and the pretrained one.

Each model comes with its *model info*, the plain dict the page shows::

    {"name", "hparams", "parameters", "source": "pretrained" | "file" | "saved" | "trained",
     "test_accuracy": float | None, "epochs": int | None, "stopped": str | None}
"""

from __future__ import annotations

from .model import Sequential

SOURCES = ("pretrained", "file", "saved", "trained")


def model_info(model: Sequential, source: str, test_accuracy: float | None = None,
               epochs: int | None = None, stopped: str | None = None) -> dict:
    """The info of ``model``; ``stopped`` is e.g. "stopped after 1,234 images of epoch 1"."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    spec = model.spec
    return {"name": spec["name"], "hparams": dict(spec.get("hparams", {})), "parameters": model.num_params,
            "source": source, "test_accuracy": test_accuracy, "epochs": epochs, "stopped": stopped}


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
