"""pycnn.session: the page's state in one place, its phases and legal transitions, and what it
says about a run (phase, progress and speed through the test pass, Stop keeping the weights reached)."""

from __future__ import annotations

import numpy as np
import pytest

import pycnn
from pycnn import settings
from pycnn.errors import SessionError
from pycnn.phases import (
    EMPTY,
    EVALUATING,
    IDLE,
    PHASES,
    STOPPING,
    TRAINING,
    TRANSITIONS,
    check,
)
from pycnn.preprocess import preprocess_digit
from pycnn.run import RUN_PHASES
from pycnn.session import Session

N_TRAIN, N_TEST = 1000, 500
SMALL = {"preset": "seed", "n_filter": 4, "train_size": 200, "batch_size": 50, "optimizer": "sgd", "lr": 0.05}
# The default seed model costs about a million multiply-adds per image: test chunks of 91 images.
COSTLY = {"preset": "seed", "train_size": 200, "batch_size": 50, "optimizer": "sgd", "lr": 0.05}


@pytest.fixture(scope="module")
def data(mnist):
    x_train, y_train, x_test, y_test = mnist
    return x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST]


@pytest.fixture
def session(data):
    s = Session()
    s.set_mnist(*data)
    s.load_pretrained(pycnn.build_model("lenet").to_bytes())
    return s


def run_to_end(s: Session) -> list[dict]:
    statuses = []
    while s.running:
        s.train_slice(0)  # max_seconds=0: one step or one test chunk per call
        statuses.append(s.state()["run"])
    return statuses


# ---------------------------------------------------------------- phases


def test_every_phase_has_its_transitions():
    assert set(TRANSITIONS) == set(PHASES)
    assert all(to <= set(PHASES) for to in TRANSITIONS.values())
    assert EVALUATING not in TRANSITIONS[TRAINING] and TRAINING not in TRANSITIONS[STOPPING]
    assert check(IDLE, TRAINING, "train") == TRAINING
    with pytest.raises(SessionError, match="cannot evaluate while the session is stopping"):
        check(STOPPING, EVALUATING, "evaluate")


def test_a_new_session_is_empty_and_says_what_is_missing(data):
    s = Session()
    assert s.state() == {"phase": EMPTY, "model": None, "previous": None, "mnist": None, "run": None,
                         "evaluation": None, "report": "none"}
    with pytest.raises(SessionError, match="no model is loaded yet"):
        s.predict(np.zeros((28, 28), np.uint8))
    with pytest.raises(SessionError, match="MNIST is not loaded yet"):
        s.start_training({})
    with pytest.raises(SessionError, match="no training run"):
        s.train_slice()
    s.set_mnist(*data)
    assert s.state()["mnist"] == {"train": N_TRAIN, "test": N_TEST} and s.phase == EMPTY
    s.start_training(SMALL)  # no model needed to train one
    assert s.phase == TRAINING
    run_to_end(s)
    assert s.phase == IDLE and s.state()["model"]["source"] == "trained" and s.state()["previous"] is None


def test_illegal_transitions_raise_and_change_nothing(session):
    session.start_training(SMALL)
    with pytest.raises(SessionError, match="cannot start training while the session is training"):
        session.start_training(SMALL)
    with pytest.raises(SessionError, match="cannot evaluate while the session is training"):
        session.start_evaluation()
    assert session.phase == TRAINING
    session.request_stop()
    session.request_stop()  # idempotent
    assert session.phase == STOPPING
    with pytest.raises(SessionError, match="cannot start training while the session is stopping"):
        session.start_training(SMALL)
    session.train_slice()
    assert session.phase == IDLE
    session.request_stop()  # no run: nothing happens
    assert session.phase == IDLE


# ---------------------------------------------------------------- a run's status


