"""pycnn.web, the API the browser worker calls, run in CPython on real MNIST.

The worker hands it raw bytes (the MNIST files as fetched, the canvas ink, model
files) and plain dicts; every reply must be plain data (dict, list, int, float,
str, bytes, None) so ``toJs`` can convert it, and every call that changes
something carries the session's whole state. The session's rules themselves
are tested in tests/test_session.py.
"""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

import pycnn
import pycnn.session
import pycnn.settings
from pycnn import web
from pycnn.errors import DataFormatError, SessionError
from pycnn.metrics import confusion_matrix
from pycnn.model import ModelFormatError
from pycnn.session import Session

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


def idx_file(array: np.ndarray) -> bytes:
    """An IDX file of uint8 ``array``, as MNIST's files are."""
    magic = bytes([0, 0, 8, array.ndim])
    return magic + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def mnist_files(mnist):
    """The first N_TRAIN / N_TEST images and labels as the four gzipped IDX files the page fetches."""
    x_train, y_train, x_test, y_test = mnist
    return [gzip.compress(idx_file(a), compresslevel=1)
            for a in (x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST])]


def test_set_mnist_parses_the_gzipped_idx_files_as_fetched(mnist_files, mnist):
    reply = web.set_mnist(*(FakeJsBuffer(f) for f in mnist_files))
    assert {k: reply[k] for k in ("train", "test")} == {"train": N_TRAIN, "test": N_TEST}
    assert reply["state"]["mnist"] == {"train": N_TRAIN, "test": N_TEST} and is_plain(reply)
    s = web.training_sample(3, seed=1)
    np.testing.assert_array_equal(np.frombuffer(s["pixels"], np.uint8).reshape(3, 28, 28, 4)[..., 0],
                                  mnist[0][s["indices"]])


def test_set_mnist_takes_raw_idx_files_too(mnist_files):
    raw = [gzip.decompress(f) for f in mnist_files]
    assert web.set_mnist(*raw)["train"] == N_TRAIN


def test_set_mnist_refuses_broken_files_and_keeps_nothing(mnist_files):
    with pytest.raises(DataFormatError):
        web.set_mnist(mnist_files[0][:100], *mnist_files[1:])
    with pytest.raises(DataFormatError):
        web.set_mnist(mnist_files[1], mnist_files[0], *mnist_files[2:])  # labels and images swapped
    assert web.state()["mnist"] is None


def test_set_dataset_takes_idx_pixel_bytes(mnist_bytes):
    reply = web.set_dataset(**mnist_bytes)
    assert (reply["train"], reply["test"]) == (N_TRAIN, N_TEST)


def test_set_dataset_accepts_pyodide_buffers(mnist_bytes):
    args = {k: FakeJsBuffer(v) if isinstance(v, bytes) else v for k, v in mnist_bytes.items()}
    assert web.set_dataset(**args)["train"] == N_TRAIN


@pytest.mark.parametrize("change, message", [
    ({"train_shape": [N_TRAIN, 28, 27]}, r"shape \(N, 28, 28\)"),
    ({"train_shape": [N_TRAIN + 1, 28, 28]}, r"bytes are not images of shape"),
    ({"test_labels": b"\x01" * (N_TEST - 1)}, r"500 test images but labels of shape \(499,\)"),
    ({"train_labels": b"\x0c" * N_TRAIN}, r"train labels outside 0..9"),
    ({"train_images": 12345}, r"must be bytes-like"),
    ({"test_shape": "many"}, r"list of whole numbers"),
])
def test_set_dataset_rejects_inconsistent_buffers(mnist_bytes, change, message):
    with pytest.raises(ValueError, match=message):
        web.set_dataset(**{**mnist_bytes, **change})


def test_defaults_hold_the_form_and_the_learning_rate_per_optimizer():
    d = web.defaults()
    assert d["settings"] == pycnn.settings.DEFAULTS and d["lr"] == {"adam": 0.001, "momentum": 0.01, "sgd": 0.1}
    assert d["max_workers"] == 8 and d["settings"]["lr"] == d["lr"][d["settings"]["optimizer"]]
    assert is_plain(d) and web.validate_config(d["settings"], N_TRAIN)["lr"] == 0.001


# ---------------------------------------------------------------- models


