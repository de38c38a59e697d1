"""browser_lookup.find_browser: the variable first, then Debian's Chromium, then Playwright's own."""

from __future__ import annotations

import os
import stat

import pytest

from browser_lookup import BrowserNotFound, find_browser


@pytest.fixture
def exe(tmp_path):
    """make(name) creates an executable file under tmp_path and returns its path."""
    def make(name: str) -> str:
        path = tmp_path / name
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)
    return make


def never() -> str:
    raise AssertionError("Playwright was asked although an earlier place had a browser")


def test_the_variable_wins_over_debian_and_playwright(exe):
    mine, debian = exe("my-chrome"), exe("chromium")
    assert find_browser({"PYCNN_BROWSER": mine}, debian=debian, playwright_chromium=never) == mine


def test_chromium_path_is_accepted_too(exe):
    mine = exe("my-chrome")
    assert find_browser({"CHROMIUM_PATH": mine}, debian="/nonexistent", playwright_chromium=never) == mine


def test_a_variable_naming_nothing_fails_instead_of_falling_back(exe, tmp_path):
    missing = str(tmp_path / "no-such-chrome")
    with pytest.raises(BrowserNotFound, match=f"PYCNN_BROWSER={missing} is not an executable file"):
        find_browser({"PYCNN_BROWSER": missing}, debian=exe("chromium"), playwright_chromium=never)


def test_a_file_that_cannot_run_is_not_a_browser(tmp_path):
    plain = tmp_path / "chrome"
    plain.write_text("")
    os.chmod(plain, 0o644)
    with pytest.raises(BrowserNotFound, match="is not an executable file"):
        find_browser({"PYCNN_BROWSER": str(plain)}, debian="/nonexistent")


def test_debian_chromium_when_the_variable_is_unset(exe):
    debian = exe("chromium")
    assert find_browser({}, debian=debian, playwright_chromium=never) == debian


def test_an_empty_variable_counts_as_unset(exe):
    debian = exe("chromium")
    assert find_browser({"PYCNN_BROWSER": ""}, debian=debian, playwright_chromium=never) == debian


def test_playwright_chromium_when_there_is_no_debian_one(exe, tmp_path):
    managed = exe("chrome-linux64-chrome")
    assert find_browser({}, debian=str(tmp_path / "none"), playwright_chromium=lambda: managed) == managed


def test_nothing_anywhere_names_all_three_ways(tmp_path):
    never_installed = str(tmp_path / "ms-playwright" / "chrome")
    with pytest.raises(BrowserNotFound) as info:
        find_browser({}, debian=str(tmp_path / "none"), playwright_chromium=lambda: never_installed)
    message = str(info.value)
    for way in ("PYCNN_BROWSER", "apt-get install chromium", "python -m playwright install chromium",
                f"no Playwright Chromium at {never_installed}"):
        assert way in message, way

