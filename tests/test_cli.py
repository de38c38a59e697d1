"""`pycnn train` / `pycnn evaluate`, mostly through cli.main on a small slice of real MNIST.

A few tests run `python -m pycnn` in a subprocess to see exactly what a user
sees: exit codes, no tracebacks, the default data location.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import pycnn.cli
from pycnn import load_model
from pycnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
EPOCH_LINE = re.compile(r"^Epoch 1, Loss = \d+\.\d+, Training Accuracy = [01]\.\d+, Test Accuracy = [01]\.\d+")


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory, mnist):
    """300 training and 200 test images of real MNIST as an .npz for --dataroot."""
    x_train, y_train, x_test, y_test = mnist
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(path, x_train=x_train[:300], y_train=y_train[:300], x_test=x_test[:200], y_test=y_test[:200])
    return str(path)


def run_main(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pycnn", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def final_json(out):
    return json.loads(out.strip().splitlines()[-1])


def test_train_prints_epochs_and_json_and_saves(capsys, small_mnist, tmp_path):
    save = tmp_path / "model.npz"
    code, out, err = run_main(capsys, "train", "--dataroot", small_mnist, "--limit", "300", "--epochs", "2",
                              "--json", "--save", str(save))
    assert code == 0, err
    lines = out.splitlines()
    assert "300 training and 200 test images" in lines[0]
    epochs = [line for line in lines if line.startswith("Epoch")]
    assert len(epochs) == 2 and EPOCH_LINE.match(epochs[0]) and epochs[1].startswith("Epoch 2, Loss = ")
    result = final_json(out)
    assert result["epochs"] == 2 and result["train_examples"] == 300
    assert 0 <= result["test_accuracy"] <= 1 and 0 <= result["train_accuracy"] <= 1 and result["seconds"] > 0
    assert f"Test Accuracy = {result['test_accuracy']:.4f}" in epochs[1]
    model = load_model(save)
    assert model.spec["name"] == "seed" and model.spec["hparams"]["n_filter"] == 32


def test_train_lenet_with_adam(capsys, small_mnist):
    code, out, err = run_main(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", "--model", "lenet",
                              "--optimizer", "adam", "--lr", "0.001", "--json")
    assert code == 0, err
    assert "lenet model" in out and "adam lr=0.001" in out
    result = final_json(out)
    assert result["model"] == "lenet" and result["optimizer"] == "adam" and result["lr"] == 0.001


def test_train_is_reproducible(capsys, small_mnist):
    args = ("train", "--dataroot", small_mnist, "--epochs", "1", "--n_filter", "4", "--json", "--seed", "3")
    first = final_json(run_main(capsys, *args)[1])
    second = final_json(run_main(capsys, *args)[1])
    assert first["loss"] == second["loss"] and first["test_accuracy"] == second["test_accuracy"]


def test_seed_model_flags_are_used(capsys, small_mnist, tmp_path):
    save = tmp_path / "m.npz"
    code, _, err = run_main(capsys, "--dataroot", small_mnist, "--epochs", "1", "--n_filter", "5",
                            "--h_filter", "4", "--w_filter", "6", "--stride", "2", "--padding", "0",
                            "--minibatch_size", "50", "--save", str(save))
    assert code == 0, err
    hparams = load_model(save).spec["hparams"]
    assert (hparams["n_filter"], hparams["h_filter"], hparams["w_filter"], hparams["stride"],
            hparams["padding"]) == (5, 4, 6, 2, 0)


def test_no_subcommand_means_train(capsys, small_mnist):
    code, out, err = run_main(capsys, "--epochs", "1", "--dataroot", small_mnist, "--limit", "100", "--json")
    assert code == 0, err
    assert final_json(out)["train_examples"] == 100


def test_evaluate_prints_accuracy_and_confusion_matrix(capsys, small_mnist, tmp_path):
    save = tmp_path / "model.npz"
    run_main(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", "--n_filter", "8", "--save", str(save))
    code, out, err = run_main(capsys, "evaluate", "--model", str(save), "--dataroot", small_mnist)
    assert code == 0, err
    match = re.search(r"Test Accuracy = (0\.\d{4}|1\.0000) \((\d+)/200\)", out)
    assert match
    assert "Confusion matrix" in out
    assert re.search(r"^conv1 +Conv2D +-> \(24, 24, 8\)", out, re.M)  # the model's layers (Sequential.describe)
    assert re.search(r"Most confident mistakes .*: #\d+: \d -> \d \(\d+%\)", out)
    code, out, err = run_main(capsys, "evaluate", "--model", str(save), "--dataroot", small_mnist, "--json")
    assert code == 0, err
    result = final_json(out)
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 200
    assert int(match.group(2)) == np.trace(cm)
    assert result["test_accuracy"] == pytest.approx(np.trace(cm) / 200)


def test_interrupt_saves_the_weights_so_far(capsys, small_mnist, tmp_path, monkeypatch):
    class Interrupted(pycnn.cli.Trainer):
        def run(self, *args, **kwargs):
            if self.step == 2:
                raise KeyboardInterrupt
            return super().run(*args, **kwargs)

    monkeypatch.setattr(pycnn.cli, "Trainer", Interrupted)
    save = tmp_path / "partial.npz"
    code, out, _ = run_main(capsys, "--dataroot", small_mnist, "--epochs", "1", "--n_filter", "4",
                            "--save", str(save))
    assert code == 130
    assert "Interrupted during epoch 1 after 2 steps" in out and str(save) in out
    load_model(save)


def test_divergence_is_one_clear_error_and_keeps_the_last_finite_weights(capsys, small_mnist, tmp_path):
    save = tmp_path / "diverged.npz"
    with np.errstate(all="ignore"):
        code, out, err = run_main(capsys, "--dataroot", small_mnist, "--epochs", "1", "--lr", "1e20",
                                  "--save", str(save))
    assert code == 1
    step = int(re.search(r"the loss became (?:nan|inf) at step (\d+) \(epoch 1\)", err).group(1))
    assert err.startswith("error: training diverged") and err.count("\n") == 1
    assert "lower the learning rate (it is 1e+20), for example to 1e+19" in err
    assert f"Saved the last finite weights (from before step {step}) to {save}" in out
    assert all(np.isfinite(p.value).all() for p in load_model(save).params())


# Every user error: exit status 1, exactly one line on stderr, "error: " and the library's message.
USER_ERRORS = [
    (["--lr", "-1"], "learning rate must be a positive finite number, got -1"),
    (["--lr", "0"], "learning rate must be a positive finite number, got 0"),
    (["--lr", "nan"], "learning rate must be a positive finite number, got nan"),
    (["--lr", "inf"], "learning rate must be a positive finite number, got inf"),
    (["--minibatch_size", "0"], "batch size must be a whole number >= 1, got 0"),
    (["--epochs", "0"], "epochs must be a whole number >= 1, got 0"),
    (["--epochs", "-3"], "epochs must be a whole number >= 1, got -3"),
    (["--n_filter", "0"], "number of filters must be a whole number >= 1, got 0"),
    (["--padding", "-2"], "padding must be a whole number >= 0, got -2"),
    (["--limit", "0"], "the training-set size (--limit) must be a whole number >= 1, got 0"),
    (["--limit", "-5"], "the training-set size (--limit) must be a whole number >= 1, got -5"),
    (["--h_filter", "40", "--w_filter", "40"],
     "a filter 40 pixels in height is larger than the padded image (28 + 2*1 = 30); "
     "use a filter of at most 30 or padding of at least 6"),
    (["--stride", "2"],
     "stride 2 does not tile the image's height: (28 + 2*1 - 7) / 2 + 1 = 12.5 is not a whole number of "
     "positions; with padding 1 use stride 1 or 23, or with stride 2 and padding 1 use a filter of 6 or 8"),
    (["--h_filter", "5", "--w_filter", "5", "--stride", "3", "--padding", "0"],
     "with stride 3 use padding 2"),
    (["--momentum", "1.5", "--optimizer", "momentum"], "momentum must be in [0, 1)"),
    (["--weight_decay", "-1"], "weight_decay must be >= 0"),
    (["--lr_decay", "0"], "lr_decay must be in (0, 1], got 0"),
    (["--num_class", "5"], "the data has labels up to 9, but --num_class is 5"),
    (["--img_height", "32"], "check --img_height/--img_width/--num_channel"),
]


@pytest.mark.parametrize("args, message", USER_ERRORS)
def test_impossible_settings_give_one_error_line(capsys, small_mnist, args, message):
    code, out, err = run_main(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", *args)
    assert code == 1
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert "Epoch" not in out  # refused before training


@pytest.mark.parametrize("args, message", [
    (["--lr", "fast"], "error: argument --lr: invalid float value: 'fast' (see pycnn train --help)"),
    (["--epochs", "2.5"], "error: argument --epochs: invalid int value: '2.5'"),
    (["--optimizer", "rmsprop"], "error: argument --optimizer: invalid choice: 'rmsprop'"),
    (["--model", "vgg"], "error: argument --model: invalid choice: 'vgg'"),
    (["--no_such_flag"], "error: unrecognized arguments: --no_such_flag"),
])
def test_malformed_command_lines_are_one_line_with_status_2(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["train", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_limit_larger_than_the_data_uses_all_and_says_so(capsys, small_mnist):
    code, out, err = run_main(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", "--n_filter", "4",
                              "--limit", "5000", "--json")
    assert code == 0, err
    assert err == "note: the data has only 300 training images; using all of them (asked for 5,000)\n"
    assert final_json(out)["train_examples"] == 300


@pytest.mark.parametrize("where, message", [
    (lambda tmp: tmp / "no" / "such" / "folder" / "m.npz", "the folder {folder} does not exist"),
    (lambda tmp: tmp / "a-file.txt" / "m.npz", "the folder {folder} does not exist"),
    (lambda tmp: tmp, "it is a folder; give a file name such as"),
])
def test_save_path_that_cannot_be_written_fails_before_training(capsys, small_mnist, tmp_path, monkeypatch,
                                                                  where, message):
    (tmp_path / "a-file.txt").write_text("not a folder")
    started = []
    monkeypatch.setattr(pycnn.cli, "load_mnist", lambda *a: started.append(1))  # loading data = too late
    save = where(tmp_path)
    code, out, err = run_main(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", "--save", str(save))
    assert code == 1 and not started and out == ""
    assert err.startswith(f"error: cannot save the model to {save}: ") and err.count("\n") == 1
    assert message.format(folder=save.parent) in err


def test_save_into_a_folder_that_is_not_writable_fails_before_training(capsys, small_mnist, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere its mode bits forbid; sysfs refuses even root
        folder = Path("/sys")
    save = folder / "pycnn-model.npz"
    code, out, err = run_main(capsys, "train", "--dataroot", small_mnist, "--epochs", "1", "--save", str(save))
    assert code == 1 and out == ""
    assert err == f"error: cannot save the model to {save}: Permission denied\n"
    assert not save.exists() and not Path(f"{save}.tmp").exists()


def test_evaluate_refuses_a_bad_model_file(capsys, small_mnist, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    code, _, err = run_main(capsys, "evaluate", "--model", str(bad), "--dataroot", small_mnist)
    assert code == 1 and err == f"error: {bad} is not a .npz file\n"
    code, _, err = run_main(capsys, "evaluate", "--model", str(tmp_path / "absent.npz"), "--dataroot", small_mnist)
    assert code == 1 and err.startswith("error: ") and "absent.npz" in err


def test_subprocess_train_with_the_default_data(tmp_path):
    """Run from another folder: the data is found in the repository's node_modules."""
    save = tmp_path / "model.npz"
    proc = run_cli("train", "--limit", "300", "--epochs", "1", "--n_filter", "8", "--optimizer", "adam",
                   "--lr", "0.001", "--json", "--save", str(save), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("Epoch")]
    assert len(epochs) == 1 and EPOCH_LINE.match(epochs[0])
    result = final_json(proc.stdout)
    assert {"test_accuracy", "train_accuracy", "epochs", "seconds"} <= set(result)
    assert result["epochs"] == 1 and result["train_examples"] == 300
    assert result["test_accuracy"] > 0.3  # observed 0.53 on the 10,000 test images after 5 steps
    assert "10,000 test images" in proc.stdout
    assert load_model(save).num_classes == 10


