"""pycnn.web, the API the browser worker calls, run in CPython on real MNIST.

The worker hands it raw bytes (the pixel bytes after each IDX header, the
canvas ink) and plain dicts; every reply must be plain data (dict, list, int,
float, str, bytes, None) so ``toJs`` can convert it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import pycnn
from pycnn import web
from pycnn.errors import ConfigError
from pycnn.metrics import confusion_matrix
from pycnn.model import ModelFormatError

N_TRAIN, N_TEST = 2000, 500


def is_plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return not isinstance(value, np.generic)
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


class FakeJsBuffer:
    """What a Uint8Array looks like inside Pyodide: a JsProxy whose to_py() gives a memoryview."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_py(self):
        return memoryview(self.data)


@pytest.fixture(scope="module")
def mnist_bytes(mnist):
    """The first N_TRAIN / N_TEST images and labels as the worker passes them: bytes plus shapes."""
    x_train, y_train, x_test, y_test = mnist
    return dict(train_images=x_train[:N_TRAIN].tobytes(), train_labels=y_train[:N_TRAIN].astype(np.uint8).tobytes(),
                test_images=x_test[:N_TEST].tobytes(), test_labels=y_test[:N_TEST].astype(np.uint8).tobytes(),
                train_shape=[N_TRAIN, 28, 28], test_shape=[N_TEST, 28, 28])


@pytest.fixture(autouse=True)
def fresh_state():
    web.reset()
    yield
    web.reset()


@pytest.fixture
def loaded(mnist_bytes):
    """Data set and an untrained LeNet as the 'pretrained' model."""
    web.set_dataset(**mnist_bytes)
    web.load_pretrained(pycnn.build_model("lenet").to_bytes())


@pytest.fixture(scope="module")
def trained_lenet(mnist_bytes):
    """One epoch of LeNet on N_TRAIN images through the web API: (slices, model bytes)."""
    web.reset()
    web.set_dataset(**mnist_bytes)
    web.start_training({"preset": "lenet", "optimizer": "adam", "lr": 0.002, "batch_size": 32, "epochs": 1})
    slices = []
    while not slices or not slices[-1]["done"]:
        slices.append(web.train_slice(5, max_steps=10))  # a few slices, however fast the machine
        assert len(slices) < 1000
    model = web.model_bytes()
    web.reset()
    return slices, model


def canvas_from_digit(image: np.ndarray, scale: int = 10) -> tuple[bytes, int, int]:
    """A 28x28 MNIST digit blown up to a (28*scale)^2 canvas, as ink bytes."""
    big = np.kron(image, np.ones((scale, scale), np.uint8))
    return big.tobytes(), big.shape[1], big.shape[0]


# ---------------------------------------------------------------- data set


def test_set_dataset_takes_idx_pixel_bytes(mnist_bytes):
    assert web.set_dataset(**mnist_bytes) == {"train": N_TRAIN, "test": N_TEST}


def test_set_dataset_accepts_pyodide_buffers(mnist_bytes):
    args = {k: FakeJsBuffer(v) if isinstance(v, bytes) else v for k, v in mnist_bytes.items()}
    assert web.set_dataset(**args) == {"train": N_TRAIN, "test": N_TEST}


@pytest.mark.parametrize("change, message", [
    ({"train_shape": [N_TRAIN, 28, 27]}, r"shape \(N, 28, 28\)"),
    ({"train_shape": [N_TRAIN + 1, 28, 28]}, r"bytes for shape"),
    ({"test_labels": b"\x01" * (N_TEST - 1)}, r"499 labels for 500 images"),
    ({"train_labels": b"\x0c" * N_TRAIN}, r"labels must lie in 0..9"),
    ({"train_images": 12345}, r"must be bytes-like"),
    ({"test_shape": "many"}, r"list of whole numbers"),
])
def test_set_dataset_rejects_inconsistent_buffers(mnist_bytes, change, message):
    with pytest.raises(ValueError, match=message):
        web.set_dataset(**{**mnist_bytes, **change})


# ---------------------------------------------------------------- models


def test_load_pretrained_reports_the_model():
    info = web.load_pretrained(pycnn.build_model("lenet").to_bytes())
    assert info["name"] == "lenet" and info["source"] == "pretrained"
    assert info["parameters"] == sum(p.value.size for p in pycnn.build_model("lenet").params())
    assert is_plain(info) and web.model_info() == info


