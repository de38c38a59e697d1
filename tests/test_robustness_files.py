"""Files a hostile or careless user can hand pycnn: FIFOs, devices, links, read-only files, the
data file as the --save path, concurrent saves, SIGTERM/SIGHUP during a run, and test images of
another size than the training images. Each is refused with one line, or handled, and never hangs
or loses the weights a run reached.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import pycnn
from pycnn import errors, load_mnist, load_model
from pycnn.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory, mnist):
    """300 training and 200 test images of real MNIST as an .npz for --dataroot."""
    x_train, y_train, x_test, y_test = mnist
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(path, x_train=x_train[:300], y_train=y_train[:300], x_test=x_test[:200], y_test=y_test[:200])
    return str(path)


@pytest.fixture
def fifo(tmp_path):
    """A factory of named pipes: fifo("x.npz") makes tmp_path/x.npz a FIFO."""
    def make(name: str) -> Path:
        path = tmp_path / name
        os.mkfifo(path)
        return path
    return make


def in_python(call: str, *args: str) -> str:
    """What `call(*args)` raises, as "ErrorType: message", run in a fresh Python that must not block.

    A separate process, because a read blocked on a FIFO may hold the GIL (h5py does) and never returns.
    """
    code = (f"import pycnn\ntry:\n    {call}(*{list(args)!r})\nexcept Exception as e:\n"
            "    print(f'{type(e).__name__}: {e}')")
    return run(sys.executable, "-c", code).stdout.strip()


def run(*command: str) -> subprocess.CompletedProcess:
    try:  # a refusal takes a fraction of a second; 60 s only guards against a slow machine
        return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} blocked")


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- reading: regular files only


@pytest.mark.parametrize("name", ["mnist.npz", "MNISTdata.hdf5"])
def test_a_fifo_as_dataroot_is_refused_not_read(fifo, name):
    path = fifo(name)
    assert in_python("pycnn.load_mnist", str(path)) == (
        f"MNISTNotFoundError: data file {path} is a FIFO (named pipe), not a regular file")
    proc = run(sys.executable, "-m", "pycnn", "train", "--dataroot", str(path), "--epochs", "1")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: data file {path} is a FIFO (named pipe), not a regular file\n"


def test_a_fifo_as_a_model_is_refused_in_the_library_and_the_cli(fifo):
    path = fifo("model.npz")
    assert in_python("pycnn.load_model", str(path)) == (
        f"ModelNotFoundError: model file {path} is a FIFO (named pipe), not a regular file")
    proc = run(sys.executable, "-m", "pycnn", "evaluate", "--model", str(path))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: model file {path} is a FIFO (named pipe), not a regular file\n"


def test_a_device_as_a_model_says_what_it_is_not_not_found(capsys):
    with pytest.raises(errors.ModelNotFoundError, match=r"^model file /dev/null is a character device, not a "
                                                        r"regular file$"):
        load_model("/dev/null")
    code, out, err = cli(capsys, "evaluate", "--model", "/dev/null")
    assert (code, out) == (1, "") and err == "error: model file /dev/null is a character device, not a regular file\n"


def test_a_device_as_dataroot_says_what_it_is():
    with pytest.raises(errors.MNISTNotFoundError, match="^data file /dev/null is a character device"):
        load_mnist("/dev/null")


def test_regular_file_names_what_the_path_is(tmp_path, fifo):
    from pycnn.files import regular_file

    (tmp_path / "ok.npz").write_bytes(b"x")
    assert regular_file(tmp_path / "ok.npz", "model file") == str(tmp_path / "ok.npz")
    (tmp_path / "link.npz").symlink_to(tmp_path / "ok.npz")  # a link to a regular file may be read
    assert regular_file(tmp_path / "link.npz", "model file") == str(tmp_path / "link.npz")
    cases = [(fifo("p"), "is a FIFO (named pipe)"), (Path("/dev/zero"), "is a character device"),
             (tmp_path, "is a folder"), (tmp_path / "absent", "not found")]
    for path, words in cases:
        with pytest.raises(errors.ConfigError) as info:
            regular_file(path, "input")
        assert str(info.value).startswith(f"input {path} {words}"), str(info.value)


# ---------------------------------------------------------------- saving: refused before training


def save_cases(tmp_path: Path, data: str) -> list[tuple[str, str]]:
    """(the --save argument, words of the refusal) for every target a save must not replace."""
    os.mkfifo(tmp_path / "pipe.npz")
    (tmp_path / "real.npz").write_bytes(b"someone's file")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "nowhere.npz")
    (tmp_path / "read-only.npz").write_bytes(b"keep me")
    (tmp_path / "read-only.npz").chmod(0o444)
    return [
        ("", "cannot save the model to '': the path is empty"),
        ("/dev/null", "cannot save the model to /dev/null: it is a character device, not a regular file"),
        (str(tmp_path / "pipe.npz"), "it is a FIFO (named pipe), not a regular file"),
        (str(tmp_path / "link.npz"), f"it is a symbolic link (to {tmp_path / 'real.npz'})"),
        (str(tmp_path / "dangling.npz"), "it is a symbolic link"),
        (str(tmp_path / "read-only.npz"), "the file is read-only"),
        (data, f"it is the input file {data}"),
        (str(Path(data).parent / "." / Path(data).name), "it is the input file"),
    ]


def test_save_targets_that_must_not_be_replaced_are_refused_before_training(capsys, small_mnist, tmp_path,
                                                                           monkeypatch):
    before = Path(small_mnist).read_bytes()
    for save, words in save_cases(tmp_path, small_mnist):
        started = []
        with monkeypatch.context() as m:
            m.setattr(pycnn.cli, "load_mnist", started.append)  # loading data = too late
            code, out, err = cli(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", "--save", save)
        assert (code, out, started) == (1, "", []), (save, err)
        assert err.startswith("error: cannot save the model to ") and words in err and err.count("\n") == 1, err
    assert (tmp_path / "real.npz").read_bytes() == b"someone's file" and (tmp_path / "link.npz").is_symlink()
    assert (tmp_path / "read-only.npz").read_bytes() == b"keep me"
    assert Path(small_mnist).read_bytes() == before
    assert os.stat("/dev/null").st_mode & 0o170000 == 0o020000  # still a character device


def test_save_refuses_the_mnist_files_of_a_dataroot_folder(capsys, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"the data")
    save = folder / "train-images-idx3-ubyte.gz"
    code, out, err = cli(capsys, "train", "--dataroot", str(folder), "--save", str(save))
    assert (code, out) == (1, "")
    assert err == f"error: cannot save the model to {save}: it is the input file {save}; choose another path\n"
    assert save.read_bytes() == b"the data"


def test_the_library_save_refuses_the_same_targets(tmp_path):
    model = pycnn.build_model("seed", n_filter=2)
    for save, words in save_cases(tmp_path, str(tmp_path / "real.npz"))[:6]:
        with pytest.raises(errors.ConfigError) as info:
            model.save(save)
        assert words in str(info.value), str(info.value)
    assert (tmp_path / "real.npz").read_bytes() == b"someone's file"


def test_check_save_path_protects_the_inputs_given(tmp_path):
    from pycnn.model import check_save_path

    data = tmp_path / "mnist.npz"
    data.write_bytes(b"data")
    check_save_path(tmp_path / "model.npz", protect=[data])
    with pytest.raises(errors.ConfigError, match=f"it is the input file {data}"):
        check_save_path(data, protect=[data])
    assert not [p for p in tmp_path.iterdir() if p.name != "mnist.npz"], "the check left a file behind"


# ---------------------------------------------------------------- saving: a unique temporary file


def test_a_leftover_tmp_folder_does_not_break_the_save(tmp_path):
    path = tmp_path / "m.npz"
    (tmp_path / "m.npz.tmp").mkdir()  # the fixed temporary name of an older pycnn
    model = pycnn.build_model("seed", n_filter=2)
    pycnn.model.check_save_path(path)
    model.save(path)
    assert load_model(path).num_params == model.num_params
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "m.npz.tmp"]


def test_a_save_keeps_the_folder_clean_and_the_file_readable(tmp_path):
    path = tmp_path / "m.npz"
    pycnn.build_model("seed", n_filter=2).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert path.stat().st_mode & 0o444 == 0o444 & (0o666 & ~_umask())  # as open() makes it, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    from pycnn import files

    path = tmp_path / "m.npz"
    path.write_bytes(b"previous")
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(errors.ConfigError, match=f"cannot save the model to {path}: Input/output error"):
        pycnn.build_model("seed", n_filter=2).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"] and path.read_bytes() == b"previous"


def test_concurrent_saves_to_one_path_always_leave_a_loadable_file(tmp_path):
    # Two models of different sizes, so a file mixing the two can never load.
    models = [pycnn.build_model("seed", n_filter=8, seed=1), pycnn.build_model("seed", n_filter=16, seed=2)]
    blobs = [m.to_bytes() for m in models]
    path, failures = tmp_path / "m.npz", []

    def save_and_load(k: int) -> None:
        for _ in range(8):
            try:
                models[k % 2].save(path)
                load_model(path)
            except Exception as exc:  # noqa: BLE001 - every failure is collected and reported
                failures.append(f"{type(exc).__name__}: {exc}")
    threads = [threading.Thread(target=save_and_load, args=(k,)) for k in range(8)]  # 64 saves
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"{len(failures)} of 64 saves or loads failed, e.g. {failures[0]}"
    assert path.read_bytes() in blobs
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


# ---------------------------------------------------------------- signals during `train --save`


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_the_weights_reached_like_ctrl_c(small_mnist, tmp_path, signum, status):
    save = tmp_path / "stopped.npz"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pycnn", "--dataroot", small_mnist, "--epochs", "100000",
                             "--n_filter", "2", "--save", str(save)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        while not proc.stdout.readline().startswith("Epoch 1,"):
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err
    assert re.search(rf"Interrupted by {signal.Signals(signum).name} during epoch \d+ after \d+ steps", out)
    assert f"Saved the weights reached so far to {save}" in out
    assert load_model(save).spec["hparams"]["n_filter"] == 2


# ---------------------------------------------------------------- test images of another size


def test_test_images_of_another_size_are_refused_when_the_data_loads(tmp_path, capsys, mnist):
    x_train, y_train, _, y_test = mnist
    path = tmp_path / "mixed.npz"
    np.savez(path, x_train=x_train[:100], y_train=y_train[:100],
             x_test=np.zeros((50, 32, 32), np.uint8), y_test=y_test[:50])
    message = f"{path}: the test images are 32x32 but the training images are 28x28; both sets must have one size"
    with pytest.raises(errors.DataFormatError) as info:
        load_mnist(path)
    assert str(info.value) == message
    save = tmp_path / "model.npz"
    code, out, err = cli(capsys, "train", "--dataroot", str(path), "--epochs", "1", "--n_filter", "2",
                         "--save", str(save))
    assert (code, out, err) == (1, "", f"error: {message}\n")
