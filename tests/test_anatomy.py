"""pycnn.anatomy and pycnn.anatomy_view: one training step taken apart, with the Trainer's numbers."""

from pathlib import Path

import numpy as np
import pytest

from pycnn.anatomy import copy_model, take_step
from pycnn.anatomy_view import step_view
from pycnn.errors import ConfigError
from pycnn.losses import softmax_cross_entropy
from pycnn.model import build_model, load_model
from pycnn.optim import make_optimizer
from pycnn.train import Trainer

PRETRAINED = Path(__file__).resolve().parent.parent / "static" / "pretrained.npz"


@pytest.fixture(scope="module")
def digit(mnist):
    x_test, y_test = mnist[2], mnist[3]
    return x_test[0], int(y_test[0])  # uint8 (28, 28), as the Trainer gets its images


def trainer_step(model, image, label, optimizer, lr):
    """What one Trainer step on a batch of this one image does to a copy of ``model``."""
    net = copy_model(model)
    opt = make_optimizer(optimizer, net.params(), lr)
    trainer = Trainer(net, image[None], np.array([label]), optimizer=opt, batch_size=1)
    event = trainer.run(max_steps=1)[0]
    return net, event


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.1), ("adam", 0.001), ("momentum", 0.01)])
@pytest.mark.parametrize("preset", ["lenet", "seed"])
def test_the_step_is_the_trainers_step(digit, preset, optimizer, lr):
    model = load_model(PRETRAINED) if preset == "lenet" else build_model("seed", n_filter=4, seed=3)
    image, label = digit
    wrong = (label + 3) % 10  # a label the model disagrees with: large gradients everywhere
    step = take_step(model, image, wrong, optimizer, lr)
    net, event = trainer_step(model, image, wrong, optimizer, lr)
    assert step.loss == pytest.approx(event["loss"], rel=1e-6)
    for p in net.params():
        np.testing.assert_array_equal(step.after[p.name], p.value, err_msg=p.name)
    for name, value in step.before.items():  # the model passed in is unchanged
        np.testing.assert_array_equal(value, model.state()[name])


def test_every_intermediate_array_is_the_models_own(digit):
    model = load_model(PRETRAINED)
    image, label = digit
    step = take_step(model, image, label)
    acts = model.activations(image[None])
    assert len(step.outputs) == len(acts) == len(model.layers)
    for out, (name, a) in zip(step.outputs, acts, strict=True):
        np.testing.assert_allclose(out, a, rtol=1e-5, atol=1e-6, err_msg=name)
    _, dlogits = softmax_cross_entropy(acts[-1][1], np.array([label]))
    np.testing.assert_allclose(step.gradients[-1], dlogits, atol=1e-6)
    # the gradient reaching relu1's output is what pool1 sent back; the one reaching conv1's output
    # is relu1's masking of it
    positive = step.outputs[0] > 0
    np.testing.assert_array_equal(step.gradients[0], np.where(positive, step.gradients[1], 0))
    assert step.loss_after <= step.loss  # a confident right answer: the loss is about 0 already


def test_the_view_steps_forward_loss_backward_update(digit):
    model = load_model(PRETRAINED)
    image, label = digit
    view = step_view(take_step(model, image, (label + 1) % 10))
    kinds = [s["kind"] for s in view["stages"]]
    n = len(model.layers)
    assert kinds == ["input"] + ["forward"] * n + ["loss"] + ["backward"] * n + ["update"]
    first = view["stages"][1]
    assert first["shape"] == [28, 28, 16] and first["maps"]["count"] == 16
    assert "Σ" in first["formula"] and first["explanation"].endswith(".")
    dense = view["stages"][n]
    assert dense["values_total"] == 10 and len(dense["values"]) == 10
    flat = view["stages"][7]
    assert flat["values_total"] == 800 and len(flat["values"]) == 128
    loss = view["stages"][n + 1]
    assert loss["label"] == (label + 1) % 10 and sum(loss["probs"]) == pytest.approx(1, abs=1e-5)
    conv1_back = view["stages"][-2]
    assert conv1_back["title"].endswith("conv1's output") and conv1_back["filter_grads"]["count"] == 16
    assert conv1_back["params"][0]["name"] == "conv1.W" and conv1_back["params"][0]["grad_norm"] > 0
    update = view["stages"][-1]
    assert update["before"]["count"] == update["after"]["count"] == update["change"]["count"] == 16
    assert update["before"]["pixels"] != update["after"]["pixels"]
    assert 0 < update["relative_change"] < 1 and view["loss_after"] < view["loss"]


def test_a_bad_label_or_optimizer_is_refused(digit):
    model = build_model("seed", n_filter=2, seed=0)
    with pytest.raises(ConfigError, match="label must be a whole number from 0 to 9"):
        take_step(model, digit[0], 10)
    with pytest.raises(ConfigError, match="optimizer must be one of"):
        take_step(model, digit[0], 1, "rmsprop")
