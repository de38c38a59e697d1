"""pycnn.insight: image blocks, a training sample, the filters and the feature maps as images."""

import json

import numpy as np
import pytest

import pycnn
from pycnn.insight import (
    dataset_sample,
    feature_maps,
    filter_images,
    image_block,
    images,
)


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


def test_image_block_layout():
    block = image_block(np.array([[[7, 9]]], dtype=np.uint8))
    assert block["pixels"] == bytes([7, 7, 7, 255, 9, 9, 9, 255])
