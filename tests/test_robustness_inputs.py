"""Misuse of the library and the CLI gets one PycnnError (never a ValueError, TypeError, MemoryError...).

Images are uint8 0-255 or floats in [0, 1]; labels whole numbers of the
model's classes; settings are checked, and sizes bounded, before anything is
allocated or loaded; a model file's weights must be finite as float32; a loss
that explodes is a divergence. Messages say what would work.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pycnn
from pycnn import errors
from pycnn.cli import main
from pycnn.errors import MAX_MESSAGE

PRETRAINED = Path(__file__).resolve().parent.parent / "static" / "pretrained.npz"
RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (40, 28, 28), dtype=np.uint8)
Y = np.arange(40) % 10


def small_model() -> pycnn.Sequential:
    return pycnn.build_model("seed", n_filter=2, h_filter=4, w_filter=4, stride=4, padding=0)


def user_error(capsys, *argv: str) -> str:
    """Run the CLI; it must fail as a user error. Returns the message it printed."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("error: "):-1]


# ---------------------------------------------------------------- images


def test_predict_proba_accepts_the_unambiguous_layouts_of_a_batch():
    model = small_model()
    expected = model.predict_proba(X[:5])
    for x in (X[:5].reshape(5, 784), X[:5, None], X[:5, ..., None], X[:5] / np.float32(255)):
        np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x, message", [
    (X[0], r"^images has the shape \(28, 28\) of one image; pass a batch \(N, 28, 28\), for one image x\[None\]$"),
    (X[0].ravel(), r"the shape \(784,\) of one image"),
    (np.zeros((2, 3, 28, 28), np.uint8), r"^images have shape \(2, 3, 28, 28\); this model takes \(N, 28, 28\)$"),
    (np.zeros((2, 27, 28), np.uint8), r"have shape \(2, 27, 28\)"),
    (X[:3].astype(np.float32), (r"^images are floats from \d+ to 255; pycnn takes uint8 pixels 0-255 or floats in "
                               r"\[0, 1\]: divide them by 255$")),
    (X[:3] / 255.0 - 0.5, r"from -0.5 to 0.5; .*: scale them into \[0, 1\]"),
    (np.full((2, 28, 28), np.nan, np.float32), r"from nan to nan"),
    (X[:3].astype(np.int64), r"^images are int64; .*: convert with x.astype\(np.uint8\)$"),
    (X[:3].tolist(), r"^images must be a NumPy array, got list; convert with np.asarray"),
])
def test_predict_proba_refuses_what_it_cannot_read_unambiguously(x, message):
    with pytest.raises(errors.DataFormatError, match=message):
        small_model().predict_proba(x)


def test_fit_refuses_float_pixels_on_the_0_255_scale_and_lists():
    model = small_model()
    with pytest.raises(errors.DataFormatError, match=r"^training set images are floats from 0 to 255; .*divide them"):
        pycnn.fit(model, X.astype(np.float64), Y)
    with pytest.raises(errors.DataFormatError, match="^training set images must be a NumPy array, got list"):
        pycnn.fit(model, X.tolist(), Y)
    pycnn.fit(model, X / 255.0, Y)  # floats in [0, 1] train


# ---------------------------------------------------------------- labels and settings of fit


@pytest.mark.parametrize("labels, message", [
    (Y.astype(np.float64), (r"^training set labels must be whole numbers 0..9, got float64; convert whole-valued "
                           r"floats with y.astype\(int\)$")),
    (Y - 1, r"^training set labels go from -1 to 8, outside the model's classes 0..9$"),
    (Y + 1, r"go from 1 to 10, outside the model's classes 0..9"),
    (Y.astype(str), r"must be whole numbers 0..9, got <U"),
    ("0123", r"must be an array of whole numbers, got str"),
    (Y[:, None], r"have shape \(40, 1\); expected one label per image"),
])
def test_fit_refuses_labels_that_are_not_the_models_classes(labels, message):
    with pytest.raises(errors.DataFormatError, match=message):
        pycnn.fit(small_model(), X, labels)


def test_test_labels_outside_the_classes_are_refused_not_scored_zero():
    with pytest.raises(errors.DataFormatError, match="^test set labels go from 0 to 12, outside the model's classes"):
        pycnn.fit(small_model(), X, Y, X[:4], np.array([0, 1, 12, 3]))
    with pytest.raises(errors.DataFormatError, match="^evaluation set labels go from 0 to 12"):
        pycnn.evaluate(small_model(), X[:4], np.array([0, 1, 12, 3]))