def test_the_test_pass_is_its_own_phase_with_its_own_progress(session):
    session.start_training(COSTLY)
    statuses = run_to_end(session)
    phases = [s["phase"] for s in statuses]
    assert set(phases) <= set(RUN_PHASES)
    assert phases == ["training"] * 3 + ["testing"] * 6 + ["done"]  # 4 steps, 6 test chunks of 91 (the last ends)
    training, testing = statuses[:4], statuses[3:9]
    assert [s["label"] for s in training[:3]] == [f"Epoch 1 of 1 · {n} / 200 images" for n in (50, 100, 150)]
    assert testing[0]["label"] == "Epoch 1 of 1 · measuring test accuracy… 0 / 500"
    assert testing[1]["label"] == "Epoch 1 of 1 · measuring test accuracy… 91 / 500"
    fractions = [s["fraction"] for s in statuses]
    assert fractions == sorted(fractions)  # never back, although the first test chunk's cost revises the estimate
    assert fractions[4] < fractions[6] < fractions[8] < 1 == fractions[9]  # moves through the test pass; 1 only after
    assert all(s["eta_seconds"] > 0 for s in statuses[:-1])  # time is left while the test pass runs
    # images/s counts the training steps only: it stays put through the test pass.
    assert len({s["images_per_s"] for s in testing}) == 1 and statuses[-1]["images_per_s"] == testing[0]["images_per_s"]
    done = statuses[-1]
    assert done["speed"].endswith("images/s · took " + done["speed"].split("took ")[1]) and "left" not in done["speed"]
    assert testing[2]["speed"].endswith(" left") and done["message"] == "Done. Your model is now used for drawing."
    assert done["examples"] == done["examples_total"] == 200 and done["workers"] == 1 and done["speedup"] is None


def test_images_per_second_ignores_the_time_spent_testing(session):
    session.start_training(COSTLY)
    statuses = run_to_end(session)
    seconds_in_steps = 200 / statuses[-1]["images_per_s"]
    assert seconds_in_steps < statuses[-1]["seconds"]  # the wall time also holds the test pass
    run = session.run
    assert seconds_in_steps == pytest.approx(run.trainer.train_seconds)


# ---------------------------------------------------------------- Stop


def test_stop_keeps_the_weights_reached_and_makes_them_the_model(session):
    pretrained = session.state()["model"]
    session.start_training(SMALL)
    for _ in range(3):
        session.train_slice(0)
    reached = session.params().copy()
    session.request_stop()
    reply = session.train_slice(0)  # ends the run, trains no further
    assert reply == {"events": [], "done": True}
    state = session.state()
    assert state["phase"] == IDLE and state["previous"] == pretrained
    assert state["model"]["source"] == "trained" and state["model"]["stopped"] == "stopped after 150 images of epoch 1"
    np.testing.assert_array_equal(pycnn.load_model(session.model_bytes()).flat_params(), reached)
    run = state["run"]
    assert run["phase"] == "stopped"
    assert run["message"] == ("Stopped after 150 images of epoch 1. That model is now used for drawing; "
                              "the previous one is a click away.")
    # The figures of a run that ended early are cleared.
    assert (run["speed"], run["images_per_s"], run["eta_seconds"], run["speedup"]) == ("", None, None, None)
    assert session.restore_previous() == pretrained
    assert session.state()["previous"]["stopped"] == "stopped after 150 images of epoch 1"


def test_stop_before_the_first_step_keeps_the_model(session):
    before = session.state()["model"]
    session.start_training(SMALL)
    session.request_stop()
    session.train_slice()
    state = session.state()
    assert state["model"] == before and state["run"]["phase"] == "stopped"
    assert "previous model is still used" in state["run"]["message"]


def test_stop_during_the_test_pass_keeps_the_trained_epoch(session):
    session.start_training({**COSTLY, "epochs": 2})
    while session.state()["run"]["phase"] != "testing":
        session.train_slice(0)
    session.request_stop()
    session.train_slice(0)
    assert session.state()["model"]["stopped"] == "stopped after 200 images of epoch 1"


def test_restore_previous_needs_one(session):
    with pytest.raises(SessionError, match="no previous model"):
        session.restore_previous()


