"""Seeing learning happen, in headless Chromium: saliency, one step taken apart, teaching it your handwriting.

Every number is Python's (pycnn.session_insight in the worker); these tests check the page shows them, that the
step's numbers are those CPython computes for the same ink, and that the digits file trains with the CLI.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api as playwright_api

from pycnn import web
from test_browser import draw, vertical_stroke

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = (ROOT / "static" / "pretrained.npz").read_bytes()
expect = playwright_api.expect


def ink(page) -> bytes:
    """The drawing canvas's ink bytes, as the page hands them to pycnn.web."""
    return bytes(page.evaluate("""() => {
        const c = document.querySelector("#draw-canvas");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let i = 3; i < d.length; i += 4) out.push(d[i]);
        return out;
    }"""))


def colours(page, selector: str) -> dict:
    """How many pixels of a canvas are reddish and bluish, and all its pixels as a string."""
    return page.evaluate("""sel => {
        const c = document.querySelector(sel);
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let red = 0, blue = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i] > d[i + 2] + 40) red++;
            if (d[i + 2] > d[i] + 40) blue++;
        }
        return { red, blue, url: c.toDataURL() };
    }""", selector)


def seven_ish() -> list[tuple[float, float]]:
    """A short bar and a steep stroke down: between a 1 and a 7."""
    return [(0.42, 0.2), (0.52, 0.18)] + [(0.52 - 0.04 * i / 10, 0.18 + 0.65 * i / 10) for i in range(1, 11)]


def test_saliency_follows_the_drawing_and_the_chosen_class(visit):
    visit.open_ready()
    page = visit.page
    draw(page, vertical_stroke())
    expect(page.locator("#prediction")).to_have_text("1", timeout=15_000)
    page.wait_for_function("document.querySelector('#saliency').dataset.target === '1'", timeout=15_000)
    one = colours(page, "#saliency")
    assert one["red"] > 10 and one["blue"] > 10, one
    expect(page.locator("#sal-caption")).to_have_text("for the predicted 1")
    # Pyodide's map is CPython's for the same ink (the first layer's input gradient, run in the worker).
    web.reset()
    web.load_pretrained(PRETRAINED)
    here = np.frombuffer(web.saliency(ink(page), 280, 280)["image"]["pixels"], np.uint8).astype(int)
    web.reset()
    shown = np.array(page.evaluate("""() => Array.from(document.querySelector("#saliency")
        .getContext("2d").getImageData(0, 0, 28, 28).data)"""))
    assert np.abs(shown - here).max() <= 2
    page.get_by_role("radio", name="digit 7").click()
    page.wait_for_function("document.querySelector('#saliency').dataset.target === '7'", timeout=15_000)
    assert colours(page, "#saliency")["url"] != one["url"]
    assert page.get_by_role("radio", name="digit 7").get_attribute("aria-checked") == "true"
    expect(page.locator("#sal-caption")).to_have_text("for a 7 (the model says 1)")
    page.keyboard.press("ArrowRight")  # the radio group moves with the arrow keys
    page.wait_for_function("document.querySelector('#saliency').dataset.target === '8'", timeout=15_000)
    assert not visit.console_errors


def test_a_step_on_a_drawn_digit_steps_through_pythons_numbers(visit):
    visit.open_ready()
    page = visit.page
    draw(page, vertical_stroke())
    expect(page.locator("#prediction")).to_have_text("1", timeout=15_000)
    page.select_option("#step-label", "7")
    page.select_option("#optimizer", "sgd")
    page.fill("#lr", "0.1")
    page.click("#step-take")
    expect(page.locator("#step-count")).to_have_text("Stage 1 of 23", timeout=20_000)
    summary = page.locator("#step-summary").inner_text()

    # The same step in CPython on the same ink: the same losses before and after.
    web.reset()
    web.load_pretrained(PRETRAINED)
    here = web.step_apart(ink(page), 280, 280, 7, "sgd", 0.1)
    web.reset()
    shown = re.search(r"Loss ([-\d.e+]+) → ([-\d.e+]+) after the step", summary)
    assert shown, summary
    assert float(shown[1]) == pytest.approx(here["loss"], rel=1e-3)
    assert float(shown[2]) == pytest.approx(here["loss_after"], rel=2e-2)  # shown to 3 digits
    assert summary.startswith("On your digit")
    assert "labelled 7 (the model says 1)" in summary

    titles = [page.locator("#stage-title").inner_text()]
    page.locator("#step-stage").focus()
    for _ in range(22):
        page.keyboard.press("ArrowRight")
        titles.append(page.locator("#stage-title").inner_text())
    assert titles == [s["title"] + (f" · shape ({', '.join(map(str, s['shape']))})" if s.get("shape") else "")
                      for s in here["stages"]]
    assert page.locator("#step-next").is_disabled()
    assert page.locator("#stage-formula").inner_text() == "W ← W − lr · ∂L/∂W"
    assert page.locator("#stage-picture canvas").count() == 48  # conv1's 16 filters before, after, change
    page.click("#step-prev")
    assert page.locator("#stage-title").inner_text().startswith("Backward · gradient reaching conv1's output")
    assert page.locator("#stage-picture canvas").count() == 32  # 16 gradient maps and 16 filter gradients
    assert not visit.console_errors


