"""The Code card in headless Chromium: the editor, Check in its own worker, errors on their lines, Stop.

Types into the CodeMirror editor as a user does (click a line, select it, type),
and reads the check table that pycnn.homework filled in the code worker.
"""

from __future__ import annotations

import time

import pytest

from test_browser import choose, closed_loop, draw

pytestmark = pytest.mark.browser

CODE_TIMEOUT_MS = 120_000  # a second Python starts for the code (observed ~10 s on 2 cores)
CHECK_TIMEOUT_MS = 30_000


def open_code_card(page) -> None:
    page.click("#code-panel > summary")
    page.wait_for_selector("#code-panel[data-ready='1']", timeout=CODE_TIMEOUT_MS)


def replace_line(page, containing: str, text: str) -> None:
    """Click the editor line holding `containing`, select it after its indentation, and type `text`."""
    line = page.locator("#code-editor .cm-line", has_text=containing).first
    line.scroll_into_view_if_needed()
    line.click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")
    page.keyboard.type(text)


def check(page, button: str = "#code-check") -> str:
    page.wait_for_selector(f"{button}:not([disabled])")
    page.click(button)
    page.wait_for_function("document.querySelector('#code-results').dataset.status !== 'running'",
                           timeout=CHECK_TIMEOUT_MS)
    return page.locator("#code-results").get_attribute("data-status")


def rows(page) -> list[list[str]]:
    return page.eval_on_selector_all("#code-results tbody tr",
                                     "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")


def test_write_check_fix_and_errors_in_the_editor(visit):
    visit.open_ready()
    page = visit.page
    open_code_card(page)
    # Read: pycnn's own source, as installed in the tab's Python
    page.select_option("#code-file", "layers.py")
    assert page.locator("#code-editor .cm-content").get_attribute("contenteditable") == "false"
    assert page.locator("#code-editor .cm-line", has_text='"""Layers: each caches in').count() == 1
    page.select_option("#code-file", "my_layers.py")
    assert page.locator("#code-editor .cm-line", has_text='write ReLU.backward').count() == 1
    assert page.locator("#code-editor .cm-gutters .cm-lineNumbers").count() == 1  # line numbers

    # A wrong ReLU.backward (the mask forgotten) fails, with its relative error and first differing entry
    page.select_option("#code-exercise", "ReLU.backward")
    replace_line(page, 'write ReLU.backward', "return dout.copy()")
    assert check(page) == "fail"
    table = rows(page)
    dx = next(r for r in table if r[1] == "dx vs pycnn")
    assert dx[0] == "ReLU.backward" and dx[4] == "fail" and float(dx[2]) > float(dx[3]) == 1e-4
    assert any(r[0].startswith("first differing entry") for r in table)
    assert page.locator("#code-editor .cm-mark-fail").count() == 1
    assert "ReLU.backward" in page.locator("#code-message").inner_text()

    # The right one passes: values, dout untouched, the float64 numerical gradient
    replace_line(page, "return dout.copy()", "return np.where(self.positive, dout, 0)")
    assert check(page) == "pass"
    assert [r[4] for r in rows(page)] == ["pass"] * 3
    assert "numerical gradient" in " ".join(r[1] for r in rows(page))
    assert page.locator("#code-editor .cm-mark-fail").count() == 0

    # Conv2D.backward from pycnn's solution passes too (Show pycnn's solution, then Check)
    page.select_option("#code-exercise", "Conv2D.backward")
    page.click("#code-solution")
    page.wait_for_selector("#code-editor .cm-line:has-text('dz = ops.gradient_rows(dout, self._order)')")
    assert check(page) == "pass"

    # A syntax error marks its line
    replace_line(page, "return np.where(self.positive, dout, 0)", "return np.where(self.positive, dout,, 0)")
    assert check(page) == "error"
    marked = page.locator("#code-editor .cm-mark-error")
    assert marked.count() == 1 and "dout,, 0" in marked.inner_text()
    assert "SyntaxError" in page.locator("#code-message").inner_text()

    # Undo (Ctrl+Z) takes the typing back; the file is kept across a reload
    page.locator("#code-editor .cm-line", has_text="dout,, 0").click()
    fixed = page.locator("#code-editor .cm-line", has_text="return np.where(self.positive, dout, 0)")
    for _ in range(60):  # typing is undone in groups of keystrokes, however fast they came
        page.keyboard.press("Control+z")
        page.wait_for_timeout(50)
        if fixed.count():
            break
    assert fixed.count() == 1
    time.sleep(0.6)  # the editor saves 0.3 s after the last edit
    page.reload()
    visit.wait_for_state("ready")
    open_code_card(page)
    assert page.locator("#code-editor .cm-line", has_text="return np.where(self.positive, dout, 0)").count() == 1
    assert visit.console_errors == []


