"""Sequential, the presets, predictions and the .npz model file."""

import io
import json
import zipfile

import numpy as np
import pytest

import pycnn.layers
from pycnn import Conv2D, Dense, Flatten, ModelFormatError, ReLU, Sequential, build_model, load_model


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def count(model):
    return sum(p.value.size for p in model.params())


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# -- presets -------------------------------------------------------------------

def test_seed_preset_shapes_and_parameters():
    model = build_model("seed")
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "ReLU", "Flatten", "Dense"]
    assert model.names == ["conv1", "relu1", "flatten1", "dense1"]
    # 7x7 kernel, stride 1, padding 1 on 28x28: (28 + 2 - 7) + 1 = 24
    assert model.shapes == [(24, 24, 32), (24, 24, 32), (18432,), (10,)]
    assert [p.name for p in model.params()] == ["conv1.W", "conv1.b", "dense1.W", "dense1.b"]
    assert [p.value.shape for p in model.params()] == [(7, 7, 1, 32), (32,), (18432, 10), (10,)]
    assert count(model) == 7 * 7 * 32 + 32 + 18432 * 10 + 10 == 185930
    assert model.input_shape == (28, 28, 1) and model.num_classes == 10
    assert model.spec["name"] == "seed" and model.spec["hparams"]["n_filter"] == 32
    assert model.forward(np.zeros((3, 28, 28, 1), dtype=np.float32)).shape == (3, 10)


def test_seed_preset_hyperparameters():
    model = build_model("seed", n_filter=8, h_filter=6, w_filter=4, stride=2, padding=0, num_class=4)
    # (28 - 6) / 2 + 1 = 12 rows, (28 - 4) / 2 + 1 = 13 columns
    assert model.shapes[0] == (12, 13, 8)
    assert model.layers[0].W.value.shape == (6, 4, 1, 8)
    assert model.num_classes == 4 and model.shapes[-1] == (4,)


def test_lenet_preset_shapes_and_parameters():
    model = build_model("lenet")
    assert model.shapes == [(28, 28, 16), (28, 28, 16), (14, 14, 16), (10, 10, 32), (10, 10, 32),
                            (5, 5, 32), (800,), (128,), (128,), (10,)]
    # conv1 5*5*1*16 + 16, conv2 5*5*16*32 + 32, dense1 800*128 + 128, dense2 128*10 + 10
    assert count(model) == 416 + 12832 + 102528 + 1290
    assert model.forward(np.zeros((2, 28, 28, 1), dtype=np.float32)).shape == (2, 10)


