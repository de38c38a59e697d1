"""pycnn.run: a run's status arithmetic, on a stand-in trainer whose counters and clocks the test sets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pycnn.run import TEST_COST, Run, format_seconds


@dataclass
class FakeTrainer:
    """The counters and clocks of a Trainer that Run reads."""

    epochs: int = 1
    epoch: int = 0
    examples: int = 0
    evaluated: int = 0
    evaluating: bool = False
    train_seconds: float = 0.0
    test_seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs


def make_run(**kwargs) -> tuple[Run, FakeTrainer]:
    trainer = FakeTrainer(**kwargs)
    return Run(trainer, model=None, config={"preset": "lenet"}, train_size=1000, test_size=500), trainer


def test_images_per_second_counts_training_steps_only():
    run, t = make_run()
    assert run.status()["images_per_s"] is None and run.status()["eta_seconds"] is None
    t.examples, t.train_seconds = 500, 2.0
    assert run.status()["images_per_s"] == 250
    t.examples, t.evaluating, t.test_seconds = 1000, True, 30.0  # a long test pass
    assert run.status()["images_per_s"] == 500  # 1000 images in the 2 s of steps


def test_the_test_pass_has_its_share_of_the_bar_and_of_the_time_left():
    run, t = make_run()
    t.examples, t.train_seconds = 1000, 4.0  # training done: 250 images/s
    t.evaluating = True
    status = run.status()
    assert status["phase"] == "testing" and status["label"] == "Epoch 1 of 1 · measuring test accuracy… 0 / 500"
    # Before a test image is measured it costs a third of a training image (0.004 s).
    assert status["eta_seconds"] == pytest.approx(500 * TEST_COST / 250)
    assert status["fraction"] == pytest.approx(1000 / (1000 + 500 * TEST_COST))
    t.evaluated, t.test_seconds = 250, 0.5  # measured: 0.002 s per test image
    status = run.status()
    assert status["eta_seconds"] == pytest.approx(250 * 0.002)
    assert status["fraction"] < 1 and status["label"].endswith("250 / 500")
    assert status["speed"] == "250 images/s · 0 s left"


def test_the_bar_never_goes_back_and_still_reaches_the_end():
    run, t = make_run()
    t.examples, t.train_seconds, t.evaluating = 1000, 4.0, True
    before = run.status()["fraction"]  # the test pass estimated cheap
    t.evaluated, t.test_seconds = 50, 5.0  # it is 25 times dearer than estimated: the estimate drops
    held = run.status()["fraction"]
    assert held == before
    shown = [held]
    for n in (150, 300, 450, 499):
        t.evaluated, t.test_seconds = n, n * 0.1
        shown.append(run.status()["fraction"])
    assert shown == sorted(shown) and len(set(shown)) == len(shown) and shown[-1] < 1
    t.epoch, t.evaluating = 1, False
    run.end("done", "Done.")
    assert run.status()["fraction"] == 1


def test_a_finished_run_says_how_long_it_took_and_a_stopped_one_clears_its_figures():
    run, t = make_run()
    t.examples, t.train_seconds, t.epoch = 1000, 4.0, 1
    run.end("done", "Done.")
    status = run.status()
    assert status["phase"] == "done" and status["eta_seconds"] == 0
    assert status["speed"].startswith("250 images/s · took ")
    stopped, t = make_run()
    t.examples, t.train_seconds = 300, 1.0
    stopped.end("stopped", "Stopped after 300 images of epoch 1.")
    status = stopped.status()
    assert (status["speed"], status["images_per_s"], status["eta_seconds"]) == ("", None, None)
    assert status["message"] == "Stopped after 300 images of epoch 1." and status["examples"] == 300


def test_where_a_stop_leaves_the_run():
    run, t = make_run(epochs=3)
    t.examples = 300
    assert run.stop_point() == (300, 1, False)
    t.epoch, t.examples = 1, 0  # just after epoch 1's test pass
    assert run.stop_point() == (1000, 1, True)


def test_data_parallel_figures_from_the_workers_timings():
    run, t = make_run()
    run.workers = 2
    run.computed(10.0, 10.1)  # this worker computed its part in 0.1 s
    t.examples = 64
    run.applied(10.3, 10.32, [None, 0.12])  # waited 0.2 s for the other's part (0.12 s), applied in 0.02 s
    status = run.status()
    assert status["wait_ms"] == pytest.approx(200) and status["step_ms"] == pytest.approx(320)
    assert status["speedup"] == pytest.approx((0.1 + 0.12 + 0.02) / 0.32) and not status["speedup_measured"]
    assert status["images_per_s"] == pytest.approx(64 / 0.32)
    measured = run.status(one_worker_rate=100.0)
    assert measured["speedup"] == pytest.approx(2.0) and measured["speedup_measured"]


@pytest.mark.parametrize("seconds, shown", [(0.4, "0 s"), (12.6, "13 s"), (65, "1 min 05 s"), (-3, "0 s")])
def test_format_seconds(seconds, shown):
    assert format_seconds(seconds) == shown
