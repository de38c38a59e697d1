"""Your own handwritten digits: their file, mixing them into MNIST, and fine-tuning a model on them.

Digits file format (one ``.npz``, no pickles), what the page's "Download your
digits" writes and ``pycnn train --extra FILE`` reads:

- ``format``: the string ``"pycnn-digits"``; ``version``: 1 (newer is refused);
- ``images``: uint8 (N, 28, 28), ink 255 on paper 0, preprocessed as MNIST
  (the page's 28x28 input, see :mod:`pycnn.preprocess`);
- ``labels``: uint8 (N,) in 0..9.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np

from .anatomy import copy_model
from .errors import ConfigError, DataFormatError
from .model import Sequential
from .optim import make_optimizer
from .train import Trainer

FORMAT, VERSION = "pycnn-digits", 1
MAX_DIGITS = 10_000
REPEAT = 20  # copies of each digit mixed into MNIST: a few dozen digits then weigh like a few hundred images
TEST_COUNT = 2000  # test images measured before and after fine-tuning: about a second each way in the browser
FINE_TUNE = {"optimizer": "adam", "lr": 3e-4, "batch_size": 32, "mnist": 2000}


def check_digits(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated uint8 images (N, 28, 28) and int64 labels (N,) in 0..9, or DataFormatError."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataFormatError(f"digits must be uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise DataFormatError(f"expected {len(images)} whole-number labels, got {labels.dtype} {labels.shape}")
    if not 1 <= len(images) <= MAX_DIGITS:
        raise DataFormatError(f"a digits file holds 1 to {MAX_DIGITS:,} digits, got {len(images):,}")
    if labels.min() < 0 or labels.max() > 9:
        raise DataFormatError(f"digit labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def digits_to_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The digits file (see the module docstring) of images (N, 28, 28) and labels (N,)."""
    images, labels = check_digits(images, labels)
    buf = io.BytesIO()
    np.savez_compressed(buf, format=np.array(FORMAT), version=np.array(VERSION),
                        images=images, labels=labels.astype(np.uint8))
    return buf.getvalue()


def read_digits(data: bytes | str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 from a digits file's bytes or path."""
    what = "the digits file" if isinstance(data, (bytes, bytearray, memoryview)) else str(data)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        path = Path(data)
        if not path.is_file():
            raise ConfigError(f"no digits file at {path}: give the .npz downloaded from the page's "
                              "“Download your digits”")
        data = path.read_bytes()
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            if "format" not in npz.files or str(npz["format"]) != FORMAT:
                raise DataFormatError(f"{what} is not a pycnn digits file (no format {FORMAT!r})")
            if "version" in npz.files and int(npz["version"]) > VERSION:
                raise DataFormatError(f"{what} is version {int(npz['version'])}; this pycnn reads version {VERSION}")
            if not {"images", "labels"} <= set(npz.files):
                raise DataFormatError(f"{what} lacks its images or labels")
            images, labels = npz["images"], npz["labels"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{what} is not a readable .npz file ({exc})") from None
    try:
        return check_digits(images, labels)
    except DataFormatError as exc:
        raise DataFormatError(f"{what}: {exc}") from None


def mix(x: np.ndarray, y: np.ndarray, extra_x: np.ndarray, extra_y: np.ndarray,
        repeat: int = REPEAT) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``x`` (N, 28, 28) and labels (N,) followed by ``repeat`` copies of the extra digits.
    (The training loop shuffles every epoch, so where they sit does not matter.)"""
    if isinstance(repeat, bool) or int(repeat) != repeat or repeat < 1:
        raise ConfigError(f"the number of copies of your digits must be a whole number >= 1, got {repeat!r}")
    return (np.concatenate([x, np.tile(extra_x, (int(repeat), 1, 1))]),
            np.concatenate([np.asarray(y, np.int64), np.tile(np.asarray(extra_y, np.int64), int(repeat))]))


def _accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean())


def fine_tune(model: Sequential, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              y_test: np.ndarray, digits: np.ndarray, labels: np.ndarray, seconds: float = 3.0,
              seed: int = 0) -> tuple[Sequential, dict]:
    """Train a copy of ``model`` for about ``seconds`` on MNIST mixed with your ``digits`` (N, 28, 28).

    Each batch holds MNIST images and copies of your digits (a quarter or
    so), so the model learns your hand without forgetting MNIST; the test
    accuracy on the first :data:`TEST_COUNT` test images is measured before
    and after to say if it did. Returns the new model and a report:
    {"digits": [{"label", "before", "after", "before_p", "after_p"}], "test_before", "test_after",
    "test_count", "dropped", "steps", "seconds", "message"}.
    """
    digits, labels = check_digits(digits, labels)
    if not 0.1 <= seconds <= 60:
        raise ConfigError(f"fine-tuning time must be between 0.1 and 60 seconds, got {seconds!r}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_train), size=min(FINE_TUNE["mnist"], len(x_train)), replace=False)
    repeat = max(1, FINE_TUNE["mnist"] // (3 * len(digits)))
    x, y = mix(x_train[pick], np.asarray(y_train)[pick], digits, labels, repeat)
    x_t, y_t = x_test[:TEST_COUNT], np.asarray(y_test)[:TEST_COUNT]
    net = copy_model(model)
    before_p, test_before = net.predict_proba(digits), _accuracy(net, x_t, y_t)
    opt = make_optimizer(FINE_TUNE["optimizer"], net.params(), FINE_TUNE["lr"])
    trainer = Trainer(net, x, y, optimizer=opt, batch_size=FINE_TUNE["batch_size"], epochs=1000, seed=seed)
    start = time.perf_counter()
    trainer.run(max_seconds=float(seconds))
    spent = time.perf_counter() - start
    after_p, test_after = net.predict_proba(digits), _accuracy(net, x_t, y_t)
    rows = [{"label": int(t), "before": int(b.argmax()), "after": int(a.argmax()),
             "before_p": float(b[t]), "after_p": float(a[t])}
            for t, b, a in zip(labels, before_p, after_p, strict=True)]
    right_before = sum(r["before"] == r["label"] for r in rows)
    right_after = sum(r["after"] == r["label"] for r in rows)
    dropped = test_after < test_before
    change = (f"dropped by {100 * (test_before - test_after):.1f} points" if dropped
              else "did not drop")
    message = (f"Fine-tuned for {spent:.1f} s ({trainer.step} steps) on MNIST mixed with your {len(rows)} digits: "
               f"{right_after} of {len(rows)} now recognised (before: {right_before}). Test accuracy on "
               f"{len(y_t):,} test images: {100 * test_before:.1f}% → {100 * test_after:.1f}%, it {change}.")
    return net, {"digits": rows, "test_before": test_before, "test_after": test_after, "test_count": len(y_t),
                 "dropped": bool(dropped), "steps": trainer.step, "seconds": spent, "message": message}
