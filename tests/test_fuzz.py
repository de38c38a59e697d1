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
import json
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

import pycnn
from pycnn import web
from pycnn.data import IDX_FILES, load_mnist, mnist_from_idx_buffers, parse_idx
from pycnn.errors import MAX_MESSAGE, PycnnError
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


# ---------------------------------------------------------------- bombs: memory bounded by the input
#
# Each bomb is a small file (about 130 kB to 1 MB) that declares, or expands to, hundreds of
# megabytes or more. Each must be refused with a PycnnError while the memory Python allocates
# (tracemalloc: NumPy's arrays included) stays under PEAK.

PEAK = 50e6
BOMB = 128 << 20  # bytes of zeros a bomb expands to


def refused_within_peak(call) -> str:
    """``call()`` must raise a one-line PycnnError without allocating PEAK bytes; returns the message."""
    tracemalloc.start()
    try:
        with pytest.raises(PycnnError) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK, f"{peak / 1e6:.0f} MB allocated before: {info.value}"
    message = str(info.value)
    assert "\n" not in message and len(message) <= MAX_MESSAGE
    return message


def zeros_stream(n: int, wbits: int) -> bytes:
    """``n`` zero bytes compressed (wbits 31: gzip, -15: raw deflate as in a zip), without holding them."""
    c, block = zlib.compressobj(9, zlib.DEFLATED, wbits), bytes(1 << 20)
    return b"".join([c.compress(block) for _ in range(n >> 20)] + [c.flush()])


@pytest.fixture(scope="module")
def gzip_zeros() -> bytes:
    return zeros_stream(BOMB, 31)


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + np.array(dims, ">u4").tobytes()


