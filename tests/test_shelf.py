"""pycnn.shelf: the page's models and their infos, and reading a model file the visitor chose."""

import io
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn.model import ModelFormatError
from pycnn.shelf import Shelf, model_info, read_model_file

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


def test_the_shelf_keeps_the_previous_model_one_swap_away():
    shelf = Shelf()
    a, b = pycnn.build_model("seed", n_filter=2), pycnn.build_model("seed", n_filter=3)
    shelf.put(a, model_info(a, "pretrained"))
    shelf.put(a, model_info(a, "pretrained"))  # the same model again changes nothing
    assert shelf.previous is None
    shelf.put(b, model_info(b, "file"))
    assert shelf.model is b and shelf.previous_info["source"] == "pretrained"
    shelf.restore_previous()
    assert shelf.model is a and shelf.previous_info["source"] == "file"
    info = model_info(b, "trained", 0.5, 1, "stopped after 10 images of epoch 2")
    assert info["stopped"] == "stopped after 10 images of epoch 2" and info["parameters"] == b.num_params
    with pytest.raises(ValueError, match="source must be one of"):
        model_info(b, "cloud")
