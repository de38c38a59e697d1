"""One training step taken apart: forward layer by layer, the loss, backward layer by layer, the update.

:func:`take_step` runs exactly what :class:`~pycnn.train.Trainer` runs for a
batch of one image (``Sequential.forward``, ``softmax_cross_entropy``,
``Sequential.backward``, ``optimizer.step()``) on a copy of the model, and
keeps every intermediate array; :func:`step_view` (in
:mod:`pycnn.anatomy_view`) turns them into what the page draws. The model
passed in is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .layers import Conv2D
from .losses import softmax, softmax_cross_entropy
from .model import Sequential, load_model
from .optim import DEFAULT_LR, OPTIMIZERS, make_optimizer


@dataclass
class Step:
    """Every number of one step on one image; arrays keep the batch axis N = 1.

    ``outputs[i]`` is layer i's output; ``gradients[i]`` the gradient of the
    loss reaching layer i's output (so ``gradients[-1]`` is dL/dlogits);
    ``param_grads`` maps "conv1.W"-style names to dL/dparam; ``before`` and
    ``after`` map the same names to the values around the optimizer's step.
    """

    model: Sequential  # the copy, after the update
    image: np.ndarray  # (1, H, W, C) float32, the network's input
    label: int
    outputs: list[np.ndarray]
    loss: float
    probs: np.ndarray  # (K,)
    gradients: list[np.ndarray]
    param_grads: dict[str, np.ndarray]
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    optimizer: str
    lr: float
    loss_after: float  # the loss on the same image with the updated weights


def copy_model(model: Sequential) -> Sequential:
    """An independent copy (its own weights) through the model file format."""
    return load_model(model.to_bytes())


def take_step(model: Sequential, image: np.ndarray, label: int, optimizer: str = "sgd",
              lr: float | None = None, momentum: float = 0.9) -> Step:
    """One training step of a copy of ``model`` on one image (H, W) with its ``label``.

    ``image`` is uint8 in 0..255 or float in [0, 1], as ``Sequential.as_images``
    takes; ``optimizer`` is "sgd", "momentum" or "adam" (a fresh one, as at
    a run's first step) with learning rate ``lr`` (default: the page's for it).
    """
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if isinstance(label, bool) or int(label) != label or not 0 <= label < model.num_classes:
        raise ConfigError(f"the label must be a whole number from 0 to {model.num_classes - 1}, got {label!r}")
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)
    net = copy_model(model)
    x = net.as_images(np.asarray(image)[None])
    y = np.array([int(label)])
    outputs: list[np.ndarray] = []
    logits = net.forward(x, training=True, outputs=outputs)
    loss, dlogits = softmax_cross_entropy(logits, y)
    gradients: list[np.ndarray] = []
    net.backward(dlogits, gradients=gradients)
    gradients.reverse()  # in layer order, like outputs
    params = net.params()
    before = {p.name: p.value.copy() for p in params}
    grads = {p.name: p.grad.copy() for p in params}
    make_optimizer(optimizer, params, lr, momentum).step()
    after = {p.name: p.value.copy() for p in params}
    loss_after, _ = softmax_cross_entropy(net.forward(x, training=False), y)
    return Step(net, x, int(label), outputs, loss, softmax(logits)[0], gradients, grads, before, after,
                optimizer, lr, loss_after)


def first_conv(model: Sequential) -> str | None:
    """The name of the first convolution (whose filters the update view shows), or None."""
    for name, layer in zip(model.names, model.layers, strict=True):
        if isinstance(layer, Conv2D):
            return name
    return None
