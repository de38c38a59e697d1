"""Every bad input a user can give gets one documented error with a clear one-line message.

Each case goes through the library (the exception type and its message) and,
where a user would meet it on the command line, through ``pycnn`` itself
(exit status 1, ``error: <the same message>`` alone on stderr).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import pycnn
from pycnn import errors
from pycnn.cli import main
from pycnn.data import IDX_FILES, load_mnist
from pycnn.model import load_model
from pycnn.optim import SGD
from pycnn.train import Trainer

PRETRAINED = Path(__file__).resolve().parent.parent / "static" / "pretrained.npz"


def idx(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()


def tiny_split(n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": np.arange(n_train) % 10, "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": np.arange(n_test) % 10}


def idx_folder(folder: Path, arrays: dict | None = None, raw: dict | None = None) -> Path:
    """The four IDX files of ``arrays`` in ``folder``; ``raw`` replaces some files' bytes (key -> bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays or tiny_split()
    for key, a in arrays.items():
        (folder / IDX_FILES[key][0]).write_bytes((raw or {}).get(key, idx(a)))
    return folder


def gz_folder(folder: Path, key: str, data: bytes) -> Path:
    """An IDX folder whose ``key`` file is ``<name>.gz`` holding ``data``."""
    idx_folder(folder)
    (folder / IDX_FILES[key][0]).unlink()
    (folder / (IDX_FILES[key][0] + ".gz")).write_bytes(data)
    return folder


def hdf5_file(path: Path, arrays: dict) -> Path:
    """An HDF5 file of ``arrays``; a None array becomes an (empty) group of that name."""
    with h5py.File(path, "w") as f:
        for key, a in arrays.items():
            if a is None:
                f.create_group(key)
            else:
                f[key] = a
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def without(path: Path) -> Path:
    """Delete ``path``; returns its folder."""
    path.unlink()
    return path.parent