@pytest.mark.parametrize("data", [b"", b"not a zip file", b"PK\x03\x04broken"])
def test_load_pretrained_rejects_non_models(data):
    with pytest.raises(ModelFormatError):
        web.load_pretrained(data)
    assert web.model_info() is None


def test_model_bytes_round_trip():
    web.load_pretrained(pycnn.build_model("seed", n_filter=4).to_bytes())
    model = pycnn.load_model(web.model_bytes())
    assert model.spec["name"] == "seed" and model.spec["hparams"]["n_filter"] == 4


def test_nothing_works_before_a_model_is_loaded():
    with pytest.raises(ValueError, match="no model"):
        web.predict(bytes(784), 28, 28)
    with pytest.raises(ValueError, match="no model"):
        web.model_bytes()


# ---------------------------------------------------------------- predict


def test_empty_canvas_gives_no_guess(loaded):
    assert web.predict(bytes(280 * 280), 280, 280) == {"digit": None, "probs": None, "image": None}


def test_predict_returns_digit_probabilities_and_the_network_input(loaded):
    ink = np.zeros((200, 300), np.uint8)
    ink[30:170, 140:160] = 255  # a vertical stroke on a non-square canvas
    out = web.predict(FakeJsBuffer(ink.tobytes()), 300, 200)
    assert is_plain(out)
    assert out["digit"] in range(10) and out["digit"] == int(np.argmax(out["probs"]))
    assert len(out["probs"]) == 10 and math.isclose(sum(out["probs"]), 1, rel_tol=1e-5)
    image = np.array(out["image"]).reshape(28, 28)
    assert image.max() > 0.9 and image[:, :8].max() == 0  # a narrow stroke, centred by preprocessing


def test_predict_on_a_blown_up_mnist_digit_matches_the_model_on_the_digit(mnist, trained_lenet):
    """A test digit drawn 10x larger comes back through preprocessing as (almost) itself."""
    _, model = trained_lenet
    web.load_pretrained(model)
    direct = pycnn.load_model(model)
    _, _, x_test, _ = mnist
    digits = x_test[N_TEST : N_TEST + 20]
    via_canvas = [web.predict(*canvas_from_digit(d))["digit"] for d in digits]
    assert via_canvas == direct.predict(digits).tolist()


@pytest.mark.parametrize("pixels, width, height, message", [
    (bytes(100), 28, 28, "do not make a 28x28 canvas"),
    (bytes(784), 0, 784, "canvas size"),
    (bytes(784), 28.5, 28, "canvas size"),
    (bytes(784), True, 784, "canvas size"),
    ("ink", 3, 1, "bytes-like"),
])
def test_predict_rejects_bad_canvases(loaded, pixels, width, height, message):
    with pytest.raises(ValueError, match=message):
        web.predict(pixels, width, height)


# ---------------------------------------------------------------- settings


def test_validate_config_fills_defaults():
    config = web.validate_config({}, train_available=N_TRAIN)
    assert config == {"preset": "lenet", "optimizer": "adam", "lr": 0.001, "momentum": 0.9, "batch_size": 64,
                      "epochs": 1, "train_size": N_TRAIN, "seed": 0, "shards": 1}
    seed = web.validate_config({"preset": "seed", "lr": 0.01, "batch_size": 32.0})
    assert seed["batch_size"] == 32 and isinstance(seed["batch_size"], int)
    assert (seed["n_filter"], seed["filter_size"], seed["stride"], seed["padding"]) == (32, 7, 1, 1)