def npy_header(shape: tuple, dtype: str) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_of_members(members: dict[str, bytes], bomb: tuple[str, bytes] | None = None) -> bytes:
    """A zip (an .npz) of ``members`` stored as they are, plus ``bomb`` = (name, .npy header)
    followed by BOMB zero bytes, deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if bomb:
            info = zipfile.ZipInfo(bomb[0])
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                f.write(bomb[1])
                for _ in range(BOMB >> 20):
                    f.write(bytes(1 << 20))
    return buf.getvalue()


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_a_gzip_idx_file_stops_at_the_size_its_header_promises(gzip_zeros):
    """1,000 images promised, 128 MB of zeros inside: refused after the promised 784 kB."""
    bomb = gzip.compress(idx_header(1000, 28, 28)) + gzip_zeros  # two gzip members, one stream
    assert len(bomb) < 200_000
    message = refused_within_peak(lambda: parse_idx(bomb, name="x.gz"))
    assert message == "x.gz: header promises shape (1000, 28, 28) (784016 bytes) but its gzip data holds more"


def test_a_gzip_idx_header_declaring_too_many_images_is_refused_before_decompressing(gzip_zeros):
    bomb = gzip.compress(idx_header(1_000_000_000, 28, 28)) + gzip_zeros
    message = refused_within_peak(lambda: parse_idx(bomb, name="x.gz"))
    assert message.startswith("x.gz: the IDX header declares shape (1000000000, 28, 28) uint8 (784.0 GB); "
                              "pycnn reads at most 10,000,000 images of at most 1024x1024 pixels")


def test_a_gzip_idx_file_that_would_expand_a_thousand_times_is_refused(gzip_zeros, tmp_path):
    """An honest header (170,000 blank images, 133 MB) in a 130 kB file: a bomb, by its ratio."""
    bomb = gzip.compress(idx_header(BOMB // 784, 28, 28)) + gzip_zeros
    assert "would expand" in refused_within_peak(lambda: parse_idx(bomb, name="x.gz"))
    folder = tmp_path / "d"
    folder.mkdir()
    for key, a in SPLIT.items():
        (folder / (IDX_FILES[key][0] + ".gz")).write_bytes(gzip.compress(idx(a)))
    (folder / (IDX_FILES["x_train"][0] + ".gz")).write_bytes(bomb)
    assert "would expand" in refused_within_peak(lambda: load_mnist(folder))


@pytest.mark.parametrize("shape, message", [
    ((10**10, 784), "declares shape (10000000000, 784) uint8 (7.8 TB)"),
    ((1000, 4096, 28), "declares shape (1000, 4096, 28) uint8"),
])
def test_an_npz_data_file_declaring_huge_arrays_is_refused_before_reading(tmp_path, shape, message):
    members = {f"{key}.npy": npy(a) for key, a in SPLIT.items() if key != "x_train"}
    members["x_train.npy"] = npy_header(shape, "|u1") + bytes(100)
    path = tmp_path / "mnist.npz"
    path.write_bytes(zip_of_members(members))
    assert message in refused_within_peak(lambda: load_mnist(path))


def test_an_npz_data_zip_bomb_is_refused_before_expanding(tmp_path):
    members = {f"{key}.npy": npy(a) for key, a in SPLIT.items() if key != "x_train"}
    path = tmp_path / "mnist.npz"
    path.write_bytes(zip_of_members(members, ("x_train.npy", npy_header((BOMB // 1024, 32, 32), "|u1"))))
    assert path.stat().st_size < 1_000_000
    assert "x_train would expand" in refused_within_peak(lambda: load_mnist(path))


def test_an_hdf5_dataset_declaring_huge_arrays_is_refused_before_reading(tmp_path):
    path = tmp_path / "MNISTdata.hdf5"
    with h5py.File(path, "w") as f:
        for key, a in SPLIT.items():
            if key != "x_train":
                f[key] = a
        f.create_dataset("x_train", shape=(10**10, 784), dtype="u1", chunks=(1000, 784), compression="gzip")
    assert path.stat().st_size < 100_000
    assert "[x_train] declares shape (10000000000, 784) uint8" in refused_within_peak(lambda: load_mnist(path))


def pretrained_members() -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(PRETRAINED)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    with np.load(io.BytesIO(PRETRAINED)) as f:
        arch = json.loads(str(f["architecture"]))
    return arch, members


def test_a_model_weight_declared_larger_than_its_architecture_is_refused_before_reading():
    """conv1.W declared (2097152, 1, 1, 16) float32, 128 MB of zeros in a 130 kB member."""
    _, members = pretrained_members()
    del members["conv1.W.npy"]
    bomb = zip_of_members(members, ("conv1.W.npy", npy_header((BOMB // 64, 1, 1, 16), "<f4")))
    assert len(bomb) < 1_000_000
    message = refused_within_peak(lambda: load_model(bomb))
    assert message == "weights conv1.W have shape (2097152, 1, 1, 16), but the architecture needs (5, 5, 1, 16)"
    assert message in refused_within_peak(lambda: web.load_model_file(bomb))  # the page's upload


def with_architecture(arch: dict, weights: dict[str, bytes] | None = None) -> bytes:
    return zip_of_members({"architecture.npy": npy(np.array(json.dumps(arch))), **(weights or {})})


def test_a_model_file_asking_for_a_huge_preset_is_refused_before_building_it():
    """A seed model of 40,000 filters: 232 million parameters, from a file without weights."""
    model = pycnn.build_model("seed", n_filter=2)
    arch = model.architecture()
    arch["preset"]["hparams"]["n_filter"] = 40_000
    arch["layers"][0]["out_ch"], arch["layers"][3]["in_features"] = 40_000, 24 * 24 * 40_000
    message = refused_within_peak(lambda: load_model(with_architecture(arch)))
    assert message == ("the model file asks for 232,400,010 parameters (929.6 MB as float32, several times that to "
                       "train); pycnn builds models of at most 50,000,000 parameters")


@pytest.mark.parametrize("layers", [
    [{"type": "Conv2D", "in_ch": 1, "out_ch": 10**6, "kh": 5, "kw": 5, "stride": 1, "padding": 2},
     {"type": "Flatten"}, {"type": "Dense", "in_features": 784 * 10**6, "out_features": 10}],
    [{"type": "Flatten"}, {"type": "Dense", "in_features": 784, "out_features": 10**9}],
    [{"type": "Flatten"}, {"type": "Dense", "in_features": 784, "out_features": 1e12}],
])
def test_a_custom_architecture_with_too_many_parameters_is_refused_before_building_it(layers):
    arch = {"format": "pycnn-model", "version": 1, "input_shape": [28, 28, 1], "layers": layers, "preset": None}
    assert "pycnn builds models of at most 50,000,000 parameters" in refused_within_peak(
        lambda: load_model(with_architecture(arch)))


def test_an_npz_of_twenty_thousand_members_is_refused_from_its_directory():
    bomb = zip_of_members({f"w{i}.npy": b"" for i in range(20_000)})
    message = refused_within_peak(lambda: load_model(bomb))
    assert message == "the model data holds 20,000 arrays; a pycnn .npz holds at most 1,000"


def test_a_large_architecture_without_its_weights_is_refused_before_building_it():
    """Dense(784, 50,000): 39 million parameters, within the bound, but the file holds no weights."""
    arch = {"format": "pycnn-model", "version": 1, "input_shape": [28, 28, 1], "preset": None,
            "layers": [{"type": "Flatten"}, {"type": "Dense", "in_features": 784, "out_features": 50_000}]}
    message = refused_within_peak(lambda: load_model(with_architecture(arch)))
    assert message == "the weights do not match the architecture: missing ['dense1.W', 'dense1.b'], unexpected none"
