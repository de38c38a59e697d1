"""pycnn.health: layer health measured during training, and a learning-rate change during a run."""

import numpy as np
import pytest

from pycnn import web
from pycnn.errors import ConfigError, SessionError
from pycnn.health import LayerHealth
from pycnn.model import build_model
from pycnn.optim import make_optimizer
from pycnn.train import Trainer


def trainer(mnist, observer=None, lr=0.01, n=1000):
    x, y = mnist[0][:n], mnist[1][:n]
    model = build_model("seed", n_filter=4, seed=0)
    t = Trainer(model, x, y, optimizer=make_optimizer("sgd", model.params(), lr), batch_size=20, epochs=1)
    t.observer = observer
    return t


def test_watched_steps_are_measured_and_training_is_unchanged(mnist):
    watched, plain = trainer(mnist, LayerHealth(every=5)), trainer(mnist)
    events = watched.run(max_steps=20)
    plain.run(max_steps=20)
    np.testing.assert_array_equal(watched.model.flat_params(), plain.model.flat_params())
    s = watched.observer.series()
    assert s["steps"] == [1, 5, 10, 15, 20]
    assert set(s["spread"]) == {"conv1", "relu1", "dense1"} and set(s["zeros"]) == {"relu1"}
    assert set(s["grad"]) == set(s["ratio"]) == {"conv1.W", "dense1.W"}
    assert all(0 <= z <= 1 for z in s["zeros"]["relu1"])
    assert all(len(v) == 5 for v in (*s["spread"].values(), *s["grad"].values(), *s["ratio"].values()))
    assert s["accuracy"] == [events[i - 1]["running_accuracy"] for i in s["steps"]]
    assert s["lr"] == [0.01] * 5


def test_the_update_ratio_is_the_weights_relative_change(mnist):
    t = trainer(mnist, LayerHealth(every=1))
    before = t.model.layers[0].W.value.copy()
    t.run(max_steps=1)
    change = np.linalg.norm(t.model.layers[0].W.value - before) / np.linalg.norm(before)
    assert t.observer.series()["ratio"]["conv1.W"][0] == pytest.approx(change, rel=1e-5)
    g = t.model.layers[0].W.grad
    assert t.observer.series()["grad"]["conv1.W"][0] == pytest.approx(np.sqrt(np.mean(g.astype(np.float64) ** 2)))


def test_a_learning_rate_of_1_makes_the_update_ratio_jump(mnist):
    t = trainer(mnist, LayerHealth(every=1), lr=0.01)
    t.run(max_steps=10)
    t.observer.set_lr(t, 1.0)
    t.run(max_steps=10)
    s = t.observer.series()
    assert s["marks"] == [{"step": 11, "lr": 1.0}] and s["lr"][9:11] == [0.01, 1.0]
    for name in ("conv1.W", "dense1.W"):
        low, high = np.mean(s["ratio"][name][:10]), np.mean(s["ratio"][name][10:])
        assert high > 20 * low, (name, low, high)  # 100 times the rate: observed 40-100 times the ratio


def test_long_runs_are_thinned_for_the_page(mnist):
    health = LayerHealth(every=1)
    t = trainer(mnist, health, n=2000)
    import pycnn.health
    pycnn.health.MAX_POINTS, old = 30, pycnn.health.MAX_POINTS
    try:
        t.run(max_steps=100)
        s = health.series()
    finally:
        pycnn.health.MAX_POINTS = old
    assert len(s["steps"]) == 30 and s["steps"][0] == 1 and s["steps"][-1] == 100
    assert len(s["ratio"]["conv1.W"]) == 30


@pytest.mark.parametrize("value", [0, -1, 11, True, "0.1", float("nan")])
def test_a_bad_learning_rate_is_refused(mnist, value):
    t = trainer(mnist, LayerHealth())
    with pytest.raises(ConfigError, match="learning rate must be a number between"):
        t.observer.set_lr(t, value)


def test_the_session_watches_a_run_and_changes_its_rate(mnist):
    x_train, y_train, x_test, y_test = mnist
    web.reset()
    try:
        web.set_dataset(x_train[:600].tobytes(), y_train[:600].astype(np.uint8).tobytes(), x_test[:100].tobytes(),
                        y_test[:100].astype(np.uint8).tobytes(), [600, 28, 28], [100, 28, 28])
        assert web.health() is None
        with pytest.raises(SessionError, match="no training run"):
            web.set_lr(0.1)
        web.start_training({"preset": "seed", "n_filter": 4, "train_size": 600, "optimizer": "sgd", "lr": 0.01,
                            "batch_size": 20})
        web.train_slice(max_seconds=100, max_steps=10)
        reply = web.set_lr(0.5)
        assert reply["mark"] == {"step": 11, "lr": 0.5} and reply["state"]["phase"] == "training"
        web.train_slice(max_seconds=100, max_steps=10)
        h = web.health()
        assert h["steps"] == [1, 5, 10, 15, 20] and h["lr"][-1] == 0.5 and h["marks"] == [reply["mark"]]
    finally:
        web.reset()
