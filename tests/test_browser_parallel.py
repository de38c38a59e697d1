"""Data-parallel training in the page: two Pyodide workers train like one on the same batches,
and a worker that cannot start leaves the run to the page's own worker, which says so.

Uses the session fixtures of conftest.py (one built site, one server, one Chromium).
"""

from __future__ import annotations

import numpy as np
import pytest
from playwright import sync_api as playwright_api

from test_browser import choose, stop_within_two_seconds, worker_named
from test_browser_insight import wait_for_evaluation

pytestmark = pytest.mark.browser

# The cheapest model (seed at stride 2: about 25 ms a step in Pyodide) for 16 steps of 64 images.
# SGD, not Adam: Adam's first steps move every weight by about lr whatever the gradient's size,
# so tiny round-off differences in near-zero gradients would show up as lr-sized differences.
SETTINGS = {"#preset": "seed", "#optimizer": "sgd", "#lr": "0.05", "#batch_size": "64", "#epochs": "1",
            "#train_size": "1000", "[name=n_filter]": "8", "[name=filter_size]": "6", "[name=stride]": "2",
            "[name=padding]": "2"}


def set_form(page, workers: str) -> None:
    for selector, value in SETTINGS.items():
        choose(page, f"#train-form {selector}", value)
    choose(page, "#workers", workers)


def train(visit) -> None:
    visit.page.click("#train")
    visit.wait_for_state("training", 5_000)
    visit.wait_for_state("ready", 120_000)


def test_two_workers_train_like_one_worker_on_the_same_batches(visit, mnist):
    import pycnn
    from pycnn import settings
    from pycnn.parallel import ShardSchedule
    from pycnn.train import Trainer

    visit.open_ready()
    page = visit.page
    set_form(page, "2")
    # The extra worker starts as soon as the count is chosen, before Train is pressed.
    page.wait_for_function("document.querySelector('#workers').dataset.ready === '2'", timeout=60_000)
    assert "2 workers ready" in page.inner_text("#workers-note")
    train(visit)
    assert "Done" in visit.message(), visit.message()
    note = page.locator("#workers-note")
    assert note.get_attribute("data-workers") == "2", note.inner_text()
    # Two workers are at most twice as fast as one, and each waits only part of a step for the other.
    speedup, wait_ms, step_ms = (float(note.get_attribute(f"data-{k}")) for k in ("speedup", "wait-ms", "step-ms"))
    assert 0 < speedup <= 2, note.inner_text()
    assert 0 <= wait_ms < step_ms, note.inner_text()
    assert "images/s · took" in page.inner_text("#progress-speed")
    with page.expect_download() as download:
        page.click("#download")
    trained = pycnn.load_model(download.value.path())

    # One process on the same global batches: the two-shard schedule over the first 1,000 images.
    config = settings.validate_config({"preset": "seed", "optimizer": "sgd", "lr": 0.05, "batch_size": 64,
                                       "train_size": 1000, "n_filter": 8, "filter_size": 6, "stride": 2,
                                       "padding": 2, "shards": 2})
    model = settings.build(config)
    x_train, y_train, _, _ = mnist
    Trainer(model, x_train[:1000], y_train[:1000], optimizer=pycnn.SGD(model.params(), lr=0.05),
            schedule=ShardSchedule(1000, 64, 2, 0)).run()
    # Pyodide's numpy and CPython's add up products in different orders: float32 round-off only.
    np.testing.assert_allclose(trained.flat_params(), model.flat_params(), rtol=1e-4, atol=1e-6)
    assert not np.array_equal(trained.flat_params(), settings.build(config).flat_params()), "nothing was trained"
    assert visit.console_errors == []


def test_a_worker_that_cannot_start_leaves_training_to_one(visit):
    manifests = []

    def second_manifest_fails(route):
        manifests.append(route.request.url)
        if len(manifests) > 1:  # the page's own worker reads it first; the extra worker's read fails
            route.abort()
        else:
            route.continue_()

    visit.page.route("**/manifest.json", second_manifest_fails)
    visit.open_ready()
    page = visit.page
    set_form(page, "2")
    playwright_api.expect(page.locator("#workers-note")).to_contain_text("could start", timeout=30_000)
    train(visit)
    assert "Done" in visit.message(), visit.message()
    note = page.inner_text("#workers-note")
    assert "worker 2 could not start" in note and "training with 1 worker" in note, note
    assert float(page.inner_text("#test-accuracy")) > 0.5
    assert all("manifest.json" in e for e in visit.console_errors), visit.console_errors


def start_a_longer_run_of_two_workers(visit, epochs: str):
    """Open the page and start 10,000 images x `epochs` with two workers; return once both train."""
    visit.open_ready()
    page = visit.page
    set_form(page, "2")
    choose(page, "#train-form #train_size", "10000")
    choose(page, "#train-form #epochs", epochs)
    page.wait_for_function("document.querySelector('#workers').dataset.ready === '2'", timeout=60_000)
    page.click("#train")
    page.wait_for_function("document.querySelector('#workers-note').dataset.workers === '2'", timeout=30_000)
    return page


def test_stop_halts_a_run_of_two_workers_within_two_seconds(visit):
    page = start_a_longer_run_of_two_workers(visit, "3")
    stop_within_two_seconds(visit)
    assert visit.state() == "ready"
    assert "Stopped" in visit.message(), visit.message()
    # The run's figures (speed, time left, speed-up) are cleared with it.
    assert page.inner_text("#progress-speed") == ""
    assert "×" not in page.inner_text("#workers-note")
    assert page.locator("#workers-note").get_attribute("data-workers") is None
    assert visit.console_errors == []


def test_a_worker_that_dies_mid_run_leaves_the_run_to_the_first_one(visit):
    page = start_a_longer_run_of_two_workers(visit, "2")
    # An uncaught error: the page closes the worker.
    worker_named(page, "pycnn worker 2").evaluate("setTimeout(() => { throw new Error('injected crash'); })")
    visit.wait_for_state("ready", 120_000)
    assert "Done" in visit.message(), visit.message()
    note = page.inner_text("#workers-note")
    assert "A worker stopped" in note and "injected crash" in note and "training goes on in 1 worker" in note, note
    assert page.inner_text("#progress-label").startswith("Epoch 2 of 2 · 10,000 / 10,000")
    accuracy = float(page.inner_text("#test-accuracy"))
    assert accuracy > 0.8  # it trained on (chance is 0.1)
    # The evaluation views work on the model the run left behind, and agree with its last epoch.
    page.click("#eval-panel summary")
    assert wait_for_evaluation(page, "seed") == pytest.approx(accuracy, abs=1e-4)
    assert all("injected crash" in e for e in visit.console_errors), visit.console_errors
