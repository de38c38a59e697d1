"""How much an input may ask for, checked before anything is allocated.

A file's header or a model's architecture states sizes; a hostile or broken
one can state sizes whose memory no machine has (or a tiny compressed file
can expand to gigabytes). Every reader compares what is declared with these
bounds first and refuses, saying what was asked and what is allowed.
"""

from __future__ import annotations

import math

import numpy as np

MAX_IMAGES = 10_000_000          # images (or labels) in one array of a data file
MAX_SIDE = 1024                  # pixels along an image's height or width
MAX_ARRAY_BYTES = 10**9          # bytes of one array of a data file (1.27 million MNIST-size images)
MAX_PARAMS = 50_000_000          # trainable numbers of a model (200 MB as float32)
MAX_TRAINING_MEMORY = 4 * 10**9  # estimated bytes of one training step (see config.check_memory)
# Real images and weights compress a few times at most (MNIST's gzip files: 4.8 times); an array
# that would expand more than MAX_EXPANSION times, to over EXPANSION_FLOOR bytes, is refused
# as a decompression bomb before it is expanded.
MAX_EXPANSION = 100
EXPANSION_FLOOR = 64 * 10**6


def size(nbytes: float) -> str:
    """Bytes for a message: '784 B', '47.0 MB', '7.8 TB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


DATA_BOUNDS = (f"pycnn reads at most {MAX_IMAGES:,} images of at most {MAX_SIDE}x{MAX_SIDE} pixels, "
               f"{size(MAX_ARRAY_BYTES)} per array")


def data_array_problem(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why an image or label array of this declared shape and dtype is too large to read, or None.

    The first axis counts images; a 3-d array's next two axes are (H, W).
    """
    nbytes = math.prod(shape) * dtype.itemsize
    count = shape[0] if shape else 1
    sides = shape[1:3] if len(shape) == 3 else ()
    if nbytes <= MAX_ARRAY_BYTES and count <= MAX_IMAGES and all(s <= MAX_SIDE for s in sides):
        return None
    return f"declares shape {tuple(shape)} {dtype} ({size(nbytes)}); {DATA_BOUNDS}"


def params_problem(count: int) -> str | None:
    """Why a model of ``count`` parameters is too large to build, or None."""
    if count <= MAX_PARAMS:
        return None
    return (f"{count:,} parameters ({size(4 * count)} as float32, several times that to train); "
            f"pycnn builds models of at most {MAX_PARAMS:,} parameters")


def expansion_problem(declared: int, compressed: int) -> str | None:
    """Why ``compressed`` bytes said to expand to ``declared`` bytes look like a decompression bomb, or None."""
    if declared <= EXPANSION_FLOOR or declared <= MAX_EXPANSION * compressed:
        return None
    return (f"would expand {compressed:,} compressed bytes to {size(declared)}, {declared / max(compressed, 1):,.0f} "
            f"times; real data compresses far less: pycnn refuses more than {MAX_EXPANSION} times over "
            f"{size(EXPANSION_FLOOR)} (a decompression bomb?)")