def user_error(capsys, *argv: str) -> str:
    """Run the CLI; it must fail as a user error. Returns the message it printed."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("error: "):-1]


# ---------------------------------------------------------------- the exception type


def test_every_user_error_is_a_pycnn_error_and_keeps_its_builtin_base():
    assert issubclass(errors.DataFormatError, ValueError)
    assert issubclass(errors.ModelFormatError, ValueError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.MNISTNotFoundError, FileNotFoundError)
    assert issubclass(errors.ModelNotFoundError, FileNotFoundError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.DivergedError, RuntimeError)
    for name in ("ConfigError", "DataFormatError", "MNISTNotFoundError", "ModelFormatError",
                 "ModelNotFoundError", "MissingDependencyError", "DivergedError"):
        cls = getattr(pycnn, name)
        assert issubclass(cls, pycnn.PycnnError) and cls is getattr(errors, name)
    assert pycnn.data.DataFormatError is errors.DataFormatError  # the old import paths still work
    assert pycnn.model.ModelFormatError is errors.ModelFormatError


def test_a_message_is_always_one_line():
    assert str(errors.DataFormatError("a\nb  c\n")) == "a b c"


# ---------------------------------------------------------------- data

DATA_CASES = {
    "nonexistent path": (lambda tmp: tmp / "nowhere", errors.MNISTNotFoundError,
                         "no such file or directory: {tmp}/nowhere"),
    "folder missing an IDX file": (
        lambda tmp: without(idx_folder(tmp / "d") / IDX_FILES["y_test"][0]),
        errors.MNISTNotFoundError, "{tmp}/d has some MNIST IDX files but not: t10k-labels-idx1-ubyte"),
    "truncated IDX": (
        lambda tmp: idx_folder(tmp / "d", raw={"x_train": idx(tiny_split()["x_train"])[:-100]}),
        errors.DataFormatError, "{tmp}/d/train-images-idx3-ubyte: header promises shape (6, 28, 28) (4720 bytes) "
                                "but it has 4620 bytes (truncated?)"),
    "wrong magic": (
        lambda tmp: idx_folder(tmp / "d", raw={"y_train": b"\x12\x34" + idx(np.arange(6))[2:]}),
        errors.DataFormatError, "{tmp}/d/train-labels-idx1-ubyte: not an IDX file (bad magic number 12340801)"),
    "empty IDX file": (
        lambda tmp: idx_folder(tmp / "d", raw={"x_test": b""}),
        errors.DataFormatError, "{tmp}/d/t10k-images-idx3-ubyte is empty"),
    ".gz that is not gzip": (
        lambda tmp: gz_folder(tmp / "d", "y_test", idx(tiny_split()["y_test"])),
        errors.DataFormatError, "{tmp}/d/t10k-labels-idx1-ubyte.gz: named .gz but not gzip data (it starts with "
                                "00000801)"),
    "truncated gzip": (
        lambda tmp: gz_folder(tmp / "d", "x_test", gzip.compress(idx(tiny_split()["x_test"]))[:-20]),
        errors.DataFormatError, "{tmp}/d/t10k-images-idx3-ubyte.gz: corrupt or truncated gzip data"),
    "image and label counts differ": (
        lambda tmp: idx_folder(tmp / "d", raw={"y_train": idx(np.arange(5))}),
        errors.DataFormatError, "{tmp}/d: 6 train images but labels of shape (5,)"),
    "labels outside 0-9": (
        lambda tmp: idx_folder(tmp / "d", raw={"y_test": idx(np.array([1, 2, 12, 3]))}),
        errors.DataFormatError, "{tmp}/d: test labels outside 0..9 (1..12)"),
    "no images": (
        lambda tmp: idx_folder(tmp / "d", tiny_split(n_train=0)),
        errors.DataFormatError, "{tmp}/d: the train set has no images"),
    "HDF5 without the expected keys": (
        lambda tmp: hdf5_file(tmp / "m.hdf5", {"images": np.zeros((2, 784)), "x_test": np.zeros((2, 784))}),
        errors.DataFormatError, "{tmp}/m.hdf5: missing x_train, y_train, y_test; expected keys x_train, y_train, "
                                "x_test, y_test"),
    "HDF5 with other shapes": (
        lambda tmp: hdf5_file(tmp / "m.hdf5", {**tiny_split(), "x_train": np.zeros((6, 3, 28, 28))}),
        errors.DataFormatError, "{tmp}/m.hdf5[x_train]: images have shape (6, 3, 28, 28); expected (N, 784) or "
                                "(N, H, W)"),
    "HDF5 labels outside 0-9": (
        lambda tmp: hdf5_file(tmp / "m.hdf5", {**tiny_split(), "y_train": np.array([0, 1, -1, 3, 4, 5])}),
        errors.DataFormatError, "{tmp}/m.hdf5: train labels outside 0..9 (-1..5)"),
    "HDF5 group instead of an array": (
        lambda tmp: hdf5_file(tmp / "m.hdf5", {**tiny_split(), "y_test": None}),
        errors.DataFormatError, "{tmp}/m.hdf5: y_test should be arrays but are HDF5 groups"),
    "empty HDF5 file": (lambda tmp: written(tmp / "m.hdf5", b""),
                        errors.DataFormatError, "{tmp}/m.hdf5: not a readable HDF5 file"),
    "empty .npz file": (lambda tmp: written(tmp / "m.npz", b""),
                        errors.DataFormatError, "{tmp}/m.npz: not an .npz archive"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_is_one_clear_error_in_the_library_and_the_cli(case, tmp_path, capsys):
    make, kind, message = DATA_CASES[case]
    path = make(tmp_path)
    expected = message.format(tmp=tmp_path)
    with pytest.raises(kind) as info:
        load_mnist(path)
    assert str(info.value).startswith(expected)
    assert user_error(capsys, "train", "--dataroot", str(path), "--epochs", "1") == str(info.value)


def test_hdf5_without_h5py_is_a_user_error(tmp_path, monkeypatch, capsys):
    path = hdf5_file(tmp_path / "m.hdf5", tiny_split())
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(errors.MissingDependencyError, match="needs h5py: pip install h5py"):
        load_mnist(path)
    assert "pip install h5py" in user_error(capsys, "evaluate", "--model", str(PRETRAINED), "--dataroot", str(path))


# ---------------------------------------------------------------- model files


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def pretrained_parts() -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(PRETRAINED) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("architecture"))), arrays


def with_arch(change) -> bytes:
    arch, weights = pretrained_parts()
    change(arch, weights)
    return npz(architecture=np.array(json.dumps(arch)), **weights)


MODEL_CASES = {
    "corrupt .npz": (lambda: PRETRAINED.read_bytes()[:2000] + b"\xff" * 100 + PRETRAINED.read_bytes()[2100:],
                     errors.ModelFormatError, "is a corrupt"),
    "truncated .npz": (lambda: PRETRAINED.read_bytes()[:300_000], errors.ModelFormatError,
                       "is a corrupt or truncated .npz file"),
    "not a .npz at all": (lambda: b"hello", errors.ModelFormatError, "is not a .npz file"),
    "empty file": (lambda: b"", errors.ModelFormatError, "is empty"),
    "missing array": (lambda: with_arch(lambda a, w: w.pop("dense2.b")), errors.ModelFormatError,
                      "the weights do not match the architecture: missing ['dense2.b'], unexpected none"),
    "wrong shapes": (lambda: with_arch(lambda a, w: w.update({"conv1.W": w["conv1.W"][:3]})),
                     errors.ModelFormatError, "weights conv1.W have shape (3, 5, 1, 16), but the architecture needs "
                                              "(5, 5, 1, 16)"),
    "unknown architecture name": (
        lambda: with_arch(lambda a, w: a["preset"].update(name="resnet50")), errors.ModelFormatError,
        "unknown architecture 'resnet50' in the model file; this pycnn knows seed, lenet"),
    "unknown layer type": (lambda: with_arch(lambda a, w: a["layers"][0].update(type="Conv3D")),
                           errors.ModelFormatError, "the model's architecture is invalid: unknown layer type 'Conv3D'"),
    "architecture not matching the weights": (
        lambda: with_arch(lambda a, w: (a["layers"][7].update(out_features=64), a["layers"][9].update(in_features=64),
                                        a.update(preset=None))),
        errors.ModelFormatError, "weights dense1.W have shape (800, 128), but the architecture needs (800, 64)"),
    "preset not matching its layers": (
        lambda: with_arch(lambda a, w: a["preset"]["hparams"].update(hidden=64)), errors.ModelFormatError,
        "the model file says it is a lenet model, but its layers are not lenet's for its hyperparameters"),
    "future format version": (lambda: with_arch(lambda a, w: a.update(version=2)), errors.ModelFormatError,
                              "the model file has format version 2, from a newer pycnn; this pycnn reads version 1 "
                              "and older: upgrade pycnn to load it"),
    "non-finite weights": (lambda: with_arch(lambda a, w: w["dense2.b"].__setitem__(0, np.nan)),
                           errors.ModelFormatError, "weights dense2.b are not finite floating-point numbers"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_bad_model_files_are_one_clear_error_in_the_library_and_the_cli(case, tmp_path, capsys):
    make, kind, message = MODEL_CASES[case]
    path = tmp_path / "model.npz"
    path.write_bytes(make())
    with pytest.raises(kind) as info:
        load_model(path)
    assert message in str(info.value)
    assert user_error(capsys, "evaluate", "--model", str(path), "--dataroot", "/nowhere") == str(info.value)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "absent.npz", "model file {tmp}/absent.npz not found"),
    (lambda tmp: tmp, "model file {tmp} is a folder; give the .npz file inside it"),
])
def test_a_model_path_that_is_not_a_file(tmp_path, capsys, make, message):
    with pytest.raises(errors.ModelNotFoundError) as info:
        load_model(make(tmp_path))
    assert str(info.value) == message.format(tmp=tmp_path)
    assert user_error(capsys, "evaluate", "--model", str(make(tmp_path))) == str(info.value)


def test_a_file_without_a_format_version_still_loads():
    arch, weights = pretrained_parts()
    del arch["version"]
    old = load_model(npz(architecture=np.array(json.dumps(arch)), **weights))
    new = load_model(PRETRAINED)
    for a, b in zip(old.params(), new.params(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)


def test_saved_files_carry_the_format_version():
    arch, _ = pretrained_parts()
    assert (arch["format"], arch["version"]) == ("pycnn-model", 1)
    saved = json.loads(str(np.load(io.BytesIO(pycnn.build_model("seed", n_filter=2).to_bytes()))["architecture"]))
    assert saved["version"] == pycnn.model.VERSION == 1


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    path.write_bytes(b"the previous model")
    model = pycnn.build_model("seed", n_filter=2)
    monkeypatch.setattr(pycnn.model.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(errors.ConfigError, match=f"cannot save the model to {path}: No space left"):
        model.save(path)
    assert path.read_bytes() == b"the previous model" and not (tmp_path / "m.npz.tmp").exists()


# ---------------------------------------------------------------- divergence


def test_divergence_names_the_step_and_keeps_the_last_finite_weights():
    """A huge learning rate: the loss overflows while the weights are still finite; they stay."""
    rng = np.random.default_rng(0)
    model = pycnn.build_model("seed", n_filter=2, h_filter=4, w_filter=4, stride=4, padding=0)
    x, y = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), rng.integers(0, 10, 64)
    trainer = Trainer(model, x, y, optimizer=SGD(model.params(), lr=1e37), batch_size=8, epochs=5)
    with np.errstate(all="ignore"), pytest.raises(errors.DivergedError) as info:
        while True:
            before = [p.value.copy() for p in model.params()]
            trainer.run(max_steps=1)
    assert info.value.step == trainer.step + 1 == 2
    assert str(info.value) == ("training diverged: the loss became nan at step 2 (epoch 1); lower the learning "
                               "rate (it is 1e+37), for example to 1e+36. The model keeps its last finite weights.")
    for p, w in zip(model.params(), before, strict=True):
        np.testing.assert_array_equal(p.value, w)


def test_an_update_that_makes_the_weights_infinite_is_undone():
    class Overflowing(SGD):  # its third update overflows one weight, as a huge gradient step would
        calls = 0

        def step(self):
            super().step()
            self.calls += 1
            if self.calls == 3:
                self.params[0].value[0, 0, 0, 0] = np.inf

    rng = np.random.default_rng(0)
    model = pycnn.build_model("seed", n_filter=2, h_filter=4, w_filter=4, stride=4, padding=0)
    x, y = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), rng.integers(0, 10, 64)
    trainer = Trainer(model, x, y, optimizer=Overflowing(model.params(), lr=0.01), batch_size=8)
    history = []
    with np.errstate(all="ignore"), pytest.raises(errors.DivergedError, match="at step 4 "):
        while True:
            history.append([p.value.copy() for p in model.params()])
            trainer.run(max_steps=1)
    assert not np.isfinite(history[-1][0]).all()
    for p, w in zip(model.params(), history[-2], strict=True):  # the weights before the update that broke them
        np.testing.assert_array_equal(p.value, w)