@pytest.mark.parametrize("kwargs, kind, message", [
    (dict(lr="0.01"), errors.ConfigError, "^learning rate must be a positive number, got '0.01'$"),
    (dict(seed=-1), errors.ConfigError, "^seed must be a whole number >= 0, got -1$"),
    (dict(x_test=X[:4]), errors.ConfigError, "^give both x_test and y_test"),
    (dict(y_test=Y[:4]), errors.ConfigError, "^give both x_test and y_test"),
    (dict(momentum="0.9", optimizer="momentum"), errors.ConfigError, "^momentum must be in"),
    (dict(lr_decay=0), errors.ConfigError, r"^lr_decay must be in \(0, 1\], got 0$"),
    (dict(optimizer=3), errors.ConfigError, "^optimizer must be 'sgd', 'momentum', 'adam' or an Optimizer, got int$"),
    (dict(epochs="2"), errors.ConfigError, "^epochs must be a whole number >= 1, got '2'$"),
])
def test_fit_refuses_bad_settings_with_a_pycnn_error(kwargs, kind, message):
    with pytest.raises(kind, match=message):
        pycnn.fit(small_model(), X, Y, **kwargs)


# ---------------------------------------------------------------- arguments of the wrong kind


@pytest.mark.parametrize("call, message", [
    (lambda: pycnn.load_model(None),
     "^load_model takes a path, the file's bytes or a binary file object, got NoneType$"),
    (lambda: pycnn.load_model(io.StringIO("text")), r"^the model file was opened as text; open it in binary mode"),
    (lambda: pycnn.load_mnist(3), "^load_mnist takes the path of a folder or file, got int$"),
    (lambda: pycnn.build_model(["seed"]), r"^unknown model \['seed'\]; choose one of seed, lenet$"),
    (lambda: pycnn.build_model("seed", seed=-1), "^seed must be a whole number >= 0, got -1$"),
    (lambda: pycnn.build_model("seed", filters=3), "^bad hyperparameters for seed: unknown filters"),
])
def test_arguments_of_the_wrong_kind_are_config_errors(call, message):
    with pytest.raises(errors.ConfigError, match=message):
        call()


def test_build_model_runs_the_same_convolution_checks_as_the_cli(capsys):
    with pytest.raises(errors.ConfigError) as info:
        pycnn.build_model("seed", stride=2)
    assert str(info.value).startswith("stride 2 does not tile the image's height: (28 + 2*1 - 7) / 2 + 1 = 12.5")
    assert user_error(capsys, "train", "--stride", "2", "--dataroot", "/nowhere") == str(info.value)


# ---------------------------------------------------------------- sizes bounded before anything is allocated


@pytest.mark.parametrize("flags, message", [
    (["--n_filter", "100000"], ("the seed model with these settings has 581,000,010 parameters (2.3 GB as float32, "
                               "several times that to train); pycnn builds models of at most 50,000,000 parameters")),
    (["--img_height", "100000"], "the seed model with these settings has 767,970,890 parameters"),
    (["--n_filter", "2000", "--minibatch_size", "128"],
     ("these settings need about 5.5 GB of memory to train (11,620,010 parameters, 3,456,010 activations per image, "
     "batch 128); pycnn trains within 4.0 GB: use a smaller batch, fewer filters or smaller images")),
    (["--model", "lenet", "--img_height", "3000", "--img_width", "3000"],
     "the lenet model with these settings has 2,291,743,050"),
])
def test_sizes_that_would_not_fit_in_memory_are_refused_before_the_data_loads(capsys, flags, message):
    # /nowhere has no data: refusing the settings first is the only way to exit with this message
    assert user_error(capsys, "train", *flags, "--dataroot", "/nowhere").startswith(message)


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "seed must be a whole number >= 0, got -1"),
    (["--lr_decay", "0"], "lr_decay must be in (0, 1], got 0"),
])
def test_every_setting_is_checked_before_the_data_loads(capsys, flags, message):
    assert user_error(capsys, "train", *flags, "--dataroot", "/nowhere") == message


# ---------------------------------------------------------------- model files


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def pretrained_parts() -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(PRETRAINED) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("architecture"))), arrays


def model_bytes(arch: dict | str, weights: dict) -> bytes:
    return npz(architecture=np.array(arch if isinstance(arch, str) else json.dumps(arch)), **weights)


