"""pycnn.chart: the loss and accuracy history of every run on one step axis."""

import numpy as np
import pytest

import pycnn
from pycnn.chart import ChartHistory, downsample
from test_insight import assert_plain


@pytest.fixture(scope="module")
def small():
    """A synthetic data set of 3 classes of 8x8 images."""
    rng = np.random.default_rng(0)
    return None, rng.integers(0, 256, size=(230, 8, 8), dtype=np.uint8), rng.integers(0, 3, size=230)


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