def test_load_pretrained_reports_the_model():
    info = web.load_pretrained(pycnn.build_model("lenet").to_bytes())["model"]
    assert info["name"] == "lenet" and info["source"] == "pretrained"
    assert info["parameters"] == sum(p.value.size for p in pycnn.build_model("lenet").params())
    assert is_plain(info) and web.state()["model"] == info


def test_load_pretrained_reports_the_model_and_the_state():
    reply = web.load_pretrained(pycnn.build_model("lenet").to_bytes())
    assert reply["state"]["phase"] == "idle" and reply["state"]["model"] == reply["model"]
    assert is_plain(reply)


@pytest.mark.parametrize("data", [b"", b"not a zip file", b"PK\x03\x04broken"])
def test_load_pretrained_rejects_non_models(data):
    with pytest.raises(ModelFormatError):
        web.load_pretrained(data)
    assert web.state()["model"] is None


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
    assert web.predict(bytes(280 * 280), 280, 280) == {"digit": None, "probs": None, "image": None, "maps": None}


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


# ---------------------------------------------------------------- settings (the checks: tests/test_settings.py)


def test_validate_config_takes_a_js_object():
    class FakeJsObject:
        def to_py(self):
            return {"batch_size": 32}

    assert web.validate_config(FakeJsObject(), N_TRAIN)["batch_size"] == 32


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


def model_info() -> dict | None:
    return web.state()["model"]


def test_start_training_describes_the_run(loaded):
    info = web.start_training({"preset": "seed", "n_filter": 8, "train_size": 1000, "batch_size": 100, "epochs": 2})
    assert is_plain(info)
    assert info["steps_per_epoch"] == 10 and info["total_steps"] == 20 and info["train_size"] == 1000
    assert info["model"]["name"] == "seed" and info["model"]["hparams"]["n_filter"] == 8
    assert info["state"]["phase"] == "training" and info["state"]["run"]["phase"] == "training"
    assert model_info()["source"] == "pretrained"  # drawing keeps the old model meanwhile


def test_a_full_run_reports_progress_and_replaces_the_model(trained_lenet):
    slices, _ = trained_lenet
    assert all(is_plain(s) for s in slices)
    assert [s["done"] for s in slices] == [False] * (len(slices) - 1) + [True]
    steps = [e for s in slices for e in s["events"] if e["kind"] == "step"]
    epochs = [e for s in slices for e in s["events"] if e["kind"] == "epoch"]
    assert [e["step"] for e in steps] == list(range(1, math.ceil(N_TRAIN / 32) + 1))
    assert len(epochs) == 1 and epochs[0]["test_accuracy"] > 0.8  # observed 0.88 on 500 test digits
    runs = [s["state"]["run"] for s in slices]
    fractions = [r["fraction"] for r in runs]
    assert fractions == sorted(fractions) and fractions[-1] == 1
    assert all(r["images_per_s"] > 0 for r in runs)
    losses = [e["loss"] for e in steps]
    assert all(loss > 0 for loss in losses) and np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns
    assert all(0 <= e["running_accuracy"] <= 1 for e in steps)
    final = slices[-1]["state"]
    assert final["phase"] == "idle" and final["run"]["phase"] == "done"
    assert final["model"]["source"] == "trained" and final["model"]["test_accuracy"] == epochs[0]["test_accuracy"]
    assert final["model"]["epochs"] == 1 and final["previous"] is None


def test_train_slice_needs_a_run(loaded):
    with pytest.raises(SessionError, match="no training run"):
        web.train_slice(0.1)


def test_stop_keeps_the_weights_reached(loaded):
    web.start_training({"train_size": 1000, "batch_size": 50})
    web.train_slice(1, max_steps=2)
    reached = web.params()
    assert web.request_stop()["state"]["phase"] == "stopping"
    out = web.train_slice(0.1)
    assert out["done"] is True and out["events"] == []
    assert out["state"]["model"]["stopped"] == "stopped after 100 images of epoch 1"
    assert out["state"]["previous"]["source"] == "pretrained" and out["state"]["run"]["speed"] == ""
    assert pycnn.load_model(web.model_bytes()).flat_params().tobytes() == reached
    with pytest.raises(SessionError, match="no training run"):
        web.train_slice(0.1)
    assert web.request_stop()["state"]["phase"] == "idle"  # stopping without a run is harmless
    back = web.restore_previous()
    assert back["model"]["source"] == "pretrained" and back["state"]["previous"]["stopped"]


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
    assert is_plain(kept)


