import io
import json
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn.insight import (
    ChartHistory,
    Evaluator,
    dataset_sample,
    downsample,
    evaluation_report,
    feature_maps,
    filter_images,
    image_block,
    images,
    model_summary,
    read_model_file,
)
from pycnn.model import ModelFormatError


def grey(block: dict) -> np.ndarray:
    """Pixels (N, H, W) of an image block, checking the RGBA layout on the way."""
    n, h, w = block["count"], block["height"], block["width"]
    px = np.frombuffer(block["pixels"], dtype=np.uint8)
    if block["format"] == "grey":
        return px.reshape(n, h, w)
    px = px.reshape(n, h, w, 4)
    assert (px[..., 3] == 255).all()
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()
    return px[..., 0]


def assert_plain(data) -> None:
    """JSON-able once bytes are set aside (no NaN, no numpy scalars)."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if not isinstance(x, bytes)}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    json.dumps(strip(data), allow_nan=False)


@pytest.fixture(scope="module")
def small():
    """A small seed model on 8x8 images and a synthetic data set of 3 classes."""
    model = pycnn.build_model("seed", n_filter=3, h_filter=3, w_filter=3, padding=1, num_class=3,
                              img_height=8, img_width=8, seed=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(230, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, size=230)
    return model, x, y


# -- image blocks ----------------------------------------------------------------

def test_images_pack_the_selected_images():
    x = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    block = images(x, [4, 0, 4])
    assert (block["count"], block["height"], block["width"], block["format"]) == (3, 2, 3, "rgba")
    assert len(block["pixels"]) == 3 * 2 * 3 * 4
    np.testing.assert_array_equal(grey(block), x[[4, 0, 4]])
    g = images(x, [1], rgba=False)
    assert g["pixels"] == x[1].tobytes()
    assert images(x, [])["count"] == 0 and images(x, [])["pixels"] == b""
    with pytest.raises(ValueError, match="0..4"):
        images(x, [5])


def test_images_from_floats():
    x = np.array([[[0.0, 0.5, 1.0]]])
    np.testing.assert_array_equal(grey(images(x, [0])), [[[0, 128, 255]]])


def test_dataset_sample_is_random_without_repeats():
    x = np.arange(100, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), dtype=np.uint8)
    y = np.arange(100) % 10
    s = dataset_sample(x, y, n=64, seed=3)
    assert s["count"] == 64 and len(set(s["indices"])) == 64
    assert s["labels"] == [i % 10 for i in s["indices"]]
    np.testing.assert_array_equal(grey(s)[:, 0, 0], s["indices"])  # image i is filled with i
    assert s["indices"] == dataset_sample(x, y, n=64, seed=3)["indices"]
    assert s["indices"] != dataset_sample(x, y, n=64, seed=4)["indices"]
    assert dataset_sample(x[:10], y[:10], n=64)["count"] == 10
    assert_plain(s)


# -- filters and feature maps ----------------------------------------------------

def test_filter_images_scale_each_filter_around_zero():
    model = pycnn.build_model("seed", n_filter=3, h_filter=2, w_filter=2, num_channel=2, seed=0)
    w = np.zeros((2, 2, 2, 3), dtype=np.float32)  # (KH, KW, C, F)
    w[:, :, 0, 0] = [[-2, 0], [1, 2]]
    w[:, :, 1, 0] = [[-2, 0], [1, 2]]      # same in both channels: the mean is that filter
    w[:, :, 0, 1] = [[4, 0], [0, 0]]
    w[:, :, 1, 1] = [[0, 0], [0, -1]]      # mean [[2, 0], [0, -0.5]], scale 2
    model.layers[0].W.value[...] = w        # filter 2 stays all zero
    f = filter_images(model)
    assert (f["layer"], f["count"], f["height"], f["width"]) == ("conv1", 3, 2, 2)
    assert f["scale"] == [2.0, 2.0, 0.0]
    # 127.5 * (1 + w / scale), rounded half to even: 0 -> 128
    np.testing.assert_array_equal(grey(f), [[[0, 128], [191, 255]],
                                            [[255, 128], [128, 96]],
                                            [[128, 128], [128, 128]]])
    assert_plain(f)


def test_filter_images_of_a_model_without_convolution():
    model = pycnn.Sequential([pycnn.Flatten(), pycnn.Dense(16, 3)], input_shape=(4, 4, 1))
    assert filter_images(model) is None
    assert feature_maps(model, np.zeros((4, 4))) == []


def naive_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: int) -> np.ndarray:
    """Stride-1 cross-correlation of one image (H, W, C) with w (KH, KW, C, F), by loops."""
    x = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    kh, kw, _, f = w.shape
    oh, ow = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = np.tensordot(x[i : i + kh, j : j + kw], w, axes=3) + b
    return out


def test_feature_maps_match_a_manual_forward():
    model = pycnn.build_model("lenet", c1=2, c2=3, hidden=8, seed=2)
    for layer in (model.layers[0], model.layers[3]):
        layer.b.value[...] = np.linspace(-0.3, 0.3, layer.out_ch)  # make some maps partly zero
    image = np.random.default_rng(5).random((28, 28), dtype=np.float32)
    maps = feature_maps(model, image)
    assert [(m["layer"], m["activation"], m["count"], m["height"], m["width"]) for m in maps] == \
        [("conv1", "relu1", 2, 28, 28), ("conv2", "relu2", 3, 10, 10)]

    conv1, _, _, conv2 = model.layers[:4]
    relu1 = np.maximum(naive_conv(image[:, :, None], conv1.W.value, conv1.b.value, 2), 0)
    pooled = relu1.reshape(14, 2, 14, 2, 2).max(axis=(1, 3))
    relu2 = np.maximum(naive_conv(pooled, conv2.W.value, conv2.b.value, 0), 0)
    for m, expected in zip(maps, (relu1, relu2), strict=True):
        expected = expected.transpose(2, 0, 1)  # (F, OH, OW)
        top = expected.max(axis=(1, 2))
        np.testing.assert_allclose(m["max"], top, rtol=1e-4)
        scaled = np.rint(255 * expected / np.where(top > 0, top, 1)[:, None, None])
        assert np.abs(grey(m).astype(int) - scaled).max() <= 1  # float32 vs float64 rounding
        for g, e, t in zip(grey(m), expected, top, strict=True):
            assert (g[e == 0] == 0).all() and g.max() == (255 if t > 0 else 0)
    assert_plain(maps)


def test_feature_maps_without_relu_span_min_to_max():
    conv = pycnn.Conv2D(1, 1, 1)
    conv.W.value[...] = 1
    model = pycnn.Sequential([conv, pycnn.Flatten(), pycnn.Dense(4, 2)], input_shape=(2, 2, 1))
    conv.b.value[...] = -0.5
    (m,) = feature_maps(model, np.array([[0.0, 0.25], [0.5, 1.0]]))
    assert m["activation"] == "conv1"
    np.testing.assert_array_equal(grey(m), [[[0, 64], [128, 255]]])


def test_feature_maps_refuse_a_wrong_shape():
    model = pycnn.build_model("seed", n_filter=2, seed=0)
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        feature_maps(model, np.zeros((20, 20)))


# -- evaluation ------------------------------------------------------------------

def test_evaluation_report(small):
    model, x, y = small
    report = evaluation_report(model, x, y, batch_size=64, cell_limit=4, gallery_size=10)
    proba = model.predict_proba(x)
    pred = proba.argmax(axis=1)
    acc, _ = pycnn.evaluate(model, x, y)
    assert report["accuracy"] == pytest.approx(acc)
    assert report["count"] == 230 and report["correct"] == int((pred == y).sum())
    assert report["mistakes"] == int((pred != y).sum())
    for t in range(3):
        assert report["class_counts"][t] == int((y == t).sum())
        assert report["per_class_accuracy"][t] == pytest.approx(((pred == t) & (y == t)).sum() / (y == t).sum())
        for p in range(3):
            members = np.flatnonzero((y == t) & (pred == p))
            assert report["confusion"][t][p] == len(members)
            assert report["cells"][t][p] == members[:4].tolist()
    assert report["cell_limit"] == 4

    gallery = report["gallery"]
    assert len(gallery) == min(10, report["mistakes"]) and len(gallery) > 0
    for g in gallery:
        i = g["index"]
        assert g["label"] == y[i] != g["predicted"] == pred[i]
        assert g["confidence"] == pytest.approx(proba[i].max())
    confidences = [g["confidence"] for g in gallery]
    assert confidences == sorted(confidences, reverse=True)
    wrong = np.flatnonzero(pred != y)  # nothing left out is more confident than the last shown
    shown = {g["index"] for g in gallery}
    assert all(proba[i].max() <= confidences[-1] + 1e-7 for i in wrong if i not in shown)
    assert_plain(report)


def test_evaluator_runs_in_chunks(small):
    model, x, y = small
    ev = Evaluator(model, x, y, batch_size=100)
    with pytest.raises(RuntimeError, match="not finished"):
        ev.result()
    assert ev.run(max_batches=1) == {"evaluated": 100, "total": 230, "done": False}
    assert ev.run(max_seconds=0) == {"evaluated": 200, "total": 230, "done": False}
    assert ev.run(max_batches=5) == {"evaluated": 230, "total": 230, "done": True}
    assert ev.run(max_batches=1)["evaluated"] == 230
    assert ev.result() == evaluation_report(model, x, y, batch_size=100)


def test_per_class_accuracy_of_an_absent_class(small):
    model, x, y = small
    keep = y != 2
    report = evaluation_report(model, x[keep], y[keep])
    assert report["per_class_accuracy"][2] is None and report["class_counts"][2] == 0
    with pytest.raises(ValueError, match="labels"):
        Evaluator(model, x, y[:5])


# -- charts ----------------------------------------------------------------------

def steps(losses, first=1, epoch=1):
    return [{"kind": "step", "step": first + i, "epoch": epoch, "loss": v, "accuracy": 0.5}
            for i, v in enumerate(losses)]


def test_smoothing_is_a_debiased_moving_average():
    h = ChartHistory(smoothing=0.5)
    h.extend(steps([4.0, 2.0, 1.0]))
    # ema: 2, 2, 1.5 divided by 1 - 0.5**t: 0.5, 0.75, 0.875
    assert h.series()["loss_smoothed"]["y"] == pytest.approx([4.0, 8 / 3, 1.5 / 0.875])
    assert h.series()["loss"] == {"x": [1, 2, 3], "y": [4.0, 2.0, 1.0]}
    assert ChartHistory(smoothing=0).smoothing == 0
    with pytest.raises(ValueError):
        ChartHistory(smoothing=1)


def test_runs_continue_the_step_axis():
    h = ChartHistory(smoothing=0.5)
    h.extend(steps([4.0, 2.0], epoch=1) + [{"kind": "epoch", "epoch": 1, "loss": 3.0, "train_accuracy": 0.5,
                                           "test_accuracy": 0.6, "seconds": 1.0}])
    h.extend(steps([1.0], first=3, epoch=2) + [{"kind": "epoch", "epoch": 2, "loss": 1.0,
                                               "train_accuracy": 0.7, "test_accuracy": None}])
    h.start_run()                            # a new Trainer: its steps count from 1 again
    h.extend(steps([8.0, 6.0]))
    h.extend(steps([5.0]))                   # and again, without start_run
    s = h.series()
    assert s["loss"]["x"] == [1, 2, 3, 4, 5, 6]
    assert s["runs"] == [{"start": 0, "end": 3}, {"start": 3, "end": 5}, {"start": 5, "end": 6}]
    assert s["steps"] == 6
    assert s["loss_smoothed"]["y"][3] == 8.0 and s["loss_smoothed"]["y"][5] == 5.0  # restarted per run
    assert s["train_accuracy"] == {"x": [2, 3], "y": [0.5, 0.7]}
    assert s["test_accuracy"] == {"x": [2], "y": [0.6]}
    assert_plain(s)


def test_history_of_a_real_trainer(small):
    _, x, y = small
    model = pycnn.build_model("seed", n_filter=2, h_filter=3, w_filter=3, num_class=3,
                              img_height=8, img_width=8, seed=0)
    trainer = pycnn.Trainer(model, x, y, x[:50], y[:50], optimizer=pycnn.SGD(model.params(), lr=0.01),
                            batch_size=100, epochs=2)
    h = ChartHistory()
    while not trainer.done:
        h.extend(trainer.run(max_steps=2))
    s = h.series()
    assert s["loss"]["x"] == [1, 2, 3, 4, 5, 6] and s["test_accuracy"]["x"] == [3, 6]


def test_downsample_keeps_ends_cap_and_extremes():
    y = np.sin(np.linspace(0, 20, 10_001)) + np.random.default_rng(0).normal(0, 0.1, 10_001)
    y[4321] = 50.0                            # a spike must survive
    keep = downsample(y, max_points=500)
    assert len(keep) <= 500 and keep[0] == 0 and keep[-1] == 10_000
    assert (np.diff(keep) > 0).all() and 4321 in keep
    assert y[keep].min() == y.min()
    np.testing.assert_array_equal(downsample(y[:300], 500), np.arange(300))
    # one bucket between the ends, holding 1, 2, 5, 0: its max (index 3) and min (index 4) stay
    np.testing.assert_array_equal(downsample([3, 1, 2, 5, 0, 4], 4), [0, 3, 4, 5])
    with pytest.raises(ValueError):
        downsample(y, 3)


def test_chart_series_are_capped():
    h = ChartHistory(max_points=100)
    h.extend(steps(list(np.linspace(2, 0.1, 5000))))
    s = h.series()
    assert len(s["loss"]["x"]) <= 100 and s["loss"]["x"][0] == 1 and s["loss"]["x"][-1] == 5000
    assert s["loss"]["y"][-1] == pytest.approx(0.1)
    assert len(s["loss_smoothed"]["x"]) <= 100


# -- model files -----------------------------------------------------------------

def zip_of(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


def test_read_model_file_accepts_any_fitting_model():
    for name in ("seed", "lenet"):
        model = pycnn.build_model(name, seed=3)
        loaded = read_model_file(model.to_bytes())
        assert loaded.names == model.names
        np.testing.assert_array_equal(loaded.params()[0].value, model.params()[0].value)
    assert read_model_file(memoryview(model.to_bytes())).names == model.names


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "is not a .npz file"),
    (b"just some text", "is not a .npz file"),
    (npy_bytes(), "single-array .npy file"),
    (zip_of(**{"readme.txt": b"hi"}), r"zip archive but not a .npz file \(it holds readme.txt\)"),
])
def test_read_model_file_refuses_other_files(data, message):
    with pytest.raises(ModelFormatError, match=message):
        read_model_file(data)


def test_read_model_file_refuses_damaged_files():
    good = pycnn.build_model("seed", n_filter=2, seed=0).to_bytes()
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        read_model_file(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF          # inside a weight array: its CRC no longer matches
    with pytest.raises(ModelFormatError, match="corrupt .npz file: .* is damaged"):
        read_model_file(bytes(flipped))


def test_read_model_file_refuses_other_npz_and_models():
    buf = io.BytesIO()
    np.savez(buf, weights=np.zeros(3))
    with pytest.raises(ModelFormatError, match="not saved by pycnn"):
        read_model_file(buf.getvalue())
    other_shape = pycnn.build_model("seed", n_filter=2, img_height=32, img_width=32).to_bytes()
    with pytest.raises(ModelFormatError, match=r"takes images of shape \(32, 32, 1\), not \(28, 28, 1\)"):
        read_model_file(other_shape)
    other_classes = pycnn.build_model("seed", n_filter=2, num_class=5).to_bytes()
    with pytest.raises(ModelFormatError, match="predicts 5 classes, not 10"):
        read_model_file(other_classes)
    assert read_model_file(other_classes, num_classes=5).num_classes == 5


def test_model_summary():
    s = model_summary(pycnn.build_model("lenet", seed=0))
    assert s["name"] == "lenet" and s["hparams"]["c1"] == 16 and s["num_classes"] == 10
    assert s["layers"][0] == {"name": "conv1", "type": "Conv2D", "output_shape": [28, 28, 16],
                              "params": 5 * 5 * 16 + 16}
    assert s["params"] == sum(p.value.size for p in pycnn.build_model("lenet").params())
    assert_plain(s)


def test_image_block_layout():
    block = image_block(np.array([[[7, 9]]], dtype=np.uint8))
    assert block["pixels"] == bytes([7, 7, 7, 255, 9, 9, 9, 255])