@pytest.mark.parametrize("config, message", [
    ({"lr": 1e9}, r"learning rate must be between 1e-06 and 1, got 1e\+09"),
    ({"lr": -0.1}, r"learning rate must be a positive finite number, got -0\.1"),
    ({"lr": float("nan")}, r"learning rate must be a positive finite number, got nan"),
    ({"lr": "fast"}, r"learning rate must be a positive finite number, got 'fast'"),
    ({"batch_size": 0}, r"batch size must be a whole number >= 1, got 0"),
    ({"batch_size": 10**6}, r"batch size must be between 1 and 512"),
    ({"batch_size": 2.5}, r"batch size must be a whole number"),
    ({"epochs": 0}, r"epochs must be a whole number >= 1, got 0"),
    ({"epochs": 50}, r"epochs must be between 1 and 20"),
    ({"epochs": True}, r"epochs must be a whole number"),
    ({"train_size": 10}, r"training-set size must be between 100 and 60000"),
    ({"train_size": 0}, r"the training-set size \(--limit\) must be a whole number >= 1, got 0"),
    ({"preset": "vgg"}, r"preset must be 'seed' or 'lenet'"),
    ({"optimizer": "rmsprop"}, r"optimizer must be one of sgd, momentum, adam"),
    ({"learning_rate": 0.1}, r"unknown training setting 'learning_rate'"),
    ({"preset": "seed", "n_filter": 0}, r"number of filters must be a whole number >= 1, got 0"),
    ({"preset": "seed", "n_filter": 65}, r"number of filters must be between 1 and 64"),
    ({"preset": "seed", "filter_size": 31},
     r"a filter 31 pixels in height is larger than the padded image "
     r"\(28 \+ 2\*1 = 30\); use a filter of at most 30 or padding of at least 2"),
    ({"preset": "seed", "filter_size": 29, "padding": 1}, r"filter size must be between 1 and 28"),
    ({"preset": "seed", "filter_size": 3, "padding": 3}, r"padding must be between 0 and 2"),
    ({"preset": "seed", "stride": 0}, r"stride must be a whole number >= 1, got 0"),
    ({"preset": "seed", "stride": 2}, r"stride 2 does not tile the image's height: \(28 \+ 2\*1 - 7\) / 2 \+ 1 = "
                                      r"12\.5 is not a whole number of positions; with padding 1 use stride 1 or 23, "
                                      r"or with stride 2 and padding 1 use a filter of 6 or 8"),
    ({"shards": 0}, r"number of workers must be between 1 and 16"),
    ({"batch_size": 4, "shards": 5}, r"number of workers must be between 1 and 4"),
])
def test_validate_config_rejects_absurd_settings(config, message):
    with pytest.raises(ConfigError, match=message):
        web.validate_config(config)


def test_a_training_set_size_above_the_data_uses_all_and_says_so():
    config = web.validate_config({"train_size": 70000}, train_available=N_TRAIN)
    assert config["train_size"] == N_TRAIN
    assert config["note"] == f"the data has only {N_TRAIN:,} training images; using all of them (asked for 70,000)"


def test_start_training_refuses_steps_too_slow_for_the_browser(loaded):
    with pytest.raises(ValueError, match="too slow for the browser.*fewer or smaller filters"):
        web.start_training({"preset": "seed", "n_filter": 64, "filter_size": 28, "padding": 27, "batch_size": 64})
    # The default seed model costs 1.09 million multiply-adds per image.
    with pytest.raises(ValueError, match=r"batch 512\).*use a batch size of at most 275"):
        web.start_training({"preset": "seed", "batch_size": 512})
    assert web.start_training({"preset": "seed", "batch_size": 256})["batch_size"] == 256


def test_start_training_needs_data():
    with pytest.raises(ValueError, match="MNIST is not loaded"):
        web.start_training({})


# ---------------------------------------------------------------- training


def test_start_training_describes_the_run(loaded):
    info = web.start_training({"preset": "seed", "n_filter": 8, "train_size": 1000, "batch_size": 100, "epochs": 2})
    assert is_plain(info)
    assert info["steps_per_epoch"] == 10 and info["total_steps"] == 20 and info["train_size"] == 1000
    assert info["model"]["name"] == "seed" and info["model"]["hparams"]["n_filter"] == 8
    assert web.model_info()["source"] == "pretrained"  # drawing keeps the old model meanwhile


def test_a_full_run_reports_progress_and_replaces_the_model(trained_lenet):
    slices, _ = trained_lenet
    assert all(is_plain(s) for s in slices)
    assert [s["done"] for s in slices] == [False] * (len(slices) - 1) + [True]
    steps = [e for s in slices for e in s["events"] if e["kind"] == "step"]
    epochs = [e for s in slices for e in s["events"] if e["kind"] == "epoch"]
    assert [e["step"] for e in steps] == list(range(1, math.ceil(N_TRAIN / 32) + 1))
    assert len(epochs) == 1 and epochs[0]["test_accuracy"] > 0.8  # observed 0.88 on 500 test digits
    fractions = [s["progress"]["fraction"] for s in slices]
    assert fractions == sorted(fractions) and fractions[-1] == 1
    assert all(s["progress"]["examples_per_second"] > 0 for s in slices)
    losses = [e["loss"] for e in steps]
    assert all(loss > 0 for loss in losses) and np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns
    assert all(0 <= e["running_accuracy"] <= 1 for e in steps)
    final = slices[-1]["model"]
    assert final["source"] == "trained" and final["test_accuracy"] == epochs[0]["test_accuracy"]
    assert final["epochs"] == 1 and slices[-1]["diverged"] is None


