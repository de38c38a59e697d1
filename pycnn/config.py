"""Checking training settings: the one validation shared by the CLI and the page.

``check_training`` and ``check_conv`` raise :class:`ConfigError` with a
message naming the setting, the value and what would work; ``check_limit``
turns a requested training-set size into one that fits the data.
"""

from __future__ import annotations

import math
from numbers import Real

from .errors import ConfigError
from .limits import MAX_TRAINING_MEMORY
from .limits import size as _size


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def positive_number(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {_shown(value)}")
    return float(value)


def whole_number(name: str, value: object, low: int = 1) -> int:
    """``value`` as an int if it is a whole number >= ``low``, else ConfigError."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value) and value == int(value)
    if not ok or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {_shown(value)}")
    return int(value)


def check_training(lr: object, epochs: object, batch_size: object) -> tuple[float, int, int]:
    """Learning rate (finite, > 0), epochs and batch size (whole, >= 1), typed."""
    return (positive_number("learning rate", lr), whole_number("epochs", epochs),
            whole_number("batch size", batch_size))


def check_lr_decay(value: object) -> float:
    """The factor the learning rate is multiplied by after every epoch: in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value <= 1:
        raise ConfigError(f"lr_decay must be in (0, 1], got {_shown(value)}")
    return float(value)


def check_memory(num_params: int, activations: int, batch_size: int) -> None:
    """Refuse a model and batch size whose training would need more than MAX_TRAINING_MEMORY.

    ``activations`` is how many numbers all layers output for one image. The
    estimate, in float32: the parameters five times (values, gradients, Adam's
    two moments, the copy kept in case an update diverges), and every layer's
    output three times per image of the batch (the output, its gradient, and
    convolution patches of about that size).
    """
    estimate = 4 * (5 * num_params + 3 * batch_size * activations)
    if estimate > MAX_TRAINING_MEMORY:
        raise ConfigError(
            f"these settings need about {_size(estimate)} of memory to train ({num_params:,} parameters, "
            f"{activations:,} activations per image, batch {batch_size}); pycnn trains within "
            f"{_size(MAX_TRAINING_MEMORY)}: use a smaller batch, fewer filters or smaller images")


def check_conv(n_filter: object, h_filter: object, w_filter: object, stride: object, padding: object,
               img_height: int = 28, img_width: int = 28) -> None:
    """The seed model's convolution must fit the image and tile it exactly.

    The filter may not be larger than the padded image, and
    ``(size + 2*padding - filter) / stride + 1`` must be a whole number along
    both axes (the original assignment asserted it); the message says which
    strides, paddings or filter sizes would work.
    """
    whole_number("number of filters", n_filter)
    stride, padding = whole_number("stride", stride), whole_number("padding", padding, low=0)
    for axis, size, kernel in (("height", img_height, h_filter), ("width", img_width, w_filter)):
        kernel = whole_number(f"filter {axis}", kernel)
        _check_axis(axis, size, kernel, stride, padding)


def _check_axis(axis: str, size: int, kernel: int, stride: int, padding: int) -> None:
    padded = size + 2 * padding
    if kernel > padded:
        raise ConfigError(
            f"a filter {kernel} pixels in {axis} is larger than the padded image ({size} + 2*{padding} = "
            f"{padded}); use a filter of at most {padded} or padding of at least {math.ceil((kernel - size) / 2)}")
    span = padded - kernel
    if span % stride == 0:
        return
    strides = [s for s in range(1, span + 1) if span % s == 0] or [1]
    paddings = [p for p in range(0, kernel) if size + 2 * p >= kernel and (size + 2 * p - kernel) % stride == 0]
    kernels = [k for k in range(1, padded + 1) if (padded - k) % stride == 0]
    kernels = sorted(kernels, key=lambda k: (abs(k - kernel), k))[:2]
    fixes = [f"with padding {padding} use stride {_either(strides[:6])}"]
    if paddings:
        fixes.append(f"with stride {stride} use padding {_either(paddings[:4])}")
    fixes.append(f"with stride {stride} and padding {padding} use a filter of {_either(sorted(kernels))}")
    raise ConfigError(
        f"stride {stride} does not tile the image's {axis}: ({size} + 2*{padding} - {kernel}) / {stride} + 1 = "
        f"{span / stride + 1:g} is not a whole number of positions; " + ", or ".join(fixes))


def _either(values: list[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_limit(limit: object, available: int) -> tuple[int, str | None]:
    """How many training images to use for ``--limit``/training-set size ``limit``.

    None means all. Returns (count, note): a limit above ``available`` uses
    all of them, and the note says so; a limit < 1 is a ConfigError.
    """
    if limit is None:
        return available, None
    limit = whole_number("the training-set size (--limit)", limit)
    if limit > available:
        return available, f"the data has only {available:,} training images; using all of them (asked for {limit:,})"
    return limit, None
