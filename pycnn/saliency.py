"""Saliency: which input pixels push a class score up or down.

The saliency map of class ``c`` for an image ``x`` is ``d z_c / d x``, the
gradient of the class's score (its logit, before the softmax) with respect
to each input pixel: one forward pass and one backward pass of the model's
own ``forward``/``backward`` with ``dlogits`` the one-hot vector of ``c``,
asking the first layer for the input gradient it skips during training.
A positive value means more ink there would raise the score of ``c``.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .losses import softmax
from .model import Sequential

EXPLANATION = ("Red pixels would raise the chosen digit's score if they had more ink, blue ones would lower it: "
               "the gradient of that score with respect to each input pixel, from one backward pass.")


def class_gradient(model: Sequential, image: np.ndarray,
                   target: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``d logit[target] / d image`` for one float image (H, W) in [0, 1].

    Returns the gradient (H, W) float32, the probabilities (K,) and the
    target (the predicted class when ``target`` is None). Overwrites the
    model's ``Param.grad`` (a model in training must not be passed).
    """
    x = model.as_images(np.asarray(image)[None])
    logits = model.forward(x, training=True)
    probs = softmax(logits)[0]
    if target is None:
        target = int(probs.argmax())
    if isinstance(target, bool) or int(target) != target or not 0 <= target < model.num_classes:
        raise ConfigError(f"the class must be a whole number from 0 to {model.num_classes - 1}, got {target!r}")
    target = int(target)
    dlogits = np.zeros_like(logits)
    dlogits[0, target] = 1
    dx = model.backward(dlogits, input_grad=True)
    return dx[0, ..., 0].astype(np.float32), probs, target


RED, BLUE = np.array([214, 39, 40], np.float32), np.array([31, 90, 200], np.float32)


def overlay(image: np.ndarray, gradient: np.ndarray) -> dict:
    """An RGBA image block (1, H, W) of ``gradient`` (H, W) over the faint digit ``image`` (H, W):
    red where it is positive, blue where negative, as strong as its size over the largest."""
    scale = float(np.abs(gradient).max())
    g = gradient / scale if scale > 0 else np.zeros_like(gradient)
    base = (255 - 90 * np.clip(image, 0, 1))[..., None]  # the digit in light grey under the colours
    strength = np.abs(g)[..., None]
    colour = np.where((g > 0)[..., None], RED, BLUE)
    rgba = np.full((*gradient.shape, 4), 255, dtype=np.uint8)
    rgba[..., :3] = np.rint(base * (1 - strength) + colour * strength)
    return {"count": 1, "height": gradient.shape[0], "width": gradient.shape[1], "format": "rgba",
            "pixels": rgba.tobytes()}


def saliency_map(model: Sequential, image: np.ndarray, target: int | None = None) -> dict:
    """The page's saliency view of one float image (H, W) in [0, 1] for class ``target``
    (default: the predicted one): {"digit": predicted, "target", "probs": [K], "gradient": [H*W],
    "scale": largest |gradient|, "image": RGBA image block of the map over the digit, "explanation"}."""
    gradient, probs, target = class_gradient(model, image, target)
    return {"digit": int(probs.argmax()), "target": target, "probs": [float(p) for p in probs],
            "gradient": [float(v) for v in gradient.ravel()], "scale": float(np.abs(gradient).max()),
            "image": overlay(np.asarray(image, np.float32), gradient), "explanation": EXPLANATION}

