"""The built site in headless Chromium, used the way a person uses it.

The fixtures (in conftest.py, shared with test_browser_insight.py) build one
site with build_site's Python API into a temporary folder and serve it on a
free localhost port, under a sub-path, to prove its URLs are relative. One
browser serves every test; each test opens its own page in a fresh context
that records every request and console message. A request to any other origin
is aborted and fails the test. Beside the working site a broken copy is served
with its MNIST files deleted.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright import sync_api as playwright_api

pytestmark = pytest.mark.browser


# ---------------------------------------------------------------- helpers


def draw(page, points: list[tuple[float, float]]) -> None:
    """One pen stroke through `points`, given as fractions (0-1) of the drawing canvas."""
    canvas = page.locator("#draw-canvas")
    canvas.scroll_into_view_if_needed()  # mouse coordinates are the viewport's
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y)
    page.mouse.up()


def vertical_stroke() -> list[tuple[float, float]]:
    return [(0.5, 0.15 + 0.7 * i / 20) for i in range(21)]


def closed_loop() -> list[tuple[float, float]]:
    """An upright ellipse, drawn once round and a little past its start, like a hand-drawn 0."""
    import math

    return [(0.5 + 0.22 * math.sin(t), 0.5 - 0.32 * math.cos(t))
            for t in (2 * math.pi * i / 24 for i in range(27))]


def inked_pixels(page, selector: str) -> int:
    """How many pixels of a canvas are not fully transparent."""
    return page.evaluate(
        """sel => {
            const c = document.querySelector(sel);
            const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
            return n;
        }""",
        selector,
    )


def choose(page, selector: str, value: str) -> None:
    """Set a form control the way a person would: pick an option or type a number."""
    control = page.locator(selector)
    if control.evaluate("el => el.tagName") == "SELECT":
        control.select_option(value)
    else:
        control.fill(value)


def train_size_near(page, wanted: int) -> str:
    """The training-set size to pick: the offered option nearest `wanted` (or `wanted` if it is typed)."""
    control = page.locator("#train_size")
    if control.evaluate("el => el.tagName") != "SELECT":
        return str(wanted)
    offered = [int(v) for v in control.evaluate("el => [...el.options].map(o => o.value)")]
    return str(min(offered, key=lambda v: (abs(v - wanted), v)))


def watch_texts(page, selector: str) -> None:
    """Record every text the element shows from now on into window.__texts."""
    page.evaluate(
        """sel => {
            window.__texts = [];
            const box = document.querySelector(sel);
            new MutationObserver(() => window.__texts.push(box.textContent))
                .observe(box, { childList: true, characterData: true, subtree: true });
        }""",
        selector,
    )


def watch_progress(page) -> None:
    """Record every value the progress bar takes (its scaleX) into window.__progress."""
    page.evaluate(
        """() => {
            window.__progress = [];
            const fill = document.querySelector("#progress-fill");
            const read = () => {
                const m = /scaleX\\(([^)]+)\\)/.exec(fill.style.transform || "");
                if (m) window.__progress.push(Number(m[1]));
            };
            new MutationObserver(read).observe(fill, { attributes: true, attributeFilter: ["style"] });
        }"""
    )


# ---------------------------------------------------------------- tests


def test_page_reaches_ready_cleanly(visit):
    seconds = visit.open_ready()
    print(f"ready after {seconds:.1f} s")
    assert visit.page.locator("#status").is_visible()
    assert visit.status().strip(), "the status line is empty once ready"
    assert visit.console_errors == []
    assert visit.failed == []
    assert visit.foreign == []
    # The recording sees the worker's requests too, so "nothing foreign" means something.
    paths = {urlsplit(u).path for u in visit.requests}
    for expected in ("/app/pyodide/pyodide.asm.wasm", "/app/pretrained.npz"):
        assert expected in paths, f"{expected} was never requested: {sorted(paths)}"
    # The first visit is usable without MNIST: nothing needs it yet.
    assert not [p for p in paths if "/data/" in p], f"MNIST was fetched before anything needed it: {sorted(paths)}"
    assert visit.page.evaluate("document.body.dataset.mnist") == "absent"
    assert not visit.page.locator("#train").is_disabled()


def test_vertical_stroke_predicts_one(visit):
    visit.open_ready()
    draw(visit.page, vertical_stroke())
    playwright_api.expect(visit.page.locator("#prediction")).to_have_text("1", timeout=15_000)
    assert visit.console_errors == []


def test_closed_loop_predicts_zero(visit):
    visit.open_ready()
    draw(visit.page, closed_loop())
    playwright_api.expect(visit.page.locator("#prediction")).to_have_text("0", timeout=15_000)
    assert visit.console_errors == []


def test_clear_empties_the_prediction(visit):
    visit.open_ready()
    page = visit.page
    prediction = page.locator("#prediction")
    draw(page, vertical_stroke())
    playwright_api.expect(prediction).to_have_text(re.compile(r"^\s*\d\s*$"), timeout=15_000)
    page.click("#clear")
    playwright_api.expect(prediction).not_to_have_text(re.compile(r"\d"), timeout=5_000)
    assert inked_pixels(page, "#draw-canvas") == 0
    # A late reply to a prediction made before Clear must not bring a digit back.
    page.wait_for_timeout(1_000)
    playwright_api.expect(prediction).not_to_have_text(re.compile(r"\d"))
    assert visit.console_errors == []


def test_short_training_run_reports_progress_chart_and_accuracy(visit):
    visit.open_ready()
    page = visit.page
    choose(page, "#train_size", train_size_near(page, 2_000))
    choose(page, "#epochs", "1")
    chart_before = inked_pixels(page, "#chart")
    watch_progress(page)
    watch_texts(page, "#progress-label")
    start = time.monotonic()
    page.click("#train")
    visit.wait_for_state("training", 5_000)
    visit.wait_for_state("ready", 120_000)
    print(f"training run took {time.monotonic() - start:.1f} s")

    # Training fetched MNIST first, showing the bytes loaded of the total.
    paths = {urlsplit(u).path for u in visit.requests}
    assert "/app/data/train-images-idx3-ubyte.gz" in paths, sorted(paths)
    assert visit.page.evaluate("document.body.dataset.mnist") == "loaded"
    texts = page.evaluate("window.__texts")
    sizes = [re.search(r"Downloading MNIST… ([\d.]+) of ([\d.]+) MB", t) for t in texts]
    sizes = [(float(m[1]), float(m[2])) for m in sizes if m]
    assert sizes and sizes[-1][0] == sizes[-1][1] > 10, f"no download progress was shown: {texts[:5]}"

    progress = page.evaluate("window.__progress")
    assert any(0 < p < 1 for p in progress), f"the progress bar never showed a partial value: {progress}"
    assert progress and progress[-1] == pytest.approx(1), f"the progress bar did not end full: {progress}"
    chart_after = inked_pixels(page, "#chart")
    assert chart_after > chart_before + 200, f"the chart drew no curve ({chart_before} -> {chart_after} inked pixels)"
    text = page.locator("#test-accuracy").inner_text().strip()
    assert re.fullmatch(r"[01](\.\d+)?", text), f"#test-accuracy is not a number in [0, 1]: {text!r}"
    assert 0.0 <= float(text) <= 1.0
    assert visit.console_errors == []


def worker_named(page, name: str):
    """The page's Web Worker called `name` ("pycnn worker 1" is the page's own), to run code in."""
    found = [w for w in page.workers if w.evaluate("self.name") == name]
    assert len(found) == 1, (name, [w.url for w in page.workers])
    return found[0]


def stop_within_two_seconds(visit) -> float:
    """Click Stop during a run; fail unless training ends within 2 s. Returns the seconds it took."""
    start = time.monotonic()
    visit.page.click("#stop")
    try:
        visit.page.wait_for_function("() => document.body.dataset.state !== 'training'", timeout=2_000)
    except playwright_api.TimeoutError:
        pytest.fail(f"still training 2 s after Stop; status: {visit.status()!r}")
    seconds = time.monotonic() - start
    print(f"training stopped {seconds:.2f} s after clicking Stop")
    return seconds


def test_stop_halts_a_long_run_within_two_seconds(visit):
    visit.open_ready()
    page = visit.page
    choose(page, "#train_size", "60000")
    choose(page, "#epochs", "3")
    watch_progress(page)
    page.click("#train")
    visit.wait_for_state("training", 5_000)
    page.wait_for_function("() => window.__progress.some(p => p > 0)", timeout=30_000)
    seconds = stop_within_two_seconds(visit)
    assert seconds <= 2.0
    assert visit.state() == "ready"
    # Drawing works again with whatever model is now in use.
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text(re.compile(r"^\s*\d\s*$"), timeout=15_000)
    assert visit.console_errors == []


def test_missing_mnist_files_refuse_training_with_a_message_and_keep_the_page(visit):
    # A site without its MNIST files still predicts: the first visit never needs them.
    visit.open("broken/")
    visit.wait_for_state("ready")
    page = visit.page
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text("1", timeout=15_000)
    page.click("#train")
    page.wait_for_function("document.body.dataset.mnist === 'failed'", timeout=30_000)
    visit.wait_for_state("ready", 5_000)
    text = visit.message()
    assert re.search(r"mnist", text, re.IGNORECASE) and "data/" in text, \
        f"the message does not say what is missing: {text!r}"
    assert "build_site.py" in text, text
    assert not page.locator("#train").is_disabled()
    # The only failed requests are the deleted files.
    assert visit.failed and all("/broken/data/" in f for f in visit.failed), visit.failed


def test_stop_while_mnist_downloads_keeps_the_model_and_the_download(visit):
    visit.open_ready()
    page = visit.page
    held = []
    page.route("**/data/*.gz", lambda route: held.append(route))  # hold MNIST's responses until the test releases them
    page.click("#train")
    page.wait_for_function("document.body.dataset.mnist === 'loading'", timeout=10_000)
    # Before any byte arrives the page already says how much is coming (from the manifest).
    playwright_api.expect(page.locator("#progress-label")).to_have_text("Downloading MNIST… 0.0 of 11.5 MB")
    page.click("#stop")
    for route in held:
        route.continue_()
    visit.wait_for_state("ready", 60_000)
    assert visit.message() == "Stopped before training began; the previous model is still used for drawing."
    assert "pretrained lenet" in page.locator("#model-name").inner_text()
    page.wait_for_function("document.body.dataset.mnist === 'loaded'", timeout=30_000)  # kept for next time
    assert visit.console_errors == []