def test_train_slice_needs_a_run(loaded):
    with pytest.raises(ValueError, match="no training run"):
        web.train_slice(0.1)


def test_stop_before_an_epoch_keeps_the_previous_model(loaded):
    web.start_training({"train_size": 1000, "batch_size": 50})
    web.train_slice(1, max_steps=1)
    out = web.stop()
    assert out == {"kept": False, "model": web.model_info()} and out["model"]["source"] == "pretrained"
    with pytest.raises(ValueError, match="no training run"):
        web.train_slice(0.1)
    assert web.stop()["kept"] is False  # stopping twice is harmless


def test_stop_after_an_epoch_keeps_the_weights_of_that_epoch(loaded, mnist):
    web.start_training({"preset": "seed", "n_filter": 4, "train_size": 300, "batch_size": 100, "epochs": 3})
    epoch = None
    while epoch is None:
        epoch = next((e for e in web.train_slice(0.01)["events"] if e["kind"] == "epoch"), None)
    web.train_slice(0.01)  # a step into epoch 2: these weights must not be kept
    out = web.stop()
    assert out["kept"] is True
    assert out["model"]["source"] == "trained" and out["model"]["epochs"] == 1
    assert out["model"]["test_accuracy"] == epoch["test_accuracy"]
    _, _, x_test, y_test = mnist
    kept = pycnn.load_model(web.model_bytes())
    assert np.mean(kept.predict(x_test[:N_TEST]) == y_test[:N_TEST]) == epoch["test_accuracy"]