def test_checkpoint_follows_the_finished_epochs(session):
    session.start_training({**SMALL, "epochs": 3})
    assert session.checkpoint() is None
    while session.run.trainer.epoch == 0:
        session.train_slice(0)
    kept = session.checkpoint()
    assert (kept["name"], kept["epoch"], kept["epochs"]) == ("seed", 1, 3)
    assert kept["test_accuracy"] == session.run.last_epoch["test_accuracy"]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_ends_and_keeps_the_model(session):
    before = session.state()["model"]
    session.start_training(SMALL)
    session.run.model.params()[0].value[...] = np.inf  # as a blown-up update would
    assert session.train_slice(0)["done"] is True
    state = session.state()
    assert state["phase"] == IDLE and state["model"] == before
    assert state["run"]["phase"] == "diverged" and "lower the learning rate" in state["run"]["message"]
    assert state["run"]["speed"] == ""


# ---------------------------------------------------------------- evaluation


def evaluate_to_end(s: Session) -> dict:
    s.start_evaluation()
    while (reply := s.evaluation_slice(0))["report"] is None:
        assert not reply["cancelled"]
    return reply


def test_an_evaluation_is_of_the_current_model_until_it_changes(session):
    assert session.start_evaluation() == {"evaluated": 0, "total": N_TEST, "done": False}
    assert session.phase == EVALUATING
    while session.evaluation_slice(0)["report"] is None:
        pass
    assert session.phase == IDLE and session.state()["report"] == "current"
    session.load_model_file(pycnn.build_model("seed", n_filter=2).to_bytes())
    assert session.state()["report"] == "stale"


@pytest.mark.parametrize("change", [
    lambda s: s.start_training(SMALL),
    lambda s: s.load_model_file(pycnn.build_model("seed", n_filter=2).to_bytes()),
    lambda s: s.use_pretrained(),
])
def test_training_or_a_model_change_cancels_an_evaluation(session, change):
    session.load_model_file(pycnn.build_model("seed", n_filter=3).to_bytes())
    session.start_evaluation()
    session.evaluation_slice(0)
    change(session)
    assert session.state()["evaluation"] is None and session.phase in (IDLE, TRAINING)
    assert session.evaluation_slice(0) == {"progress": None, "report": None, "cancelled": True}


def test_evaluation_slice_without_an_evaluation_is_an_error(session):
    with pytest.raises(SessionError, match="no evaluation is running"):
        session.evaluation_slice()
    with pytest.raises(SessionError, match="no finished evaluation"):
        session.evaluation_cell(0, 0)


# ---------------------------------------------------------------- drawing


def test_predict_is_one_forward_pass(session, data, monkeypatch):
    model = session.shelf.model
    calls = []
    for layer in model.layers:
        def counted(x, training=True, f=layer.forward):
            calls.append(1)
            return f(x, training)
        monkeypatch.setattr(layer, "forward", counted)
    ink = np.kron(data[2][0], np.ones((10, 10), np.uint8))
    out = session.predict(ink)
    assert len(calls) == len(model.layers)  # each layer once: the probabilities and the maps share it
    assert [m["layer"] for m in out["maps"]] == ["conv1", "conv2"]
    probs = model.predict_proba(preprocess_digit(ink)[None])[0]
    np.testing.assert_allclose(out["probs"], probs, rtol=1e-5)
    assert out["digit"] == int(np.argmax(probs))


def test_an_empty_canvas_gives_no_guess(session):
    assert session.predict(np.zeros((50, 50), np.uint8)) == {"digit": None, "probs": None, "image": None, "maps": None}


# ---------------------------------------------------------------- data-parallel

PARALLEL = {**SMALL, "n_filter": 8, "filter_size": 6, "stride": 2, "padding": 2, "batch_size": 32, "train_size": 300}


def two_workers(data) -> tuple[Session, Session]:
    first, extra = Session(), Session()
    first.set_mnist(*data)
    first.load_pretrained(pycnn.build_model("lenet").to_bytes())
    first.start_training(PARALLEL, workers=2)
    shard = first.shard_data(1)
    extra.start_replica({**first.run.config}, shard["images"], shard["labels"], 1, first.params())
    return first, extra


def step(workers: list[Session]) -> list[dict]:
    parts = [w.compute_gradients() for w in workers]
    counts = [{k: p[k] for k in ("count", "loss", "correct", "seconds")} for p in parts]
    return [w.apply_gradients(counts, [None if j == i else p["grads"] for j, p in enumerate(parts)])
            for i, w in enumerate(workers)]


