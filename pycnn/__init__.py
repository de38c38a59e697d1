"""pycnn: a convolutional neural network from scratch in pure NumPy.

The data's path: :func:`load_mnist` gives uint8 images (N, 28, 28) and int
labels; :class:`Trainer` scales each batch to float32 (N, 28, 28, 1), calls
``Sequential.forward`` for logits (N, 10), :func:`softmax_cross_entropy`
for the loss and its gradient, ``Sequential.backward`` to fill every
``Param.grad``, and ``optimizer.step()`` to update the weights.

Every user error (bad data or model files, impossible settings, a diverging
run) raises a subclass of :class:`PycnnError` whose message is one line
saying what to do; anything else is a bug.
"""

from .data import load_mnist
from .errors import (
    ConfigError,
    DataFormatError,
    DivergedError,
    MissingDependencyError,
    MNISTNotFoundError,
    ModelFormatError,
    ModelNotFoundError,
    PycnnError,
)
from .layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, Param, ReLU
from .losses import softmax, softmax_cross_entropy
from .model import Sequential, build_model, load_model
from .optim import SGD, Adam, Momentum, Optimizer, make_optimizer
from .train import Trainer, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "Adam", "ConfigError", "Conv2D", "DataFormatError", "Dense", "DivergedError", "Flatten", "Layer",
    "MNISTNotFoundError", "MaxPool2D", "MissingDependencyError", "ModelFormatError", "ModelNotFoundError",
    "Momentum", "Optimizer", "Param", "PycnnError", "ReLU", "SGD", "Sequential", "Trainer", "build_model",
    "evaluate", "fit", "load_mnist", "load_model", "make_optimizer", "softmax", "softmax_cross_entropy",
]
