"""pycnn.userdigits: the digits file, mixing it into MNIST (also with `pycnn train --extra`), fine-tuning."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from pycnn.cli import main
from pycnn.errors import ConfigError, DataFormatError
from pycnn.model import load_model
from pycnn.userdigits import digits_to_bytes, fine_tune, mix, read_digits

PRETRAINED = Path(__file__).resolve().parent.parent / "static" / "pretrained.npz"


def some_digits(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def test_a_digits_file_reads_back_as_written(tmp_path):
    images, labels = some_digits()
    data = digits_to_bytes(images, labels)
    for source in (data, tmp_path / "d.npz"):
        if isinstance(source, Path):
            source.write_bytes(data)
        x, y = read_digits(source)
        np.testing.assert_array_equal(x, images)
        np.testing.assert_array_equal(y, labels)
        assert x.dtype == np.uint8 and y.dtype == np.int64


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD = {"format": np.array("pycnn-digits"), "images": np.zeros((2, 28, 28), np.uint8),
        "labels": np.array([1, 2], np.uint8)}


@pytest.mark.parametrize("data,message", [
    (b"not a zip", "not a readable .npz"),
    (npz(images=GOOD["images"], labels=GOOD["labels"]), "not a pycnn digits file"),
    (npz(**{**GOOD, "version": np.array(2)}), "version 2; this pycnn reads version 1"),
    (npz(**{**GOOD, "labels": np.array([1, 12])}), r"labels must lie in 0..9, got 1..12"),
    (npz(**{**GOOD, "images": np.zeros((2, 20, 20), np.uint8)}), r"shape \(N, 28, 28\)"),
    (npz(**{**GOOD, "images": np.zeros((2, 28, 28), np.float32)}), "uint8"),
    (npz(**{**GOOD, "labels": np.array([1])}), "expected 2 whole-number labels"),
    (npz(format=GOOD["format"], images=GOOD["images"]), "lacks its images or labels"),
    (npz(**{**GOOD, "labels": np.array([object(), 1], dtype=object)}), "not a readable .npz"),
])
def test_a_bad_digits_file_is_one_clear_error(data, message):
    with pytest.raises(DataFormatError, match=message):
        read_digits(data)


def test_a_missing_digits_file_says_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match="no digits file at .*Download your digits"):
        read_digits(tmp_path / "absent.npz")


def test_mix_appends_copies_of_the_digits():
    x, y = np.zeros((10, 28, 28), np.uint8), np.zeros(10, np.int64)
    images, labels = some_digits(3)
    mx, my = mix(x, y, images, labels, repeat=4)
    assert mx.shape == (22, 28, 28) and my.shape == (22,)
    np.testing.assert_array_equal(mx[10:13], images)
    np.testing.assert_array_equal(my[19:], labels)
    with pytest.raises(ConfigError, match="whole number >= 1"):
        mix(x, y, images, labels, repeat=0)


def test_fine_tuning_moves_the_models_mistakes_toward_their_labels(mnist):
    x_train, y_train, x_test, y_test = mnist
    model = load_model(PRETRAINED)
    wrong = np.flatnonzero(model.predict(x_test[2000:6000]) != y_test[2000:6000])[:3] + 2000
    assert len(wrong) == 3  # the pretrained model errs on about 1% of these
    before = model.state()["conv1.W"].copy()
    tuned, report = fine_tune(model, x_train, y_train, x_test, y_test, x_test[wrong], y_test[wrong], seconds=2)
    np.testing.assert_array_equal(model.state()["conv1.W"], before)  # the model passed in is kept
    assert report["steps"] > 0 and report["test_count"] == 2000
    rows = report["digits"]
    assert [r["label"] for r in rows] == y_test[wrong].tolist()
    assert all(r["before"] != r["label"] for r in rows)
    assert sum(r["after_p"] > r["before_p"] for r in rows) >= 2, rows
    assert np.array_equal(tuned.predict(x_test[wrong]), [r["after"] for r in rows])
    # a few seconds on MNIST mixed in should keep the test accuracy within a point (observed: -0.1..+0.1)
    assert report["test_after"] > report["test_before"] - 0.01
    assert report["dropped"] == (report["test_after"] < report["test_before"])
    assert ("dropped by" in report["message"]) == report["dropped"]


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory, mnist):
    x_train, y_train, x_test, y_test = mnist
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(path, x_train=x_train[:300], y_train=y_train[:300], x_test=x_test[:200], y_test=y_test[:200])
    return str(path)


def test_the_cli_mixes_in_a_downloaded_digits_file(capsys, small_mnist, tmp_path):
    images, labels = some_digits(4)
    extra = tmp_path / "my_digits.npz"
    extra.write_bytes(digits_to_bytes(images, labels))
    code = main(["train", "--dataroot", small_mnist, "--epochs", "1", "--n_filter", "4", "--json",
                 "--extra", str(extra), "--extra_repeat", "5"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"mixed in 4 of your digits from {extra}, 5 copies each" in out
    assert json.loads(out.strip().splitlines()[-1])["train_examples"] == 300 + 4 * 5


def test_the_cli_refuses_a_bad_digits_file_in_one_line(capsys, small_mnist, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    code = main(["train", "--dataroot", small_mnist, "--epochs", "1", "--extra", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "not a readable .npz" in err and err.count("\n") == 1