def test_an_endless_loop_is_stopped_and_the_page_keeps_predicting(visit):
    visit.open_ready()
    page = visit.page
    open_code_card(page)
    replace_line(page, 'write ReLU.backward', "while True: pass")
    page.click("#code-check")
    page.wait_for_selector("#code-stop:not([disabled])")
    time.sleep(1)
    start = time.monotonic()
    page.click("#code-stop")
    page.wait_for_function("document.querySelector('#code-results').dataset.status !== 'running'", timeout=2000)
    assert time.monotonic() - start < 2
    assert page.locator("#code-message").inner_text().startswith("Stopped")
    draw(page, closed_loop())
    page.wait_for_function("document.querySelector('#prediction').textContent.trim() === '0'", timeout=10_000)
    replace_line(page, "while True: pass", "return np.where(self.positive, dout, 0)")
    assert check(page) == "pass"  # a new code worker took over


# The cheapest seed model, with the homework's momentum step: observed 0.91-0.93 after 10,000 images natively.
TRAIN_SETTINGS = {"#preset": "seed", "#optimizer": "momentum", "#lr": "0.05", "#batch_size": "64", "#epochs": "1",
                  "#train_size": "10000", "[name=n_filter]": "8", "[name=filter_size]": "6", "[name=stride]": "2",
                  "[name=padding]": "2"}


def test_passing_code_trains_the_seed_model_with_two_workers(visit, tmp_path):
    import pycnn

    visit.open_ready()
    page = visit.page
    open_code_card(page)
    page.click("#code-reset")  # every exercise written: pycnn's own bodies, as the student's file
    assert check(page, "#code-check-all") == "pass"
    page.check("#code-use")
    for selector, value in TRAIN_SETTINGS.items():
        choose(page, f"#train-form {selector}", value)
    choose(page, "#workers", "2")
    page.wait_for_function("document.querySelector('#workers').dataset.ready === '2'", timeout=60_000)
    page.click("#train")
    visit.wait_for_state("training", 5_000)
    page.wait_for_function("document.querySelector('#status-text').textContent.includes('with your code')",
                           timeout=30_000)
    assert "pycnn's" in page.inner_text("#status-text")  # the two speeds side by side
    visit.wait_for_state("ready", 300_000)
    assert "Done" in visit.message(), visit.message()
    assert page.locator("#workers-note").get_attribute("data-workers") == "2"
    assert float(page.inner_text("#test-accuracy")) >= 0.90
    assert "trained with your code (ReLU, Dense, Conv2D" in page.inner_text("#model-name")
    with page.expect_download() as download:
        page.click("#download")
    model = pycnn.load_model(download.value.path())  # loads in pycnn itself, and says what it was trained with
    assert model.preset["code"]["edited"][:3] == ["ReLU", "Dense", "Conv2D"]
    assert visit.console_errors == []


def test_the_code_card_works_offline_after_one_visit(browser, server):
    from conftest import Visit

    visit = Visit(browser, server, service_workers="allow")
    try:
        visit.open_ready()
        page = visit.page
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
        visit.context.set_offline(True)
        page.reload()
        visit.wait_for_state("ready")
        open_code_card(page)  # the editor bundle and a second Python, from the service worker's cache
        page.select_option("#code-exercise", "im2col")
        page.click("#code-solution")
        page.wait_for_selector("#code-editor .cm-line:has-text('padded = np.zeros')")
        assert check(page) == "pass"
        assert visit.console_errors == []
        assert not visit.foreign
    finally:
        visit.context.close()