def test_two_workers_end_with_the_weights_of_one_worker_on_the_same_batches(data):
    alone = Session()
    alone.set_mnist(*data)
    alone.start_training({**PARALLEL, "shards": 2})  # one worker, the two-worker schedule
    run_to_end(alone)
    first, extra = two_workers(data)
    while first.running:
        reply = step([first, extra])[0]
        while first.running and reply["evaluating"]:
            reply = {**first.train_slice(0), "evaluating": first.running}
    assert not extra.running and extra.phase == EMPTY  # the extra worker ended its epoch without a test pass
    np.testing.assert_array_equal(first.shelf.model.flat_params(), extra.run.model.flat_params())
    np.testing.assert_allclose(first.shelf.model.flat_params(), alone.shelf.model.flat_params(), rtol=1e-4, atol=1e-6)
    run = first.state()["run"]
    assert run["phase"] == "done" and run["workers"] == 2 and run["examples"] == 300
    # One process plays both workers here, one after the other: the first waits while the other computes.
    assert 0 < run["wait_ms"] < run["step_ms"]
    assert 0.5 < run["speedup"] <= 2  # busy time over wall time, for two workers
    assert run["speedup_measured"] is False  # no 1-worker run of this model in this session


def test_the_speed_up_is_measured_against_a_one_worker_run_of_the_same_model(data):
    first, extra = two_workers(data)
    first.one_worker_rates[("seed", 32, 8, 6, 2, 2)] = 1.0  # as after a 1-worker run at 1 image/s
    step([first, extra])
    run = first.state()["run"]
    assert run["speedup_measured"] is True and run["speedup"] == pytest.approx(run["images_per_s"])


def test_a_lone_first_worker_finishes_on_the_whole_set(data):
    first, extra = two_workers(data)
    step([first, extra])
    first.compute_gradients()  # the extra worker dies during this step
    assert first.go_solo() == {"shards": 1}
    while first.running:
        reply = step([first])[0]
        while first.running and reply["evaluating"]:
            reply = {**first.train_slice(0), "evaluating": first.running}
    assert first.state()["run"]["phase"] == "done" and first.state()["model"]["source"] == "trained"


def test_stop_ends_a_parallel_run_at_the_next_step_keeping_its_weights(data):
    first, extra = two_workers(data)
    step([first, extra])
    reached = first.params().copy()
    first.request_stop()
    assert step([first, extra])[0] == {"events": [], "done": True, "evaluating": False}
    np.testing.assert_array_equal(first.shelf.model.flat_params(), reached)
    assert first.state()["model"]["stopped"] == "stopped after 32 images of epoch 1"
    extra.end_run()
    assert not extra.running


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_parallel_run_ends_on_every_worker(data):
    first, extra = two_workers(data)
    step([first, extra])
    extra.run.model.params()[0].value[...] = np.inf  # the summed loss is not finite
    out = step([first, extra])
    assert [o["done"] for o in out] == [True, True]
    assert first.state()["run"]["message"] == extra.state()["run"]["message"]
    assert first.state()["model"]["source"] == "pretrained"


def test_data_parallel_calls_need_a_data_parallel_run(session):
    with pytest.raises(SessionError, match="no training run"):
        session.shard_data(1)
    session.start_training(SMALL)
    with pytest.raises(SessionError, match="not data-parallel"):
        session.shard_data(1)
    with pytest.raises(SessionError, match="cannot start a replica while the session is training"):
        session.start_replica(settings.validate_config({**SMALL, "shards": 2}, 200), np.zeros((100, 28, 28), np.uint8),
                              np.zeros(100, np.int64), 1, session.params())


def test_end_run_abandons_any_run_and_keeps_the_model(session):
    before = session.state()["model"]
    session.start_training(SMALL)
    session.train_slice(0)
    session.request_stop()
    session.end_run()  # as the worker does when train_slice keeps failing
    state = session.state()
    assert state["phase"] == IDLE and state["model"] == before and state["run"]["phase"] == "stopped"
    assert "abandoned" in state["run"]["message"]
    session.end_run()  # no run: nothing happens
