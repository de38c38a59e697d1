"""pycnn.session_insight through pycnn.web: saliency, a step taken apart and your digits, as the worker calls them."""

from pathlib import Path

import numpy as np
import pytest

from pycnn import web
from pycnn.errors import ConfigError, DataFormatError, SessionError

PRETRAINED = (Path(__file__).resolve().parent.parent / "static" / "pretrained.npz").read_bytes()
W = H = 280


def is_plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return not isinstance(value, np.generic)
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


@pytest.fixture
def session(mnist):
    x_train, y_train, x_test, y_test = mnist
    web.reset()
    web.load_pretrained(PRETRAINED)
    web.set_dataset(x_train[:3000].tobytes(), y_train[:3000].astype(np.uint8).tobytes(), x_test[:2500].tobytes(),
                    y_test[:2500].astype(np.uint8).tobytes(), [3000, 28, 28], [2500, 28, 28])
    yield
    web.reset()


def canvas(kind: str) -> bytes:
    ink = np.zeros((H, W), np.uint8)
    if kind == "one":
        ink[40:240, 130:150] = 255
    elif kind == "seven":
        ink[50:70, 60:220] = 255
        for r in range(70, 240):  # the diagonal from the bar's right end down to the left
            c = int(220 - (r - 70) * 0.6)
            ink[r, c - 10 : c + 10] = 255
    return ink.tobytes()


def test_saliency_of_a_drawn_one_and_of_a_chosen_class(session):
    one = web.saliency(canvas("one"), W, H)
    seven = web.saliency(canvas("one"), W, H, 7)
    assert is_plain(one) and one["digit"] == one["target"] == 1 and seven["target"] == 7
    assert len(one["gradient"]) == 784 and one["gradient"] != seven["gradient"]
    assert one["image"]["count"] == 1 and len(one["image"]["pixels"]) == 784 * 4


def test_a_step_on_a_drawn_digit_and_on_a_test_image(session, mnist):
    view = web.step_apart(canvas("seven"), W, H, 7, "adam", 0.001)
    assert is_plain(view) and view["label"] == 7 and view["optimizer"] == "adam" and view["test_index"] is None
    kinds = {s["kind"] for s in view["stages"]}
    assert kinds == {"input", "forward", "loss", "backward", "update"}
    test = web.step_apart_test(3)
    assert test["label"] == int(mnist[3][3]) and test["test_index"] == 3 and test["lr"] == 0.1
    assert web.state()["model"]["source"] == "pretrained"  # the model used for drawing is not changed
    with pytest.raises(ConfigError, match="test image must be a number from 0 to 2499"):
        web.step_apart_test(2500)


def test_a_step_on_a_mistake_of_the_gallery(session, mnist):
    with pytest.raises(SessionError, match="evaluate the model first"):
        web.step_apart_mistake(0)
    web.start_evaluation()
    report = None
    while report is None:
        report = web.evaluation_slice(1.0)["report"]
    for k in (0, 1):  # the page sends the place of the tile clicked; its image is the report's
        view = web.step_apart_mistake(k)
        assert view["test_index"] == report["gallery"][k]["index"]
        assert view["label"] == int(mnist[3][view["test_index"]]) == report["gallery"][k]["label"]
        assert view["digit"] == report["gallery"][k]["predicted"] != view["label"]
    with pytest.raises(ConfigError, match="the gallery holds mistakes 0 to"):
        web.step_apart_mistake(10_000)


def test_an_empty_canvas_is_refused_with_a_reason(session):
    empty = canvas("none")
    for call in (lambda: web.saliency(empty, W, H), lambda: web.step_apart(empty, W, H, 3),
                 lambda: web.user_digit(empty, W, H)):
        with pytest.raises(SessionError, match="draw a digit first"):
            call()


def test_your_digits_round_trip_through_their_file(session):
    kept = [web.user_digit(canvas(kind), W, H) for kind in ("one", "seven")]
    assert all(len(k["image"]) == 784 and is_plain(k) for k in kept)
    images, labels = b"".join(k["image"] for k in kept), bytes([1, 7])
    back = web.read_digits_file(web.digits_file(images, labels))
    assert back == {"images": images, "labels": [1, 7], "count": 2}
    with pytest.raises(DataFormatError, match="are not 3 images of 28x28"):
        web.digits_file(images, bytes([1, 7, 2]))


def test_fine_tuning_makes_a_new_model_with_the_old_one_a_click_away(session):
    kept = [web.user_digit(canvas(kind), W, H) for kind in ("one", "seven", "seven")]
    reply = web.fine_tune(b"".join(k["image"] for k in kept), bytes([1, 7, 7]), 1.0)
    assert is_plain(reply) and reply["steps"] > 0 and len(reply["digits"]) == 3
    assert reply["state"]["model"]["source"] == "trained"
    assert reply["state"]["model"]["stopped"] == "fine-tuned on 3 of your digits"
    assert reply["state"]["previous"]["source"] == "pretrained"
    assert "Test accuracy on 2,000 test images" in reply["message"]


def test_fine_tuning_waits_for_a_run_to_end(session):
    web.start_training({"preset": "seed", "n_filter": 2, "train_size": 200})
    kept = web.user_digit(canvas("one"), W, H)
    with pytest.raises(SessionError, match="cannot fine-tune while the session is training"):
        web.fine_tune(kept["image"], bytes([1]), 1.0)
