"""Property-based fuzzing: damaged or random input to every loader raises only PycnnError.

Random bytes, and real files (small IDX, gzip, .npz and HDF5 data files made
here, and the shipped static/pretrained.npz) cut short or with bits flipped,
go to parse_idx, mnist_from_idx_buffers, load_mnist, load_model and the
page's load_model_file / set_dataset. Any exception other than a
one-line PycnnError is a bug. Example counts are modest so the file runs in
seconds.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycnn import web
from pycnn.data import IDX_FILES, load_mnist, mnist_from_idx_buffers, parse_idx
from pycnn.errors import PycnnError
from pycnn.model import load_model

PRETRAINED = (Path(__file__).resolve().parent.parent / "static" / "pretrained.npz").read_bytes()
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def idx(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()


RNG = np.random.default_rng(0)
SPLIT = {"x_train": RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8), "y_train": np.array([0, 1, 2, 9]),
         "x_test": RNG.integers(0, 256, (2, 28, 28), dtype=np.uint8), "y_test": np.array([3, 4])}
IDX_IMAGES, IDX_LABELS = idx(SPLIT["x_test"]), idx(SPLIT["y_test"])


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def hdf5_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for key, a in arrays.items():
            f[key] = a
    return buf.getvalue()


DATA_NPZ = npz_bytes(**SPLIT)
DATA_HDF5 = hdf5_bytes(SPLIT)


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """``original`` cut short, with a few bits flipped, or both."""
    data = bytearray(original)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0 if len(data) else 0, 4))):
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


def only_pycnn_errors(call) -> None:
    """``call()`` either succeeds or raises a one-line PycnnError; anything else propagates."""
    try:
        with np.errstate(all="ignore"):
            call()
    except PycnnError as exc:
        assert "\n" not in str(exc) and str(exc)


# ---------------------------------------------------------------- IDX


@FUZZ
@given(st.binary(max_size=2000))
def test_parse_idx_random_bytes(data):
    only_pycnn_errors(lambda: parse_idx(data, name="fuzz"))


@FUZZ
@given(st.one_of(damaged(IDX_IMAGES), damaged(IDX_LABELS), damaged(gzip.compress(IDX_IMAGES)),
                 damaged(gzip.compress(IDX_LABELS))))
def test_parse_idx_damaged_files(data):
    only_pycnn_errors(lambda: parse_idx(data, name="fuzz"))


@FUZZ
@given(st.sampled_from(list(IDX_FILES)), st.data())
def test_idx_buffers_with_one_damaged(key, draw):
    buffers = {k: idx(a) for k, a in SPLIT.items()}
    buffers[key] = draw.draw(damaged(buffers[key]))
    only_pycnn_errors(lambda: mnist_from_idx_buffers(*buffers.values()))


@FUZZ
@given(st.sampled_from(list(IDX_FILES)), st.booleans(), st.data())
def test_load_mnist_idx_folder_with_one_damaged_file(tmp_path_factory, key, gz, draw):
    folder = tmp_path_factory.mktemp("idx")
    for k, a in SPLIT.items():
        raw = gzip.compress(idx(a)) if gz else idx(a)
        if k == key:
            raw = draw.draw(damaged(raw))
        (folder / (IDX_FILES[k][0] + (".gz" if gz else ""))).write_bytes(raw)
    only_pycnn_errors(lambda: load_mnist(folder))


# ---------------------------------------------------------------- .npz and HDF5 data files


@FUZZ
@given(st.one_of(damaged(DATA_NPZ), st.binary(max_size=500)))
def test_load_mnist_npz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "mnist.npz"
    path.write_bytes(data)
    only_pycnn_errors(lambda: load_mnist(path))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(damaged(DATA_HDF5), st.binary(max_size=500)))
def test_load_mnist_hdf5(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("h5") / "MNISTdata.hdf5"
    path.write_bytes(data)
    only_pycnn_errors(lambda: load_mnist(path))


# ---------------------------------------------------------------- model files


@FUZZ
@given(st.one_of(damaged(PRETRAINED), st.binary(max_size=2000), damaged(npz_bytes(architecture=np.array("{}")))))
def test_load_model_damaged_pretrained_and_random_bytes(data):
    only_pycnn_errors(lambda: load_model(data))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, len(PRETRAINED)))
def test_load_model_every_truncation_is_refused(cut):
    only_pycnn_errors(lambda: load_model(PRETRAINED[:cut]))
    if cut < len(PRETRAINED):
        try:
            load_model(PRETRAINED[:cut])
        except PycnnError:
            return
        raise AssertionError(f"a pretrained.npz cut at {cut} bytes was accepted")


@FUZZ
@given(damaged(PRETRAINED))
def test_page_model_upload(data):
    only_pycnn_errors(lambda: web.load_model_file(data))


@FUZZ
@given(st.binary(max_size=800), st.binary(max_size=10), st.lists(st.integers(-3, 40), max_size=4))
def test_page_dataset_buffers(images, labels, shape):
    only_pycnn_errors(lambda: web.set_dataset(images, labels, images, labels, shape, shape))