@pytest.mark.parametrize("value", [1e300, 1e39, -1e39])
def test_weights_finite_in_float64_but_not_in_float32_are_refused(tmp_path, capsys, value):
    arch, weights = pretrained_parts()
    weights["dense2.b"] = weights["dense2.b"].astype(np.float64)
    weights["dense2.b"][3] = value
    path = tmp_path / "m.npz"
    path.write_bytes(model_bytes(arch, weights))
    message = ("weights dense2.b are not finite floating-point numbers as float32 (values beyond its range, "
               "about 3.4e38)")
    with pytest.raises(errors.ModelFormatError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        pycnn.load_model(path)
    assert user_error(capsys, "evaluate", "--model", str(path)) == message


def test_an_architecture_nested_100000_deep_is_refused():
    arch, weights = pretrained_parts()
    text = json.dumps(arch)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(errors.ModelFormatError, match=r"^the model's architecture is not valid JSON \(it is nested"):
        pycnn.load_model(model_bytes(text, weights))


@pytest.mark.parametrize("name", [["lenet"], {"a": 1}, 3])
def test_a_preset_name_that_is_not_a_string_is_refused(name):
    arch, weights = pretrained_parts()
    arch["preset"]["name"] = name
    with pytest.raises(errors.ModelFormatError, match=r"^unknown architecture .* in the model file; this pycnn knows"):
        pycnn.load_model(model_bytes(arch, weights))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(layers="Conv2D"), "layers must be a list of 1 to 500 layer settings"),
    (lambda a: a.update(layers=[{"type": "ReLU"}] * 501), "layers must be a list of 1 to 500"),
    (lambda a: a.update(input_shape=[28, 28]), r"input_shape must be \[H, W, C\]"),
    (lambda a: a.update(input_shape=[10**9, 28, 1]), r"each a whole number from 1 to 1024, got \[1000000000, 28, 1\]"),
    (lambda a: a["preset"]["hparams"].update(depth=3), "the model file's lenet hyperparameters are invalid"),
])
def test_a_malformed_architecture_is_refused(change, message):
    arch, weights = pretrained_parts()
    change(arch)
    with pytest.raises(errors.ModelFormatError, match=message):
        pycnn.load_model(model_bytes(arch, weights))


def test_an_architecture_that_is_not_a_short_string_is_refused():
    _, weights = pretrained_parts()
    with pytest.raises(errors.ModelFormatError, match="^the model's architecture is not a JSON string"):
        pycnn.load_model(npz(architecture=np.zeros(3), **weights))


def test_a_message_is_capped_to_a_readable_length():
    message = str(errors.ModelFormatError("unexpected " + "['w1234.npy'], " * 20_000))
    assert len(message) <= MAX_MESSAGE and message.endswith("... (cut)")
    arch, weights = pretrained_parts()
    extra = {f"w{i}": np.zeros(1, np.float32) for i in range(600)}
    with pytest.raises(errors.ModelFormatError) as info:
        pycnn.load_model(model_bytes(arch, {**weights, **extra}))
    assert str(info.value).startswith("the weights do not match the architecture: missing none, unexpected ['w0'")
    assert len(str(info.value)) <= MAX_MESSAGE


# ---------------------------------------------------------------- a loss that explodes


def test_a_loss_that_explodes_without_becoming_nan_is_a_divergence():
    model = small_model()
    with np.errstate(all="ignore"), pytest.raises(errors.DivergedError) as info:
        pycnn.fit(model, X, Y, lr=1e6, batch_size=8, epochs=3)
    message = str(info.value)
    assert message.startswith("training diverged: the loss reached ") and "far above its start" in message
    assert "lower the learning rate (it is 1e+06), for example to 100000" in message
    assert all(np.isfinite(p.value).all() for p in model.params())


def test_the_cli_reports_an_exploding_loss(capsys, tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=X, y_train=Y, x_test=X[:8], y_test=Y[:8])
    message = user_error(capsys, "train", "--dataroot", str(tmp_path / "mnist.npz"), "--lr", "1e6", "--epochs", "2",
                         "--minibatch_size", "8")
    assert message.startswith("training diverged: the loss reached ") and "far above its start" in message


def test_an_ordinary_run_is_not_a_divergence():
    history = pycnn.fit(small_model(), X, Y, lr=0.01, batch_size=8, epochs=3)
    assert len(history) == 3


def test_an_npy_header_cut_inside_its_shape_is_a_damaged_member():
    """numpy parses the header with tokenize, whose TokenError is not a ValueError."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(small_model().to_bytes())) as zin, zipfile.ZipFile(buf, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "conv1.b.npy":
                header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,".ljust(118) + b"\n"
                data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data[128:]
            zout.writestr(name, data)
    damaged = r"^the model data is a corrupt .npz file: conv1.b.npy is damaged"
    with pytest.raises(errors.ModelFormatError, match=damaged):
        pycnn.load_model(buf.getvalue())