def test_checkpoint_is_the_last_finished_epoch_for_the_page_to_keep(loaded):
    assert web.checkpoint() is None  # no run
    web.start_training({"preset": "seed", "n_filter": 4, "train_size": 300, "batch_size": 100, "epochs": 3})
    assert web.checkpoint() is None  # no epoch finished yet
    epoch = None
    while epoch is None:
        epoch = next((e for e in web.train_slice(0.01)["events"] if e["kind"] == "epoch"), None)
    web.train_slice(0.01)  # a step into epoch 2 changes the model, not the checkpoint
    kept = web.checkpoint()
    assert {k: kept[k] for k in ("name", "epoch", "epochs", "test_accuracy")} == {
        "name": "seed", "epoch": 1, "epochs": 3, "test_accuracy": epoch["test_accuracy"]}
    web.stop()  # Stop keeps the same epoch's weights
    kept_model, current = pycnn.load_model(kept["bytes"]), pycnn.load_model(web.model_bytes())
    for a, b in zip(kept_model.params(), current.params(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_stops_and_says_so(loaded):
    web.start_training({"preset": "seed", "n_filter": 4, "train_size": 200, "batch_size": 100, "epochs": 2})
    # Poison one weight, as a blown-up update would: the next loss is not finite.
    web._state.run.model.params()[0].value[...] = np.inf
    out = web.train_slice(0.5)
    assert out["done"] is True and out["model"]["source"] == "pretrained"
    assert "diverged" in out["diverged"] and "learning rate" in out["diverged"]
    assert is_plain(out)
    with pytest.raises(ValueError, match="no training run"):
        web.train_slice(0.1)


def test_replies_survive_json(trained_lenet, loaded):
    """Plain data all the way: what toJs converts is what JSON can carry."""
    slices, _ = trained_lenet
    json.dumps(slices)
    json.dumps(web.predict(bytes(28 * 28), 28, 28))


# ---------------------------------------------------------------- model files


def model_file(**kwargs) -> bytes:
    name = kwargs.pop("name", "seed")
    return pycnn.build_model(name, **kwargs).to_bytes()


def test_load_model_file_makes_the_model_active(loaded):
    info = web.load_model_file(FakeJsBuffer(model_file(n_filter=4)))
    assert info["source"] == "file" and info["name"] == "seed" and info["hparams"]["n_filter"] == 4
    assert is_plain(info) and web.model_info() == info
    assert web.load_model_file(model_file(name="lenet"), source="saved")["source"] == "saved"
    with pytest.raises(ValueError, match="source must be one of file, saved"):
        web.load_model_file(model_file(), source="cloud")


@pytest.mark.parametrize("data, message", [
    (b"", r"is empty"),
    (b"%PDF-1.4 not a model", r"is not a \.npz file"),
    (model_file()[:300], r"corrupt or truncated \.npz"),
    (model_file(num_class=5), r"this model predicts 5 classes, not 10"),
    (model_file(img_height=32, img_width=32), r"this model takes images of shape \(32, 32, 1\)"),
])
def test_refused_model_files_say_why_and_keep_the_model(loaded, data, message):
    before, weights = web.model_info(), web.model_bytes()
    with pytest.raises(ModelFormatError, match=message) as refused:
        web.load_model_file(data)
    assert "choose a .npz model saved by `pycnn train --save` or by this page" in str(refused.value)
    assert web.model_info() == before and web.model_bytes() == weights


def test_use_pretrained_goes_back_to_the_pretrained_model(loaded):
    pretrained = web.model_info()
    web.load_model_file(model_file(n_filter=4))
    assert web.use_pretrained() == pretrained == web.model_info()
    web.reset()
    with pytest.raises(ValueError, match="no pretrained model"):
        web.use_pretrained()


# ---------------------------------------------------------------- insight


def test_predict_with_maps_adds_each_convolutions_feature_maps(loaded, mnist):
    _, _, x_test, _ = mnist
    out = web.predict(*canvas_from_digit(x_test[0]), with_maps=True)
    assert [m["layer"] for m in out["maps"]] == ["conv1", "conv2"]
    assert [m["activation"] for m in out["maps"]] == ["relu1", "relu2"]
    assert [(m["count"], m["height"], m["width"]) for m in out["maps"]] == [(16, 28, 28), (32, 10, 10)]
    assert all(len(m["pixels"]) == m["count"] * m["height"] * m["width"] * 4 for m in out["maps"])
    assert is_plain(out)
    assert {k: out[k] for k in ("digit", "probs", "image")} == web.predict(*canvas_from_digit(x_test[0]))
    assert web.predict(bytes(784), 28, 28, with_maps=True)["maps"] is None


def test_filters_show_the_model_being_trained(loaded):
    before = web.filters()
    assert (before["layer"], before["count"], before["height"], before["width"]) == ("conv1", 16, 5, 5)
    web.start_training({"preset": "seed", "n_filter": 4, "filter_size": 3, "train_size": 200, "batch_size": 50})
    during = web.filters()
    assert (during["count"], during["height"]) == (4, 3)
    web.train_slice(1, max_steps=1)
    assert web.filters()["pixels"] != during["pixels"]  # one Adam step moves every weight
    web.stop()
    assert web.filters() == before  # nothing finished: the active model's filters again
    assert is_plain(before)


def test_chart_puts_runs_one_after_another(loaded):
    assert web.chart()["runs"] == [] and web.chart()["loss"] == {"x": [], "y": []}
    first = web.start_training({"preset": "seed", "n_filter": 4, "train_size": 200, "batch_size": 50})
    assert first["chart_end"] == 4
    while not web.train_slice(0.5)["done"]:
        pass
    second = web.start_training({"preset": "seed", "n_filter": 4, "train_size": 300, "batch_size": 100})
    assert second["chart_end"] == 4 + 3
    web.train_slice(1, max_steps=1)
    web.stop()
    series = web.chart()
    assert is_plain(series)
    assert series["runs"] == [{"start": 0, "end": 4}, {"start": 4, "end": 5}]
    assert series["loss"]["x"] == [1, 2, 3, 4, 5] and series["loss_smoothed"]["x"] == [1, 2, 3, 4, 5]
    assert series["train_accuracy"]["x"] == series["test_accuracy"]["x"] == [4]
    assert series["loss_smoothed"]["y"][4] == series["loss"]["y"][4]  # each run's average starts afresh


def test_training_sample(loaded, mnist):
    x_train, y_train, _, _ = mnist
    s = web.training_sample(12, seed=5)
    assert s["count"] == 12 and len(set(s["indices"])) == 12 and max(s["indices"]) < N_TRAIN
    assert s["labels"] == y_train[s["indices"]].tolist()
    px = np.frombuffer(s["pixels"], np.uint8).reshape(12, 28, 28, 4)
    np.testing.assert_array_equal(px[..., 0], x_train[s["indices"]])
    assert is_plain(s)
    with pytest.raises(ValueError, match="sample size"):
        web.training_sample(0)


def test_evaluation_in_slices_matches_the_library(trained_lenet, mnist_bytes, mnist):
    _, model = trained_lenet
    web.set_dataset(**mnist_bytes)
    web.load_pretrained(model)
    with pytest.raises(ValueError, match="no evaluation is running"):
        web.evaluation_slice()
    with pytest.raises(ValueError, match="no finished evaluation"):
        web.evaluation_cell(0, 0)
    assert web.start_evaluation() == {"evaluated": 0, "total": N_TEST, "done": False}
    slices = [web.evaluation_slice(0.0)]  # one chunk per call
    while slices[-1]["report"] is None:
        slices.append(web.evaluation_slice(0.0))
    assert len(slices) == math.ceil(N_TEST / web.EVAL_BATCH)
    report = slices[-1]["report"]
    assert is_plain(slices)
    _, _, x_test, y_test = mnist
    accuracy, pred = pycnn.evaluate(pycnn.load_model(model), x_test[:N_TEST], y_test[:N_TEST])
    assert report["accuracy"] == accuracy and report["model"] == web.model_info()
    assert np.array_equal(report["confusion"], confusion_matrix(y_test[:N_TEST], pred, 10))
    assert np.allclose(np.sum(report["confusion_share"], axis=1), 1, atol=1e-3)
    gallery = report["gallery_images"]
    assert gallery["count"] == len(report["gallery"]) == min(60, report["mistakes"])
    first = report["gallery"][0]
    np.testing.assert_array_equal(np.frombuffer(gallery["pixels"], np.uint8)[: 784 * 4 : 4],
                                  x_test[first["index"]].ravel())
    cell = web.evaluation_cell(first["label"], first["predicted"])
    assert cell["cell_count"] == report["confusion"][first["label"]][first["predicted"]]
    assert first["index"] in cell["indices"] and cell["count"] == len(cell["indices"]) and is_plain(cell)
    right = web.evaluation_cell(1, 1)  # a cell fuller than the 50 images shown
    assert right["cell_count"] == report["confusion"][1][1] > 50
    assert right["count"] == len(right["indices"]) == 50 and len(right["pixels"]) == 50 * 784 * 4
    assert right["indices"] == [int(i) for i in np.flatnonzero((y_test[:N_TEST] == 1) & (pred == 1))[:50]]
    with pytest.raises(ValueError, match="label must be a digit"):
        web.evaluation_cell(10, 0)
    # A new model makes the report stale: its cells are no longer offered.
    web.use_pretrained()
    with pytest.raises(ValueError, match="no finished evaluation"):
        web.evaluation_cell(0, 0)


# ---------------------------------------------------------------- data-parallel training

PARALLEL = {"preset": "seed", "optimizer": "sgd", "lr": 0.05, "batch_size": 32, "epochs": 1,
            "train_size": 300, "n_filter": 8, "filter_size": 6, "stride": 2, "padding": 2, "shards": 2}


class Workers:
    """Several pycnn.web states in one process, one per simulated browser worker."""

    def __init__(self, count: int) -> None:
        self.states = []
        for _ in range(count):
            web.reset()
            self.states.append(web._state)

    def on(self, k: int, name: str, *args):
        web._state = self.states[k]
        return getattr(web, name)(*args)

    def step(self, ks):
        """What the workers do for one step (web/parallel.js): compute everywhere, swap the
        parts, apply everywhere with the others' gradients (each keeps its own)."""
        parts = [self.on(k, "compute_gradients") for k in ks]
        stats = [{key: p[key] for key in ("count", "loss", "correct")} for p in parts]
        return [self.on(k, "apply_gradients", stats,
                        *(None if j == i else FakeJsBuffer(p["grads"]) for j, p in enumerate(parts)))
                for i, k in enumerate(ks)]

    def run(self, ks, until=lambda out: False):
        """Steps (and the first worker's test evaluations) until the run ends; the first worker's slices."""
        slices = []
        while not slices or not slices[-1]["done"]:
            out = self.step(ks)
            slices.append(out[0])
            if until(out[0]):
                break
            while slices[-1]["evaluating"]:
                slices.append(self.on(0, "train_slice", 5, 0))
                for k in ks[1:]:
                    assert self.on(k, "train_slice", 5, 0)["evaluating"] is False  # replicas have no test set
        return slices


def start_parallel(workers: Workers, mnist_bytes, config=PARALLEL) -> dict:
    workers.on(0, "set_dataset", *mnist_bytes.values())
    workers.on(0, "load_pretrained", pycnn.build_model("lenet").to_bytes())
    info = workers.on(0, "start_training", config, 0)
    params = workers.on(0, "params")
    for k in range(1, info["shards"]):
        shard = workers.on(0, "shard_data", k)
        assert is_plain(shard)
        out = workers.on(k, "start_replica", web.validate_config(config, 2000), FakeJsBuffer(shard["images"]),
                         FakeJsBuffer(shard["labels"]), shard["shape"], k, FakeJsBuffer(params))
        assert out == {"shard": k, "train_size": shard["shape"][0]}
    return info


def test_two_workers_end_with_the_weights_of_one_worker_on_the_same_batches(mnist_bytes):
    web.set_dataset(**mnist_bytes)
    web.start_training(PARALLEL)  # one worker, the two-shard schedule
    while not (alone := web.train_slice(5))["done"]:
        pass
    expected = np.frombuffer(web.params(), np.float32)
    workers = Workers(2)
    info = start_parallel(workers, mnist_bytes)
    assert (info["shards"], info["steps_per_epoch"]) == (2, 10)
    slices = workers.run([0, 1])
    assert all(is_plain(s) for s in slices)
    assert slices[-1]["done"] and slices[-1]["model"]["source"] == "trained"
    assert slices[-1]["progress"]["examples"] == 300
    first, second = (np.frombuffer(workers.on(k, "params"), np.float32) for k in (0, 1))
    np.testing.assert_array_equal(first, second)  # the replicas stay bit-identical
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-6)
    assert slices[-1]["events"][-1]["test_accuracy"] == alone["events"][-1]["test_accuracy"]
    # The first worker's trained model is the active one, as after an ordinary run.
    model = pycnn.load_model(workers.on(0, "model_bytes"))
    np.testing.assert_array_equal(model.flat_params(), first)


def test_a_lone_first_worker_finishes_the_run_on_the_same_batches(mnist_bytes):
    web.set_dataset(**mnist_bytes)
    web.start_training(PARALLEL)
    while not web.train_slice(5)["done"]:
        pass
    expected = np.frombuffer(web.params(), np.float32)
    workers = Workers(2)
    start_parallel(workers, mnist_bytes)
    workers.step([0, 1])
    workers.on(0, "compute_gradients")  # the second worker dies during this step
    assert workers.on(0, "go_solo") == {"shards": 1}
    slices = workers.run([0])
    assert slices[-1]["done"]
    np.testing.assert_allclose(np.frombuffer(workers.on(0, "params"), np.float32), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the poisoned weight makes NaNs on purpose
def test_a_diverging_parallel_run_ends_on_every_worker(mnist_bytes):
    workers = Workers(2)
    start_parallel(workers, mnist_bytes)
    workers.step([0, 1])
    # Poison one weight of the second replica only, as a blown-up update would: the summed loss is not finite.
    workers.states[1].run.model.params()[0].value[...] = np.inf
    out = workers.step([0, 1])
    assert [o["done"] for o in out] == [True, True]
    assert "diverged" in out[0]["diverged"] and out[0]["diverged"] == out[1]["diverged"]
    assert workers.on(0, "model_info")["source"] == "pretrained"
    assert is_plain(out[0])


@pytest.mark.parametrize("call, message", [
    (lambda: web.shard_data(1), "no training run"),
    (lambda: web.compute_gradients(), "no training run"),
    (lambda: web.start_replica(PARALLEL, b"\0" * 784, b"\0", [1, 28, 28], 5, b""),
     "shard must be a whole number from 1 to 1"),
    (lambda: web.start_replica(PARALLEL, b"\0" * 784, b"\0", [1, 28, 28], 1, b"\0" * 8), "float32 vector of"),
    (lambda: web.validate_config({**PARALLEL, "batch_size": 16, "shards": 17}),
     "number of workers must be between 1 and 16"),
    (lambda: web.apply_gradients([{"count": 1, "loss": 0.0, "correct": 0}] * 2, b"\0" * 4, b"\0" * 4),
     "None in this worker's place"),
])
def test_parallel_calls_refuse_what_does_not_fit(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_shard_data_needs_a_parallel_run(loaded):
    web.start_training({**PARALLEL, "shards": 1})
    with pytest.raises(ValueError, match="not data-parallel"):
        web.shard_data(1)
