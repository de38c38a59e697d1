"""The homework's exercises, in its order, taken from pycnn's own source.

Each exercise is one function or method of pycnn: its signature and body
come from the installed package (``inspect.getsource``), so the reference
solution is the code that trains in pycnn, and the template is that
signature with a docstring giving the shapes and the body left to write.
The one exception is ``im2col``: pycnn's is a one-line transpose of a
strided-view ``unfold`` (pycnn/im2col.py, readable in the page), so its
reference here is the textbook loop over kernel offsets, checked against
pycnn's on every layout.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field

from .. import layers, losses, optim

TODO = "raise NotImplementedError"

HEADER = '''"""The pycnn homework: write each body marked `raise NotImplementedError`.

Each class below is one of pycnn's own with the methods to write left open;
everything else (constructors, params(), config(), the other layers) is
pycnn's. Images are channels-last, (N, H, W, C). Check your code with
`python -m pycnn check my_layers.py` or with Check in the page's Code card.
"""

from __future__ import annotations

import numpy as np

from pycnn import layers, ops, optim
from pycnn.im2col import col2im, output_size
from pycnn.losses import log_softmax
'''

IM2COL_REFERENCE = '''\
    n, h, w, c = x.shape
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    p = padding
    padded = np.zeros((n, h + 2 * p, w + 2 * p, c), dtype=x.dtype)
    padded[:, p:p + h, p:p + w, :] = x
    patches = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):  # one strided slice per kernel offset, not a loop over pixels
        for j in range(kw):
            patches[:, :, :, i, j, :] = padded[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
    if batch_last:
        patches = patches.transpose(1, 2, 0, 3, 4, 5)
    cols = patches.reshape(n * oh * ow, kh * kw * c)
    if ones:
        cols = np.concatenate([cols, np.ones((len(cols), 1), dtype=x.dtype)], axis=1)
    return cols
'''


@dataclass
class Exercise:
    """One function to write: ``name`` is ``Class.method`` or a function's name."""

    name: str
    doc: str  # the docstring the template and the solution carry (shapes first)
    hints: list[str]
    body: str = field(default="")  # the reference body, indented for its place in the file
    signature: str = field(default="")

    @property
    def owner(self) -> str | None:
        """The class the method belongs to, None for a module-level function."""
        return self.name.split(".")[0] if "." in self.name else None

    @property
    def function(self) -> str:
        return self.name.split(".")[-1]

    def text(self, solved: bool) -> str:
        """The function as it stands in the template (``solved=False``) or the solution."""
        indent = "    " * (2 if self.owner else 1)
        doc = textwrap.indent(f'"""{self.doc}\n"""', indent)
        body = self.body if solved else f"{indent}{TODO}(\"write {self.name}\")\n"
        return f"{self.signature}{doc}\n{body}"


def _split(func: object, indent: int) -> tuple[str, str]:
    """A function's source as (signature lines, body without its docstring), indented ``indent`` levels."""
    source = textwrap.dedent(inspect.getsource(func))
    node = ast.parse(source).body[0]
    lines = source.splitlines(keepends=True)
    first = node.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
        and isinstance(first.value.value, str)
    start = first.lineno - 1
    signature = "".join(lines[node.lineno - 1 - len(node.decorator_list):start])
    body_start = (node.body[1].lineno - 1) if has_doc and len(node.body) > 1 else start
    body = "".join(lines[body_start:])
    pad = "    " * indent
    return textwrap.indent(signature, pad), textwrap.indent(body, pad)


def _exercise(func: object, name: str, doc: str, hints: list[str]) -> Exercise:
    signature, body = _split(func, 1 if "." in name else 0)
    return Exercise(name, doc, hints, body, signature)


def _im2col() -> Exercise:
    from ..im2col import im2col
    signature, _ = _split(im2col, 0)
    doc = ("Patch matrix of ``x``: (N, H, W, C) -> (N * OH * OW, KH * KW * C).\n\n"
           "Row ``(n, i, j)`` holds the patch whose top-left corner is at\n"
           "``(i * stride - padding, j * stride - padding)`` in image ``n`` (zeros\n"
           "outside the image), in the order (kernel row, kernel column, channel);\n"
           "the rows are in the order (n, i, j), or (i, j, n) with ``batch_last``.\n"
           "``ones=True`` appends a column of ones (Conv2D adds its bias that way).\n"
           "OH = output_size(H, KH, stride, padding), OW likewise.")
    hints = ["Pad x once with zeros (padding rows and columns on each side), then copy patches out of it.",
             ("Loop over the KH * KW kernel offsets (i, j), not over pixels: offset (i, j) of every patch is the "
             "strided slice padded[:, i:i + stride*OH:stride, j:j + stride*OW:stride, :]."),
             "Fill an array (N, OH, OW, KH, KW, C) and reshape it; for batch_last transpose to (OH, OW, N, ...) first."]
    return Exercise("im2col", doc, hints, textwrap.indent(IM2COL_REFERENCE, ""), signature)


