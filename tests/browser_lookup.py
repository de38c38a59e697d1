"""Which Chromium the browser tests drive: the first of three places that has one.

1. the environment variable ``PYCNN_BROWSER`` (or ``CHROMIUM_PATH``), naming an executable;
2. Debian's ``/usr/bin/chromium``, where it exists;
3. Playwright's own Chromium, installed with ``python -m playwright install chromium``.

Kept apart from conftest.py so that every branch can be tested without a browser.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

ENV_VARS = ("PYCNN_BROWSER", "CHROMIUM_PATH")
DEBIAN_CHROMIUM = "/usr/bin/chromium"

HOW_TO_GET_ONE = (
    "set PYCNN_BROWSER to a Chromium or Chrome executable, "
    f"or install Debian's Chromium at {DEBIAN_CHROMIUM} (`sudo apt-get install chromium`), "
    "or install Playwright's own with `python -m playwright install chromium` "
    "(`--with-deps` also installs its system libraries on Linux)"
)


class BrowserNotFound(Exception):
    """No usable browser; the message says what was tried and the three ways to get one."""


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_browser(environ: Mapping[str, str] = os.environ, debian: str = DEBIAN_CHROMIUM,
                 playwright_chromium: Callable[[], str] | None = None,
                 executable: Callable[[str], bool] = is_executable) -> str:
    """The path of the Chromium executable to launch; raises BrowserNotFound with what to do.

    `playwright_chromium` returns where Playwright keeps its own Chromium (the path
    exists only once `playwright install chromium` has run); it is called only when
    the first two places have none, since asking Playwright starts its driver.
    """
    for name in ENV_VARS:
        path = environ.get(name)
        if path:
            # A variable that names nothing is a mistake to report, not a reason to
            # quietly test with some other browser.
            if not executable(path):
                raise BrowserNotFound(f"{name}={path} is not an executable file: {HOW_TO_GET_ONE}")
            return path
    if executable(debian):
        return debian
    tried = f"{' and '.join(ENV_VARS)} unset, no {debian}"
    if playwright_chromium is not None:
        path = playwright_chromium()
        if path and executable(path):
            return path
        tried += f", no Playwright Chromium at {path}"
    raise BrowserNotFound(f"no Chromium for the browser tests ({tried}): {HOW_TO_GET_ONE}")
