"""The exceptions pycnn raises for user errors.

Every mistake a user can make (a missing or corrupt data or model file, an
impossible hyperparameter, a diverging run, a path that cannot be written)
raises a subclass of :class:`PycnnError`. Its message is one line saying
what is wrong and what to do, exactly what ``pycnn`` prints after
``error:``. Any other exception is a bug. The subclasses keep the built-in
bases they had, so ``except ValueError`` / ``except FileNotFoundError``
still catch them.
"""

from __future__ import annotations

MAX_MESSAGE = 1000  # characters: room for a few long paths, while a hostile file quoted stays readable


class PycnnError(Exception):
    """A user error; ``str(exc)`` is one line of at most MAX_MESSAGE characters, fit to show the user."""

    def __init__(self, message: str) -> None:
        line = " ".join(str(message).split())  # always one line
        if len(line) > MAX_MESSAGE:
            line = line[: MAX_MESSAGE - 14].rstrip() + " ... (cut)"
        super().__init__(line)


class ConfigError(PycnnError, ValueError):
    """An impossible hyperparameter or setting (learning rate, sizes, paths to write)."""


class DataFormatError(PycnnError, ValueError):
    """A data file or buffer is corrupt, truncated or not what it claims."""


class MNISTNotFoundError(PycnnError, FileNotFoundError):
    """No MNIST data where we looked; the message lists the places."""


class ModelFormatError(PycnnError, ValueError):
    """A model file that is not a pycnn model, or does not fit its architecture."""


class ModelNotFoundError(PycnnError, FileNotFoundError):
    """The model file named does not exist (or is a folder)."""


class MissingDependencyError(PycnnError, ImportError):
    """An optional package (h5py) is needed for what was asked."""


class DivergedError(PycnnError, RuntimeError):
    """The loss became NaN or infinite at ``step``; the model keeps its last finite weights."""

    def __init__(self, message: str, step: int = 0, lr: float = 0.0) -> None:
        super().__init__(message)
        self.step, self.lr = step, lr


class SessionError(PycnnError, ValueError):
    """A request the page's session cannot take now (train while training, predict without a model, ...)."""