def test_presets_are_seeded():
    a, b, c = build_model("seed", seed=1), build_model("seed", seed=1), build_model("seed", seed=2)
    for pa, pb in zip(a.params(), b.params(), strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
    assert not np.array_equal(a.params()[0].value, c.params()[0].value)


@pytest.mark.parametrize("name, hparams, message", [
    ("resnet", {}, "unknown model 'resnet'; choose one of seed, lenet"),
    ("seed", {"h_filter": 40}, "a filter 40 pixels in height is larger than the padded image (28 + 2*1 = 30)"),
    ("seed", {"w_filter": 31, "padding": 1}, "larger than the padded image"),
    ("seed", {"n_filter": 0}, "number of filters must be a whole number >= 1, got 0"),
    ("seed", {"stride": 0}, "stride must be a whole number >= 1"),
    ("seed", {"padding": -1}, "padding must be a whole number >= 0"),
    ("seed", {"num_class": 0}, "num_class must be a whole number >= 1"),
    ("seed", {"filters": 3}, "bad hyperparameters for seed"),
    ("lenet", {"img_height": 8, "img_width": 8}, "lenet needs images of at least 12x12"),
])
def test_bad_hyperparameters(name, hparams, message):
    with pytest.raises(ValueError) as info:
        build_model(name, **hparams)
    assert message in str(info.value)


def test_sequential_checks_its_layers():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([])
    with pytest.raises(ValueError, match="must output class scores"):
        Sequential([Conv2D(1, 2, 3)], (8, 8, 1))
    with pytest.raises(ValueError, match=r"dense1 \(Dense\) on input \(36,\)"):
        Sequential([Conv2D(1, 1, 3), Flatten(), Dense(50, 10)], (8, 8, 1))


def test_first_layer_computes_no_input_gradient(monkeypatch):
    model = build_model("seed", n_filter=4)
    assert [layer.input_grad for layer in model.layers] == [False, True, True, True]

    def no_col2im(*args, **kwargs):
        raise AssertionError("col2im called for the first layer")

    monkeypatch.setattr(pycnn.layers, "col2im", no_col2im)
    x = model.as_images(images(2))
    model.backward(np.ones_like(model.forward(x)))
    assert all(p.grad.any() for p in model.params())


def test_lenet_backward_skips_only_the_input_gradient(monkeypatch):
    model = build_model("lenet")
    shapes = []
    real = pycnn.layers.col2im

    def spy(cols, x_shape, *args, **kwargs):
        shapes.append(tuple(x_shape))
        return real(cols, x_shape, *args, **kwargs)

    monkeypatch.setattr(pycnn.layers, "col2im", spy)
    model.backward(np.ones_like(model.forward(model.as_images(images(2)))))
    assert (2, 28, 28, 1) not in shapes  # no gradient for the images
    assert (2, 14, 14, 16) in shapes     # but conv2 passes its input gradient back


# -- predictions ---------------------------------------------------------------

def test_predict_proba_accepts_uint8_and_float_images():
    model = build_model("seed", n_filter=4)
    x = images(7)
    p_uint8 = model.predict_proba(x)
    p_float = model.predict_proba((x / 255.0).astype(np.float32)[..., None])
    assert p_uint8.shape == (7, 10) and p_uint8.dtype == np.float32
    np.testing.assert_allclose(p_uint8.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(p_uint8, p_float, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict_proba(x, batch_size=3), p_uint8, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.predict(x), p_uint8.argmax(axis=1))


def test_predict_proba_rejects_wrong_shapes():
    model = build_model("seed", n_filter=4)
    with pytest.raises(ValueError, match=r"^images have shape \(2, 27, 28\); this model takes \(N, 28, 28\)$"):
        model.predict_proba(np.zeros((2, 27, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"have shape \(2, 28, 28, 3\); this model takes \(N, 28, 28\)$"):
        model.predict_proba(np.zeros((2, 28, 28, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        model.predict_proba(np.zeros((2, 28, 28), dtype=np.uint8), batch_size=0)


def test_activations_are_named():
    model = build_model("seed", n_filter=4)
    acts = model.activations(images(1))
    assert [name for name, _ in acts] == model.names
    assert acts[0][1].shape == (1, 24, 24, 4) and acts[-1][1].shape == (1, 10)


# -- save and load ---------------------------------------------------------------

@pytest.mark.parametrize("name, hparams", [("seed", {"n_filter": 6, "h_filter": 6, "w_filter": 6, "stride": 2}),
                                           ("lenet", {"hidden": 32})])
def test_save_load_round_trip(tmp_path, name, hparams):
    model = build_model(name, seed=3, **hparams)
    x = images(5)
    path = tmp_path / "model.npz"
    model.save(path)
    assert not list(tmp_path.glob("*.tmp"))
    for source in (path, str(path), model.to_bytes(), io.BytesIO(path.read_bytes())):
        loaded = load_model(source)
        np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
        assert loaded.architecture() == model.architecture()
        assert loaded.spec == model.spec
        for p, q in zip(model.params(), loaded.params(), strict=True):
            assert p.name == q.name and q.value.dtype == np.float32
            np.testing.assert_array_equal(p.value, q.value)


def test_file_holds_architecture_json_and_named_weights():
    model = build_model("seed", n_filter=4)
    with np.load(io.BytesIO(model.to_bytes())) as npz:
        assert sorted(npz.files) == ["architecture", "conv1.W", "conv1.b", "dense1.W", "dense1.b"]
        arch = json.loads(str(npz["architecture"]))
        assert npz["conv1.W"].shape == (7, 7, 1, 4) and npz["dense1.W"].dtype == np.float32
    assert arch["format"] == "pycnn-model" and arch["version"] == 1
    assert arch["input_shape"] == [28, 28, 1] and arch["layers"][0]["type"] == "Conv2D"


def test_custom_sequential_round_trip():
    model = Sequential([Conv2D(1, 2, 3, rng=np.random.default_rng(0)), ReLU(), Flatten(),
                        Dense(2 * 6 * 6, 3, rng=np.random.default_rng(1))], (8, 8, 1))
    loaded = load_model(model.to_bytes())
    assert loaded.spec["name"] == "custom"
    x = np.random.default_rng(2).random((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def _arch_and_state(model):
    return model.architecture(), dict(model.state())


def load_error(data, **kwargs):
    with pytest.raises(ModelFormatError) as info:
        load_model(data, **kwargs)
    return str(info.value)


def test_load_refuses_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not the weights you are looking for\n")
    message = load_error(path)
    assert message == f"{path} is not a .npz file"  # not numpy's advice about pickles


def test_load_refuses_a_plain_npy_array():
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    assert load_error(buf.getvalue()) == "the model data is a single-array .npy file, not a .npz model"


def test_load_refuses_truncated_and_corrupt_files(tmp_path):
    data = build_model("seed", n_filter=4).to_bytes()
    assert "is a corrupt or truncated .npz file" in load_error(data[: len(data) // 2])
    assert "is a corrupt or truncated .npz file" in load_error(data[:10])
    assert load_error(b"") == "the model data is empty"
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # inside dense1.W: the CRC no longer matches
    assert "is a corrupt .npz file: dense1.W.npy is damaged" in load_error(bytes(corrupt))
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:-100])
    assert load_error(path).startswith(f"{path} is a corrupt or truncated .npz file")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.npz")


def test_load_refuses_npz_without_architecture():
    message = load_error(npz_bytes(weights=np.zeros(3)))
    assert "no 'architecture' entry" in message and "not saved by pycnn" in message


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(format="keras"), "not a pycnn model (missing format marker)"),
    (lambda a: a.update(version=99), "the model file has format version 99, from a newer pycnn; this pycnn reads "
                                     "version 1 and older: upgrade pycnn to load it"),
    (lambda a: a.update(version="1"), "model file version '1' is not a format version"),
    (lambda a: a.update(preset={"name": "resnet", "hparams": {}}),
     "unknown architecture 'resnet' in the model file; this pycnn knows seed, lenet"),
    (lambda a: a["preset"]["hparams"].update(n_filter=8),
     "the model file says it is a seed model, but its layers are not seed's for its hyperparameters"),
    (lambda a: a["layers"][0].update(type="Conv3D"), "unknown layer type 'Conv3D'"),
    (lambda a: a["layers"][0].update(kh=40), "does not fit"),
    (lambda a: a.pop("layers"), "architecture is invalid"),
])
def test_load_refuses_bad_architecture(change, message):
    arch, state = _arch_and_state(build_model("seed", n_filter=4))
    change(arch)
    assert message in load_error(npz_bytes(architecture=np.array(json.dumps(arch)), **state))


def test_load_refuses_architecture_that_is_not_json():
    _, state = _arch_and_state(build_model("seed", n_filter=4))
    assert "not valid JSON" in load_error(npz_bytes(architecture=np.array("{not json"), **state))


def test_load_refuses_weights_of_another_architecture():
    arch, _ = _arch_and_state(build_model("seed", n_filter=4))
    _, other = _arch_and_state(build_model("seed", n_filter=8))
    message = load_error(npz_bytes(architecture=np.array(json.dumps(arch)), **other))
    assert "weights conv1.W have shape (7, 7, 1, 8), but the architecture needs (7, 7, 1, 4)" in message


def test_load_refuses_missing_extra_and_bad_weights():
    arch, state = _arch_and_state(build_model("seed", n_filter=4))
    arch_text = np.array(json.dumps(arch))
    missing = {k: v for k, v in state.items() if k != "dense1.b"}
    assert "missing ['dense1.b']" in load_error(npz_bytes(architecture=arch_text, **missing))
    assert "unexpected ['dense2.W']" in load_error(npz_bytes(architecture=arch_text, **state,
                                                             **{"dense2.W": np.zeros(2)}))
    nan = dict(state, **{"conv1.b": np.full(4, np.nan, dtype=np.float32)})
    assert "conv1.b are not finite" in load_error(npz_bytes(architecture=arch_text, **nan))
    ints = dict(state, **{"conv1.b": np.zeros(4, dtype=np.int32)})
    assert "conv1.b are not finite floating-point" in load_error(npz_bytes(architecture=arch_text, **ints))
    objects = dict(state, **{"conv1.b": np.array([None] * 4, dtype=object)})
    message = load_error(npz_bytes(architecture=arch_text, **objects))
    assert "conv1.b holds Python objects (a pickle), which pycnn never loads" in message


def test_load_refuses_other_images_or_classes():
    data = build_model("seed", n_filter=4, num_class=5).to_bytes()
    assert "predicts 5 classes, not 10" in load_error(data, num_classes=10)
    assert "takes images of shape (28, 28, 1), not (32, 32, 3)" in load_error(data, input_shape=(32, 32, 3))
    assert load_model(data, input_shape=(28, 28, 1), num_classes=5).num_classes == 5


def test_load_error_is_a_value_error():
    assert issubclass(ModelFormatError, ValueError)


def test_load_refuses_a_zip_that_is_not_npz(tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "is a zip archive but not a .npz file (it holds readme.txt)" in load_error(path)


def test_describe_has_a_line_per_layer_with_its_output_and_parameters():
    model = build_model("lenet", seed=0)
    lines = model.describe().splitlines()
    assert len(lines) == len(model.layers)
    assert lines[0].split() == ["conv1", "Conv2D", "->", "(28,", "28,", "16)", "416", "params"]