def keep(page, points, label: str) -> None:
    page.click("#clear")
    draw(page, points)
    page.wait_for_function("!document.querySelector('#prediction').classList.contains('empty')", timeout=15_000)
    page.select_option("#teach-label", label)
    count = page.locator("#hand-gallery .tile").count()
    page.click("#teach-keep")
    expect(page.locator("#hand-gallery .tile")).to_have_count(count + 1, timeout=10_000)


def test_teach_it_your_handwriting(visit, mnist, tmp_path):
    visit.open_ready()
    page = visit.page
    page.click("#hand-panel summary")
    keep(page, vertical_stroke(), "1")
    keep(page, seven_ish(), "7")
    keep(page, seven_ish(), "7")
    labels = [s.input_value() for s in page.locator("#hand-gallery select").all()]
    assert labels == ["1", "7", "7"]

    # The digits survive a reload (IndexedDB), and the gallery edits them.
    visit.open_ready()
    page.click("#hand-panel summary")
    expect(page.locator("#hand-gallery .tile")).to_have_count(3, timeout=10_000)
    page.get_by_label("label of your digit 1").select_option("4")
    page.get_by_label("label of your digit 1").select_option("1")

    # Download them, and train with the CLI on MNIST mixed with them.
    with page.expect_download() as done:
        page.click("#digits-download")
    path = tmp_path / "my_digits.npz"
    done.value.save_as(path)
    x_train, y_train, x_test, y_test = mnist
    data = tmp_path / "mnist.npz"
    np.savez(data, x_train=x_train[:300], y_train=y_train[:300], x_test=x_test[:200], y_test=y_test[:200])
    cli = subprocess.run([sys.executable, "-m", "pycnn", "train", "--dataroot", str(data), "--epochs", "1",
                          "--n_filter", "4", "--extra", str(path)], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300, check=False)
    assert cli.returncode == 0, cli.stderr
    assert "mixed in 3 of your digits" in cli.stdout

    # Fine-tune: the ambiguous drawing moves toward its label 7; the test accuracy is reported.
    page.click("#fine-tune")
    expect(page.locator("#hand-message")).to_contain_text("Test accuracy on 2,000 test images", timeout=120_000)
    rows = page.locator("#tune-results tr").all_inner_texts()[1:]
    assert len(rows) == 3, rows
    before, after = (float(m) for m in re.findall(r"\((\d+)% a 7\)", rows[1]))
    assert after > before, rows
    expect(page.locator("#model-name")).to_contain_text("fine-tuned on 3 of your digits")
    expect(page.locator("#previous")).to_be_visible()

    # Remove every digit, then load the file back.
    for _ in range(3):
        page.get_by_label("remove your digit 1").click()
    expect(page.locator("#hand-gallery .tile")).to_have_count(0)
    page.set_input_files("#digits-upload", str(path))
    expect(page.locator("#hand-gallery .tile")).to_have_count(3, timeout=10_000)
    assert [s.input_value() for s in page.locator("#hand-gallery select").all()] == ["1", "7", "7"]
    assert not visit.console_errors


def test_layer_health_updates_during_a_run_and_marks_a_learning_rate_change(visit):
    from test_browser import choose, train_size_near

    visit.open_ready()
    page = visit.page
    choose(page, "#preset", "seed")
    choose(page, "#optimizer", "sgd")
    choose(page, "#lr", "0.01")
    choose(page, "#train_size", train_size_near(page, 10_000))
    page.click("#train")
    visit.wait_for_state("training", 60_000)
    page.wait_for_function("Number(document.querySelector('#health-charts').dataset.points) >= 3", timeout=60_000)
    seen = int(page.locator("#health-charts").get_attribute("data-points"))
    page.fill("#health-lr", "1")
    page.click("#health-apply")
    expect(page.locator("#health-message")).to_contain_text("Learning rate 1 from step", timeout=10_000)
    page.wait_for_function(f"Number(document.querySelector('#health-charts').dataset.points) >= {seen + 3}",
                           timeout=60_000)
    assert page.locator("#health-charts").get_attribute("data-marks") == "1"
    ratio = page.locator(".health-chart[data-key=ratio] figcaption").inner_text()
    assert "conv1.W" in ratio and "dense1.W" in ratio
    page.click("#stop")
    visit.wait_for_state("ready", 60_000)
    assert page.locator("#health-apply").is_disabled()
    assert not visit.console_errors


def test_a_mistake_of_the_gallery_takes_its_step_on_its_true_label(visit):
    visit.open_ready()
    page = visit.page
    page.click("#eval-panel summary")
    page.click("#evaluate")
    page.wait_for_function("document.querySelectorAll('#gallery .tile').length > 0", timeout=120_000)
    tile = page.locator("#gallery .tile").nth(1)
    words = re.match(r"test image #(\d+): a (\d), predicted (\d)", tile.get_attribute("title"))
    assert tile.get_attribute("role") == "button" and tile.get_attribute("tabindex") == "0"
    tile.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-summary")).to_contain_text(
        f"On test image #{words[1]}, labelled {words[2]} (the model says {words[3]})", timeout=20_000)
    assert page.locator("#step-test-index").input_value() == words[1]
    expect(page.locator("#step-count")).to_have_text("Stage 1 of 23")
    assert not visit.console_errors