def _all() -> list[Exercise]:
    return [
        _exercise(layers.ReLU.backward, "ReLU.backward",
                  "Gradient of max(x, 0): dout (N, ...) -> dx (N, ...), same shape.\n\n"
                  "``self.positive`` is the mask ``x > 0`` that forward kept. Never write into\n"
                  "dout. (pycnn returns None when ``self.input_grad`` is False: the first\n"
                  "layer of a network needs no dx.)",
                  ["The derivative of max(x, 0) is 1 where x > 0 and 0 elsewhere.",
                   ("dx is dout where the mask is True and 0 elsewhere: ops.masked(dout, self.positive), or "
                   "np.where(self.positive, dout, 0).")]),
        _exercise(layers.Dense.forward, "Dense.forward",
                  "Affine map: x (N, D) -> x @ W + b, (N, M), with self.W.value (D, M), self.b.value (M,).\n\n"
                  "When ``training``, keep what backward needs (pycnn's backward reads self.x and self.w_t).",
                  ["out = x @ self.W.value + self.b.value; broadcasting adds b to every row.",
                   ("Keep x for the backward pass: dW needs it. pycnn spells the product ops.dense_product(x, W), "
                   "which also returns the copy of W.T its Pyodide backward reuses (self.w_t).")]),
        _exercise(layers.Dense.backward, "Dense.backward",
                  "Gradients of x @ W + b: dout (N, M) -> dx (N, D).\n\n"
                  "Assign self.W.grad (D, M) and self.b.grad (M,); return None when\n"
                  "``self.input_grad`` is False. Forward kept x (N, D) in self.x.",
                  ["dW = x.T @ dout has the shape of W, (D, M); db sums dout over the batch.",
                   "dx = dout @ W.T, (N, D).",
                   "Assign the gradients (self.W.grad = ...), do not add to them: each layer runs once per step."]),
        _exercise(losses.softmax_cross_entropy, "softmax_cross_entropy",
                  "Mean cross-entropy of softmax(logits) against integer labels.\n\n"
                  "logits (N, K) float, labels (N,) ints in [0, K) -> (loss, dlogits):\n"
                  "the mean loss as a float and its gradient (N, K) with respect to logits.",
                  [("Use log-sum-exp: subtract each row's maximum before exp so it cannot overflow "
                   "(log_softmax in pycnn/losses.py)."),
                   "loss = -mean over rows of log_softmax(logits)[n, labels[n]].",
                   "dlogits = (softmax(logits) - onehot(labels)) / N: the loss is a mean, so divide by N."]),
        _im2col(),
        _exercise(layers.Conv2D.forward, "Conv2D.forward",
                  "Convolution: x (N, H, W, C) -> (N, OH, OW, F),\n"
                  "with self.W.value (KH, KW, C, F), self.b.value (F,).\n\n"
                  "One matrix product of im2col's patches (N*OH*OW, KH*KW*C) with the weights\n"
                  "reshaped to (KH*KW*C, F). When ``training``, keep what backward needs\n"
                  "(pycnn's backward reads self.x_shape and self.cols).",
                  ["cols = im2col(x, self.kh, self.kw, self.stride, self.padding): one row per output pixel.",
                   "rows = cols @ self.W.value.reshape(-1, F) + self.b.value, then reshape to (N, OH, OW, F).",
                   ("pycnn appends a column of ones to cols (ones=True) and the bias as a last row of the weights, "
                   "and orders patches position-first for several channels (batch_last); self._images reorders.")]),
        _exercise(layers.Conv2D.backward, "Conv2D.backward",
                  "Gradients of the convolution: dout (N, OH, OW, F) -> dx (N, H, W, C).\n\n"
                  "Assign self.W.grad (KH, KW, C, F) and self.b.grad (F,); return None when\n"
                  "``self.input_grad`` is False. col2im(dcols, x_shape, kh, kw, stride, padding)\n"
                  "adds each patch entry back to the pixel it came from.",
                  ["With dz = dout as rows (N*OH*OW, F) in im2col's order: dW = cols.T @ dz, db = dz.sum(axis=0).",
                   "dcols = dz @ W.reshape(-1, F).T, (N*OH*OW, KH*KW*C); dx = col2im(dcols, ...).",
                   ("pycnn's forward kept cols with a column of ones: the last row of cols.T @ dz is then db. "
                   "self._order permutes dout's axes into the order of the patches (ops.gradient_rows).")]),
        _exercise(optim.SGD.step, "SGD.step",
                  "One step of gradient descent on every Param p in self.params: p.value -= lr * gradient.\n\n"
                  "self.gradient(p) is p.grad plus the weight decay term. Update in place.",
                  ["for p in self.params: p.value -= self.lr * self.gradient(p)",
                   "Update in place (-=): the layers hold references to the same arrays."]),
        _exercise(optim.Momentum.step, "Momentum.step",
                  "One step of SGD with momentum on every Param (self.velocity: one array per Param).\n\n"
                  "v = momentum * v - lr * g, then value += v; with self.nesterov,\n"
                  "value += momentum * v - lr * g. Update v and the values in place.",
                  ["zip(self.params, self.velocity) pairs each Param with its velocity.",
                   "v *= self.momentum; v -= self.lr * g changes the velocity in place, so the next step sees it.",
                   "Nesterov looks one step ahead: value += momentum * v - lr * g (after updating v)."]),
    ]


EXERCISES: list[Exercise] = _all()
BY_NAME = {e.name: e for e in EXERCISES}
BASES = {"ReLU": "layers.ReLU", "Dense": "layers.Dense", "Conv2D": "layers.Conv2D",
         "SGD": "optim.SGD", "Momentum": "optim.Momentum"}


def file_text(solved: bool = False) -> str:
    """The whole homework file: every exercise in order (the template, or with pycnn's bodies)."""
    parts, current = [HEADER], None
    for exercise in EXERCISES:
        owner = exercise.owner
        if owner != current or owner is None:
            parts.append(f"\n\nclass {owner}({BASES[owner]}):\n" if owner else "\n\n")
            current = owner
        elif owner:
            parts.append("\n")
        parts.append(exercise.text(solved))
    return "".join(parts)
