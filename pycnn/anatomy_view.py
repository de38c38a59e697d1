"""What the page draws of one step taken apart (:func:`pycnn.anatomy.take_step`): a list of stages.

Each stage is a plain dict with ``"kind"`` ("input" | "forward" | "loss" |
"backward" | "update"), a ``"title"``, the array's ``"shape"`` (no batch
axis), a one-line ``"formula"`` and a one-sentence ``"explanation"``, and one
picture of its numbers: ``"maps"`` (an image block, see :mod:`pycnn.insight`,
for (H, W, C) arrays: one image per channel) or ``"values"`` (a list of
floats for vectors, at most :data:`MAX_VALUES` of ``"values_total"``).
Activations are grey (0 black, the layer's largest white); gradients and
changes are red (positive) and blue (negative), scaled by the layer's
largest size so the maps of one layer compare.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Step, first_conv
from .insight import image_block
from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

MAX_VALUES = 128  # bars the page draws for a vector
RED, BLUE = np.array([214, 39, 40], np.float32), np.array([31, 90, 200], np.float32)

FORWARD = {
    Conv2D: ("y[i,j,f] = b[f] + Σ_u,v,c W[u,v,c,f] · x[i+u, j+v, c]",
             "Each filter slides over its input and measures how much every patch looks like it: one map per filter."),
    ReLU: ("y = max(x, 0)", "Negative values become 0, so a map keeps only where its pattern was found."),
    MaxPool2D: ("y[i,j,c] = max of x over the window at (i, j)",
                "Each window keeps its strongest value: the maps shrink and small shifts matter less."),
    Flatten: ("y = x laid out as one vector", "The maps become one long list of numbers for the dense layers."),
    Dense: ("y = x · W + b", "Every output is a weighted sum of all the inputs plus a bias."),
}
BACKWARD = {
    Conv2D: ("∂L/∂W[u,v,c,f] = Σ_i,j x[i+u, j+v, c] · ∂L/∂y[i,j,f];  ∂L/∂b[f] = Σ_i,j ∂L/∂y[i,j,f]",
             "A filter's gradient adds up the patches it saw, each weighted by how much its output should change."),
    ReLU: ("∂L/∂x = ∂L/∂y where x > 0, else 0", "The gradient passes only where the value was positive."),
    MaxPool2D: ("∂L/∂x = ∂L/∂y at each window's maximum, 0 elsewhere",
                "Only the value that won each window gets the window's gradient."),
    Flatten: ("∂L/∂x = ∂L/∂y shaped back into maps", "The same numbers, laid out as maps again."),
    Dense: ("∂L/∂W = xᵀ · ∂L/∂y;  ∂L/∂b = ∂L/∂y;  ∂L/∂x = ∂L/∂y · Wᵀ",
            "A weight's gradient is its input times the gradient of its output; the input's is sent back through W."),
}
UPDATE = {"sgd": "W ← W − lr · ∂L/∂W", "momentum": "v ← μ·v − lr · ∂L/∂W;  W ← W + v",
          "adam": "W ← W − lr · m̂ / (√v̂ + ε)  (m̂, v̂: running means of ∂L/∂W and its square)"}
LOSS = ("L = −log softmax(z)[y] = log Σ_k e^z_k − z_y;  ∂L/∂z = softmax(z) − onehot(y)",
        "The loss is small when the true digit gets a high probability; its gradient says how each score should move.")
EXPLANATION = ("One training step on this image, the same calls as training: the forward pass computes every "
               "layer's output, the loss compares the scores with the label, the backward pass sends the loss's "
               "gradient back layer by layer, and the optimizer moves every weight against its gradient.")


def grey_maps(a: np.ndarray) -> dict:
    """(H, W, C) activations -> C grey images, 0 (or the minimum) black and the largest white."""
    maps = a.transpose(2, 0, 1)
    lo = min(float(maps.min()), 0.0)
    span = float(maps.max()) - lo
    return image_block(np.rint(255 * (maps - lo) / (span if span > 0 else 1)).astype(np.uint8))


def signed_maps(maps: np.ndarray) -> dict:
    """(N, H, W) signed numbers -> N images on white: red positive, blue negative, by size over the largest."""
    scale = float(np.abs(maps).max())
    g = maps / scale if scale > 0 else np.zeros_like(maps)
    strength = np.abs(g)[..., None]
    colour = np.where((g > 0)[..., None], RED, BLUE)
    rgba = np.full((*maps.shape, 4), 255, dtype=np.uint8)
    rgba[..., :3] = np.rint(255 * (1 - strength) + colour * strength)
    n, h, w = maps.shape
    return {"count": n, "height": h, "width": w, "format": "rgba", "pixels": rgba.tobytes()}


def filter_images(w: np.ndarray, scale: np.ndarray) -> dict:
    """Filters (KH, KW, C, F), mean over C, as F grey images: 0 mid-grey, ±scale[f] white/black."""
    f = w.mean(axis=2).transpose(2, 0, 1)
    safe = np.where(scale > 0, scale, 1)[:, None, None]
    return image_block(np.rint(127.5 * (1 + np.clip(f / safe, -1, 1))).astype(np.uint8))


def _picture(a: np.ndarray, signed: bool) -> dict:
    """``maps`` for (H, W, C), ``values`` for vectors."""
    if a.ndim == 3:
        return {"maps": signed_maps(a.transpose(2, 0, 1)) if signed else grey_maps(a)}
    return {"values": [float(v) for v in a[:MAX_VALUES]], "values_total": int(a.size)}


def _stats(a: np.ndarray) -> dict:
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "norm": float(np.linalg.norm(a))}


def _stage(kind: str, title: str, a: np.ndarray, formula: str, explanation: str, signed: bool) -> dict:
    return {"kind": kind, "title": title, "shape": list(a.shape), "formula": formula,
            "explanation": explanation, "stats": _stats(a), **_picture(a, signed)}


def step_view(step: Step) -> dict:
    """The stages of ``step`` in the order the page steps through them, and its headline numbers:
    {"label", "digit", "loss", "loss_after", "optimizer", "lr", "explanation", "stages": [...]}."""
    net = step.model
    stages = [_stage("input", "Input image", step.image[0], "x: the 28×28 digit, ink 1, paper 0",
                     "The network sees the drawing as 784 numbers between 0 and 1.", False)]
    for name, layer, out in zip(net.names, net.layers, step.outputs, strict=True):
        formula, why = FORWARD[type(layer)]
        stages.append(_stage("forward", f"Forward · {name} ({type(layer).__name__})", out[0], formula, why, False))
    stages.append({"kind": "loss", "title": "Loss", "shape": [net.num_classes], "formula": LOSS[0],
                   "explanation": LOSS[1], "label": step.label, "loss": step.loss,
                   "probs": [float(p) for p in step.probs], "values": [float(v) for v in step.gradients[-1][0]],
                   "values_total": net.num_classes})
    for i in reversed(range(len(net.layers))):
        layer, name = net.layers[i], net.names[i]
        formula, why = BACKWARD[type(layer)]
        stage = _stage("backward", f"Backward · gradient reaching {name}'s output", step.gradients[i][0],
                       formula, why, True)
        stage["params"] = [{"name": p.name, "shape": list(p.value.shape),
                            "grad_norm": float(np.linalg.norm(step.param_grads[p.name])),
                            "grad_max": float(np.abs(step.param_grads[p.name]).max())} for p in layer.params()]
        if isinstance(layer, Conv2D):
            stage["filter_grads"] = signed_maps(step.param_grads[f"{name}.W"].mean(axis=2).transpose(2, 0, 1))
        stages.append(stage)
    stages.append(_update(step))
    return {"label": step.label, "digit": int(step.probs.argmax()), "loss": step.loss,
            "loss_after": step.loss_after, "optimizer": step.optimizer, "lr": step.lr,
            "explanation": EXPLANATION, "stages": stages}


def _update(step: Step) -> dict:
    """The update stage: the first convolution's filters before, after and the change."""
    name = first_conv(step.model)
    formula = UPDATE[step.optimizer]
    stage = {"kind": "update", "title": f"Update · {name or 'weights'}", "formula": formula,
             "explanation": (f"The optimizer ({step.optimizer}, learning rate {step.lr:g}) moves every weight a "
                             f"little against its gradient: the loss on this image goes from {step.loss:.3f} "
                             f"to {step.loss_after:.3f}."),
             "loss_before": step.loss, "loss_after": step.loss_after}
    if name is None:
        return stage
    w0, w1 = step.before[f"{name}.W"], step.after[f"{name}.W"]
    scale = np.maximum(np.abs(w0).max(axis=(0, 1, 2)), np.abs(w1).max(axis=(0, 1, 2)))
    change = w1 - w0
    stage.update(shape=list(w0.shape), before=filter_images(w0, scale), after=filter_images(w1, scale),
                 change=signed_maps(change.mean(axis=2).transpose(2, 0, 1)),
                 relative_change=float(np.linalg.norm(change) / max(np.linalg.norm(w0), 1e-12)),
                 largest_change=float(np.abs(change).max()))
    return stage
