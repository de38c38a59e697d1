"""pycnn.saliency: the gradient of a class score with respect to the input pixels."""

from pathlib import Path

import numpy as np
import pytest

from pycnn.errors import ConfigError
from pycnn.model import build_model, load_model
from pycnn.preprocess import preprocess_digit
from pycnn.saliency import class_gradient, saliency_map

PRETRAINED = Path(__file__).resolve().parent.parent / "static" / "pretrained.npz"


def float64(model):
    for p in model.params():
        p.value = p.value.astype(np.float64)
    return model


def score(model, image: np.ndarray) -> float:
    """The class score (logit) of 7 for one image (28, 28)."""
    return model.forward(image[None, ..., None], training=False)[0, 7]


def drawn_one() -> np.ndarray:
    """A vertical stroke on a 280x280 canvas, preprocessed as the page does: (28, 28) in [0, 1]."""
    canvas = np.zeros((280, 280), np.uint8)
    canvas[40:240, 130:150] = 255
    return preprocess_digit(canvas)


@pytest.mark.parametrize("preset", ["seed", "lenet"])
def test_the_map_is_the_numerical_gradient_of_the_class_score(preset):
    hp = {"n_filter": 4, "h_filter": 5, "w_filter": 5} if preset == "seed" else {"c1": 3, "c2": 4, "hidden": 8}
    model = float64(build_model(preset, seed=1, **hp))
    image = np.random.default_rng(0).random((28, 28))
    grad, _, target = class_gradient(model, image, target=7)
    assert target == 7
    eps, numeric = 1e-6, np.zeros((28, 28))
    for i in range(28):
        for j in range(28):
            up, down = image.copy(), image.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (score(model, up) - score(model, down)) / (2 * eps)
    err = np.abs(grad - numeric).max() / np.abs(numeric).max()
    assert err < 1e-4, err


def test_training_still_skips_the_first_layers_input_gradient():
    model = build_model("seed", n_filter=2, h_filter=3, w_filter=3, seed=0)
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)
    logits = model.forward(x)
    assert model.backward(np.ones_like(logits)) is None
    assert model.backward(np.ones_like(logits), input_grad=True).shape == x.shape
    assert model.backward(np.ones_like(logits)) is None  # asking once does not switch it on for good


def test_a_drawn_one_is_salient_on_its_stroke():
    model = load_model(PRETRAINED)
    image = drawn_one()
    view = saliency_map(model, image)
    assert view["digit"] == 1
    size = np.abs(np.array(view["gradient"]).reshape(28, 28))
    stroke = image > 0.1
    assert stroke[np.unravel_index(size.argmax(), size.shape)]
    # The stroke is 40 of 784 pixels (5%); half of the 20 largest values lie on it (observed 0.5),
    # and its mean is 3.6 times the rest's.
    top = np.argsort(size.ravel())[::-1][:20]
    assert stroke.ravel()[top].mean() >= 0.4, stroke.ravel()[top].mean()
    assert size[stroke].mean() > 3 * size[~stroke].mean()


def test_another_class_gives_another_map():
    model = load_model(PRETRAINED)
    one, seven = saliency_map(model, drawn_one()), saliency_map(model, drawn_one(), target=7)
    assert seven["target"] == 7 and seven["digit"] == one["digit"] == 1
    a, b = np.array(one["gradient"]), np.array(seven["gradient"])
    assert np.corrcoef(a, b)[0, 1] < 0.9
    assert seven["image"]["pixels"] != one["image"]["pixels"]


def test_the_overlay_is_red_where_the_score_rises_and_blue_where_it_falls():
    model = load_model(PRETRAINED)
    view = saliency_map(model, drawn_one())
    g = np.array(view["gradient"]).reshape(28, 28)
    px = np.frombuffer(view["image"]["pixels"], np.uint8).reshape(28, 28, 4).astype(int)
    hi, lo = np.unravel_index(g.argmax(), g.shape), np.unravel_index(g.argmin(), g.shape)
    assert px[hi][0] > px[hi][2] and px[lo][2] > px[lo][0]


@pytest.mark.parametrize("target", [-1, 10, 2.5, True, "7"])
def test_a_class_outside_0_to_9_is_refused(target):
    model = build_model("seed", n_filter=2, seed=0)
    with pytest.raises(ConfigError, match="class must be a whole number from 0 to 9"):
        class_gradient(model, np.zeros((28, 28)), target)
