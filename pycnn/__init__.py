"""pycnn: a convolutional neural network from scratch in pure NumPy.

The data's path: :func:`load_mnist` gives uint8 images (N, 28, 28) and int
labels; :class:`Trainer` scales each batch to float32 (N, 28, 28, 1), calls
``Sequential.forward`` for logits (N, 10), :func:`softmax_cross_entropy`
for the loss and its gradient, ``Sequential.backward`` to fill every
``Param.grad``, and ``optimizer.step()`` to update the weights.
"""

from .data import load_mnist
from .layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, Param, ReLU
from .losses import softmax, softmax_cross_entropy
from .model import ModelFormatError, Sequential, build_model, load_model
from .optim import SGD, Adam, Momentum, Optimizer, make_optimizer
from .train import DivergedError, Trainer, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "Adam", "Conv2D", "Dense", "DivergedError", "Flatten", "Layer", "MaxPool2D",
    "ModelFormatError", "Momentum", "Optimizer", "Param", "ReLU", "SGD", "Sequential",
    "Trainer", "build_model", "evaluate", "fit", "load_mnist", "load_model",
    "make_optimizer", "softmax", "softmax_cross_entropy",
]
