"""A training run as the page shows it, in headless Chromium: the test pass after an epoch is a
phase of its own (its label says so, the bar and the time left count it, images/s counts training
steps only), and Stop keeps the weights reached, says how far the run got, clears the run's
figures and leaves the previous model one click away.

Uses the session fixtures of conftest.py (one built site, one server, one Chromium).
"""

from __future__ import annotations

import re

import pytest
from playwright import sync_api as playwright_api

from test_browser import choose, draw, stop_within_two_seconds, train_size_near, vertical_stroke

pytestmark = pytest.mark.browser


def watch_run(page) -> None:
    """Record {label, speed, fill} of the progress box at every change into window.__run."""
    page.evaluate(
        """() => {
            window.__run = [];
            const box = document.querySelector(".progress");
            const read = () => {
                const m = /scaleX\\(([^)]+)\\)/.exec(document.querySelector("#progress-fill").style.transform || "");
                window.__run.push({ label: document.querySelector("#progress-label").textContent,
                                    speed: document.querySelector("#progress-speed").textContent,
                                    fill: m ? Number(m[1]) : null });
            };
            new MutationObserver(read).observe(box,
                { attributes: true, childList: true, characterData: true, subtree: true });
        }"""
    )


def rate(speed: str) -> float | None:
    """150 from "150 images/s · 12 s left" ('' has none)."""
    m = re.match(r"([\d,]+) images/s", speed)
    return float(m[1].replace(",", "")) if m else None


def seconds_left(speed: str) -> float | None:
    m = re.search(r"· (?:(\d+) min )?(\d+) s left", speed)
    return None if not m else 60 * int(m[1] or 0) + int(m[2])


def test_the_test_pass_is_a_phase_with_its_own_progress_and_no_drop_in_images_per_second(visit):
    visit.open_ready()
    page = visit.page
    choose(page, "#train_size", train_size_near(page, 2_000))
    choose(page, "#epochs", "1")
    watch_run(page)
    page.click("#train")
    visit.wait_for_state("training", 5_000)
    visit.wait_for_state("ready", 180_000)
    assert "Done" in visit.message(), visit.message()

    seen = page.evaluate("window.__run")
    training = [s for s in seen if re.search(r"· [\d,]+ / [\d,]+ images$", s["label"]) and rate(s["speed"])]
    testing = [s for s in seen if "measuring test accuracy…" in s["label"]]
    assert training and testing, f"no training or no test phase was shown: {[s['label'] for s in seen][::10]}"
    assert re.fullmatch(r"Epoch 1 of 1 · measuring test accuracy… [\d,]+ / 10,000", testing[-1]["label"]), testing[-1]
    # The bar counts the test pass: it is not full while the test images are measured,
    # and the time left is not zero at its start.
    assert all(s["fill"] is not None and s["fill"] < 1 for s in testing), [s["fill"] for s in testing]
    assert max(seconds_left(s["speed"]) or 0 for s in testing) >= 1, [s["speed"] for s in testing]
    # images/s is the training steps' rate: the test pass does not pull it down, nor the final figure.
    trained_at = rate(training[-1]["speed"])
    rates = [rate(s["speed"]) for s in testing if rate(s["speed"])]
    assert rates and min(rates) >= 0.95 * trained_at, (trained_at, rates)
    final = page.inner_text("#progress-speed")
    assert "took" in final and rate(final) >= 0.95 * trained_at, (final, trained_at)
    assert page.evaluate("document.querySelector('#progress-fill').style.transform") == "scaleX(1)"
    assert visit.console_errors == []


def test_stop_keeps_the_weights_reached_clears_the_figures_and_keeps_the_previous_model(visit):
    visit.open_ready()
    page = visit.page
    choose(page, "#train_size", "60000")
    choose(page, "#epochs", "1")
    page.click("#train")
    visit.wait_for_state("training", 5_000)
    page.wait_for_function("/images\\/s/.test(document.querySelector('#progress-speed').textContent)", timeout=60_000)
    stop_within_two_seconds(visit)

    message = visit.message()
    m = re.fullmatch(r"Stopped after ([\d,]+) images of epoch 1\. That model is now used for drawing; "
                     r"the previous one is a click away\.", message)
    assert m, message
    assert int(m[1].replace(",", "")) > 0
    model = page.inner_text("#model-name")
    assert f"your lenet, stopped after {m[1]} images of epoch 1" in model, model
    # The stopped run's figures describe a run that no longer goes on: they are gone.
    assert page.inner_text("#progress-speed") == ""
    assert "Training was stopped" in visit.status()
    # The trained weights draw.
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text(re.compile(r"^\s*\d\s*$"), timeout=15_000)

    # The previous model is one click away, and so is the stopped one after that.
    previous = page.locator("#previous")
    assert previous.is_visible()
    previous.click()
    playwright_api.expect(page.locator("#model-name")).to_contain_text("pretrained lenet", timeout=10_000)
    playwright_api.expect(previous).to_be_visible()
    previous.click()
    playwright_api.expect(page.locator("#model-name")).to_contain_text(f"stopped after {m[1]} images", timeout=10_000)
    # Like a finished run's model, the stopped one is kept in this browser for the next visit.
    page.reload()
    visit.wait_for_state("ready")
    assert "your last lenet" in page.inner_text("#model-name")
    assert visit.console_errors == []