def test_replies_survive_json(trained_lenet, loaded):
    """Plain data all the way: what toJs converts is what JSON can carry."""
    slices, _ = trained_lenet
    json.dumps(slices)
    json.dumps(web.predict(bytes(28 * 28), 28, 28))
    json.dumps(web.state())


# ---------------------------------------------------------------- model files


def model_file(**kwargs) -> bytes:
    name = kwargs.pop("name", "seed")
    return pycnn.build_model(name, **kwargs).to_bytes()


def test_load_model_file_makes_the_model_active(loaded):
    reply = web.load_model_file(FakeJsBuffer(model_file(n_filter=4)))
    info = reply["model"]
    assert info["source"] == "file" and info["name"] == "seed" and info["hparams"]["n_filter"] == 4
    assert is_plain(reply) and model_info() == info and reply["state"]["previous"]["source"] == "pretrained"
    assert web.load_model_file(model_file(name="lenet"), source="saved")["model"]["source"] == "saved"
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
    before, weights = model_info(), web.model_bytes()
    with pytest.raises(ModelFormatError, match=message) as refused:
        web.load_model_file(data)
    assert "choose a .npz model saved by `pycnn train --save` or by this page" in str(refused.value)
    assert model_info() == before and web.model_bytes() == weights


def test_use_pretrained_goes_back_to_the_pretrained_model(loaded):
    pretrained = model_info()
    web.load_model_file(model_file(n_filter=4))
    assert web.use_pretrained()["model"] == pretrained == model_info()
    web.reset()
    with pytest.raises(SessionError, match="no pretrained model"):
        web.use_pretrained()


# ---------------------------------------------------------------- insight


def test_predict_adds_each_convolutions_feature_maps(loaded, mnist):
    _, _, x_test, _ = mnist
    out = web.predict(*canvas_from_digit(x_test[0]))
    assert [m["layer"] for m in out["maps"]] == ["conv1", "conv2"]
    assert [m["activation"] for m in out["maps"]] == ["relu1", "relu2"]
    assert [(m["count"], m["height"], m["width"]) for m in out["maps"]] == [(16, 28, 28), (32, 10, 10)]
    assert all(len(m["pixels"]) == m["count"] * m["height"] * m["width"] * 4 for m in out["maps"])
    assert is_plain(out)
    assert web.predict(bytes(784), 28, 28)["maps"] is None


def test_filters_show_the_model_being_trained(loaded):
    before = web.filters()
    assert (before["layer"], before["count"], before["height"], before["width"]) == ("conv1", 16, 5, 5)
    web.start_training({"preset": "seed", "n_filter": 4, "filter_size": 3, "train_size": 200, "batch_size": 50})
    during = web.filters()
    assert (during["count"], during["height"]) == (4, 3)
    web.train_slice(1, max_steps=1)
    assert web.filters()["pixels"] != during["pixels"]  # one Adam step moves every weight
    web.request_stop()
    web.train_slice()
    assert web.filters()["pixels"] != before["pixels"]  # the stopped run's model is the current one
    web.restore_previous()
    assert web.filters() == before
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
    web.request_stop()
    web.train_slice()
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
    with pytest.raises(SessionError, match="no evaluation is running"):
        web.evaluation_slice()
    with pytest.raises(SessionError, match="no finished evaluation"):
        web.evaluation_cell(0, 0)
    started = web.start_evaluation()
    assert started["evaluation"] == {"evaluated": 0, "total": N_TEST, "done": False}
    assert started["state"]["phase"] == "evaluating"
    slices = [web.evaluation_slice(0.0)]  # one chunk per call
    while slices[-1]["report"] is None:
        slices.append(web.evaluation_slice(0.0))
    assert len(slices) == math.ceil(N_TEST / pycnn.session.EVAL_BATCH)
    report = slices[-1]["report"]
    assert is_plain(slices)
    _, _, x_test, y_test = mnist
    accuracy, pred = pycnn.evaluate(pycnn.load_model(model), x_test[:N_TEST], y_test[:N_TEST])
    assert report["accuracy"] == accuracy and report["model"] == model_info()
    assert slices[-1]["state"]["report"] == "current" and slices[-1]["state"]["phase"] == "idle"
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
    # A new model makes the report stale (its cells still show the same test images).
    assert web.load_model_file(model_file(n_filter=2))["state"]["report"] == "stale"


