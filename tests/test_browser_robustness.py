"""The page under things going wrong: nothing hangs, every failure says what happened, nothing is lost.

Lean on purpose: each test is one visit that checks several cases in a row.
Failures are made with Playwright routes (a file that is offline or missing,
a worker whose Python raises) registered after the visit's own catch-all
route, so they run first.
"""

from __future__ import annotations

import re

import pytest
from playwright import sync_api as playwright_api

from test_browser import choose, draw, vertical_stroke, worker_named

pytestmark = pytest.mark.browser

# The smallest run the page offers: the lenet preset on 1,000 images, 16 steps an epoch.
SMALL = {"#train_size": "1000"}


def count_requests(page) -> None:
    """Count every method the page calls on a worker (Comlink's "APPLY" messages), by name, in window.__posted."""
    page.add_init_script("""
        window.__posted = {};
        const post = Worker.prototype.postMessage;
        Worker.prototype.postMessage = function (msg, ...rest) {
            if (msg && msg.type === "APPLY") {
                const name = msg.path.join(".");
                window.__posted[name] = (window.__posted[name] || 0) + 1;
            }
            return post.call(this, msg, ...rest);
        };
    """)


def saved_keys(page) -> list[str]:
    """The keys of the page's IndexedDB model store (the worker keeps models there)."""
    return page.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open("pycnn", 1);
        open.onupgradeneeded = () => open.result.createObjectStore("models");
        open.onsuccess = () => {
            const request = open.result.transaction("models").objectStore("models").getAllKeys();
            request.onsuccess = () => { open.result.close(); resolve(request.result); };
            request.onerror = () => reject(request.error);
        };
        open.onerror = () => reject(open.error);
    })""")


@pytest.mark.parametrize("failure", ["offline", "404"])
def test_pyodide_that_cannot_load_is_an_error_message_not_a_hang(visit, failure):
    def broken(route):
        if failure == "offline":
            route.abort("internetdisconnected")
        else:
            route.fulfill(status=404, body="not found")

    visit.context.route("**/pyodide/pyodide.asm.wasm", broken)
    visit.open("app/")
    visit.page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    status = visit.status()
    assert "pyodide/pyodide.asm.wasm (Pyodide runtime)" in status, status
    if failure == "offline":
        assert "could not fetch" in status
    else:
        assert "HTTP 404" in status and "build_site.py" in status
    assert visit.page.locator("#train").is_disabled()


def test_idle_stop_and_double_click_start_exactly_one_run(visit):
    count_requests(visit.page)
    visit.open_ready()
    page = visit.page
    for selector, value in SMALL.items():
        choose(page, selector, value)
    choose(page, "#epochs", "1")
    # Stop when nothing runs (say, a click that lands as a run ends): nothing happens.
    page.evaluate("() => { const b = document.querySelector('#stop'); b.disabled = false; b.click(); }")
    page.wait_for_timeout(300)
    assert visit.state() == "ready" and not page.locator("#train").is_disabled()
    # Double-clicking Train starts one run, whose Stop button reads "Stop".
    page.dblclick("#train")
    visit.wait_for_state("training", 5_000)
    playwright_api.expect(page.locator("#stop")).to_have_text("Stop")
    visit.wait_for_state("ready", 120_000)
    assert "Done" in visit.message(), visit.message()
    posted = page.evaluate("window.__posted")
    assert posted.get("train", 0) + posted.get("parStart", 0) == 1, posted
    assert visit.console_errors == []


@pytest.mark.parametrize("failing, status", [("start_training", "Training did not run"),
                                             ("train_slice", "Training failed")])
def test_an_exception_inside_the_worker_is_reported_and_the_page_stays_usable(visit, failing, status):
    start = 'call = python(pyodide, pyodide.pyimport("pycnn.web"));'
    # A pycnn.web function raises inside Python, as a bug in pycnn would: before the run, or during it.
    inject = ("import pycnn.web\\ndef _fail(*args):\\n    raise RuntimeError('injected failure')\\n"
              f"pycnn.web.{failing} = _fail")
    broken = start + f""" pyodide.runPython("{inject}");"""

    def failing_worker(route):
        body = route.fetch().text()
        assert start in body, "worker.js no longer starts pycnn.web as this test expects"
        route.fulfill(status=200, body=body.replace(start, broken), headers={"content-type": "text/javascript"})

    visit.context.route("**/app/worker.js", failing_worker)
    visit.open_ready()
    page = visit.page
    for selector, value in SMALL.items():
        choose(page, selector, value)
    page.click("#train")
    visit.wait_for_state("ready", 120_000)
    assert "RuntimeError: injected failure" in visit.message(), visit.message()
    assert status in visit.status()
    assert "pretrained lenet" in page.locator("#model-name").inner_text()  # the model is as it was
    # Drawing still works, and so does every control.
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text("1", timeout=15_000)
    assert not page.locator("#train").is_disabled()


def test_a_worker_that_fails_after_loading_says_to_reload_not_to_rebuild(visit):
    visit.open_ready()
    page = visit.page
    # Thrown as a fatal error in Python would be.
    worker_named(page, "pycnn worker 1").evaluate("setTimeout(() => { throw new Error('out of memory'); })")
    visit.wait_for_state("error", 10_000)
    status = visit.status()
    assert "the Python worker stopped" in status and "out of memory" in status and "reload the page" in status, status
    assert "rebuild" not in status, status


def test_offline_data_then_a_reload_during_training_loses_nothing(visit):
    page = visit.page
    visit.context.route("**/data/*.gz", lambda route: route.abort("internetdisconnected"))
    visit.open_ready()
    for selector, value in SMALL.items():
        choose(page, selector, value)
    choose(page, "#epochs", "5")
    # Offline: training says why it cannot run; the page stays ready with its model.
    page.click("#train")
    page.wait_for_function("document.body.dataset.mnist === 'failed'", timeout=30_000)
    visit.wait_for_state("ready", 5_000)
    assert re.search(r"Training needs MNIST, which could not be loaded: could not fetch data/\S+\.gz", visit.message())
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text("1", timeout=15_000)

    # Back online, the same button trains; a reload after the first epoch keeps that epoch's model.
    visit.context.unroute("**/data/*.gz")
    page.click("#train")
    visit.wait_for_state("training", 5_000)
    page.wait_for_function("document.querySelectorAll('#epochs-table tbody tr:not(.placeholder)').length >= 1",
                           timeout=120_000)
    for _ in range(50):  # the worker writes it right after the epoch's progress
        if "checkpoint" in saved_keys(page):
            break
        page.wait_for_timeout(100)
    assert "checkpoint" in saved_keys(page)
    page.reload()
    visit.wait_for_state("ready")
    message = page.locator("#model-message").inner_text()
    restored = r"Training was interrupted by a reload: restored your lenet after epoch [1-5] of 5"
    assert re.search(restored, message), message
    assert "your last lenet" in page.locator("#model-name").inner_text()
    assert saved_keys(page) == ["last"]
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text(re.compile(r"^\s*\d\s*$"), timeout=15_000)