def test_subprocess_missing_dataroot_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nowhere"
    proc = run_cli("train", "--dataroot", str(missing), "--epochs", "1", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]
    proc = run_cli("evaluate", "--model", str(tmp_path / "m.npz"), "--dataroot", str(missing), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_subprocess_exit_codes_and_no_traceback(tmp_path):
    proc = run_cli("--minibatch_size", "0", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (1, "error: batch size must be a whole number >= 1, got 0\n")
    proc = run_cli("--minibatch_size", "many", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: argument --minibatch_size: invalid int value")
    assert proc.stderr.count("\n") == 1


def test_subprocess_ctrl_c_saves_the_model_reached_so_far(small_mnist, tmp_path):
    save = tmp_path / "interrupted.npz"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pycnn", "--dataroot", small_mnist, "--epochs", "100000",
                             "--n_filter", "2", "--save", str(save)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        while not proc.stdout.readline().startswith("Epoch 1,"):
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
    assert re.search(r"Interrupted during epoch \d+ after \d+ steps", out)
    assert f"Saved the weights reached so far to {save}" in out
    assert load_model(save).spec["hparams"]["n_filter"] == 2


def test_only_user_errors_are_one_liners_a_bug_keeps_its_traceback(capsys, small_mnist, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pycnn.cli, "Trainer", broken)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--dataroot", small_mnist, "--epochs", "1"])


def test_console_script_is_declared():
    with open(ROOT / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["pycnn"] == "pycnn.cli:main"
    try:
        entry_points = metadata.entry_points(group="console_scripts", name="pycnn")
    except Exception:  # pragma: no cover - metadata backends differ
        entry_points = []
    for ep in entry_points:  # only when pycnn is installed
        assert ep.value == "pycnn.cli:main"