# ---------------------------------------------------------------- data-parallel training
# The first worker is a Session of its own here; this module's session is the extra worker,
# so its calls take and give the bytes the workers swap.

PARALLEL = {"preset": "seed", "optimizer": "sgd", "lr": 0.05, "batch_size": 32, "epochs": 1,
            "train_size": 300, "n_filter": 8, "filter_size": 6, "stride": 2, "padding": 2}


def test_an_extra_worker_trains_its_shard_from_the_bytes_it_is_sent(mnist):
    x_train, y_train, x_test, y_test = mnist
    first = Session()
    first.set_mnist(x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST])
    first.start_training(PARALLEL, workers=2)
    shard = first.shard_data(1)
    out = web.start_replica(first.run.config, FakeJsBuffer(shard["images"].tobytes()),
                            FakeJsBuffer(shard["labels"].astype(np.uint8).tobytes()), [150, 28, 28], 1,
                            FakeJsBuffer(first.params().tobytes()))
    assert out == {"shard": 1, "train_size": 150}
    while first.running:
        mine, theirs = first.compute_gradients(), web.compute_gradients()
        assert is_plain(theirs)
        parts = [{k: p[k] for k in ("count", "loss", "correct", "seconds")} for p in (mine, theirs)]
        reply = first.apply_gradients(parts, [None, np.frombuffer(theirs["grads"], np.float32)])
        extra = web.apply_gradients(parts, FakeJsBuffer(mine["grads"].tobytes()), None)
        assert is_plain(extra) and extra["evaluating"] is False
        if web.state()["phase"] == "training":
            assert web.params() == first.params().tobytes()  # bit-identical replicas
        while first.running and reply["evaluating"]:
            reply = {**first.train_slice(5), "evaluating": first.running}
    assert extra["done"] and extra["state"]["phase"] == "empty"


def test_the_first_workers_calls_give_bytes(loaded):
    info = web.start_training(PARALLEL, workers=2)
    assert info["shards"] == 2 and info["state"]["run"]["workers"] == 2
    shard = web.shard_data(1)
    assert is_plain(shard) and shard["shape"] == [150, 28, 28] and len(shard["images"]) == 150 * 784
    part = web.compute_gradients()
    assert is_plain(part) and len(part["grads"]) == 4 * len(np.frombuffer(web.params(), np.float32))
    reply = web.apply_gradients([{k: part[k] for k in ("count", "loss", "correct", "seconds")}] * 2, None,
                                part["grads"])
    assert reply["state"]["run"]["examples"] == 2 * part["count"] and is_plain(reply)
    assert web.go_solo() == {"shards": 1}


@pytest.mark.parametrize("call, message", [
    (lambda: web.shard_data(1), "no training run"),
    (lambda: web.compute_gradients(), "no training run"),
    (lambda: web.start_replica({**PARALLEL, "shards": 2}, b"\0" * 784, b"\0", [1, 28, 28], 5, b""),
     "shard must be a whole number from 1 to 1"),
    (lambda: web.start_replica({**PARALLEL, "shards": 2}, b"\0" * 784, b"\0", [1, 28, 28], 1, b"\0" * 8),
     "float32 vector of"),
    (lambda: web.start_replica({**PARALLEL, "shards": 2}, b"\0" * 784, b"\0", [1, 28, 28], 1, b"\0" * 7),
     "not whole float32 numbers"),
    (lambda: web.validate_config({**PARALLEL, "batch_size": 16, "shards": 17}),
     "number of workers must be between 1 and 16"),
    (lambda: web.start_training(PARALLEL, workers=0), "MNIST is not loaded"),
])
def test_parallel_calls_refuse_what_does_not_fit(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_apply_gradients_needs_none_in_this_workers_place(loaded):
    web.start_training(PARALLEL, workers=2)
    web.compute_gradients()
    with pytest.raises(ValueError, match="None in this worker's place"):
        web.apply_gradients([{"count": 1, "loss": 0.0, "correct": 0}] * 2, b"\0" * 4, b"\0" * 4)
