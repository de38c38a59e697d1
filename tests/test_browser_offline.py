"""The second visit: the service worker keeps the site, so a reload with the network
cut off reaches ready and predicts, MNIST included once it was fetched; a new build
replaces the kept files, drops the old cache, and the page says a reload runs it.

Every other browser test blocks service workers (conftest.Visit); these allow them.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from playwright import sync_api as playwright_api

import build_site
from conftest import ROOT, Visit
from test_browser import draw, vertical_stroke

pytestmark = pytest.mark.browser

CACHES = "caches.keys()"


@pytest.fixture
def sw_visit(browser, server):
    v = Visit(browser, server, service_workers="allow")
    yield v
    v.context.close()
    assert not v.foreign, f"requests left the site's origin {server}: {v.foreign}"


def wait_until_kept(page) -> None:
    """Wait until the service worker has kept the site and controls the page."""
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)


def show_training_data(page) -> None:
    page.click("#data-panel summary")
    page.wait_for_function("document.querySelectorAll('#dataset .tile').length === 48", timeout=60_000)


def test_reload_offline_reaches_ready_predicts_and_shows_mnist(sw_visit):
    first = sw_visit.open_ready()
    page = sw_visit.page
    wait_until_kept(page)
    assert not [u for u in sw_visit.requests if "/data/" in u], "MNIST was fetched before anything needed it"
    show_training_data(page)  # MNIST is fetched now, and kept
    requested = {urlsplit(u).path for u in sw_visit.requests}

    sw_visit.context.set_offline(True)
    page.reload()
    second = sw_visit.wait_for_state("ready")
    print(f"ready after {first:.1f} s online, {second:.1f} s offline from the service worker's cache")
    draw(page, vertical_stroke())
    playwright_api.expect(page.locator("#prediction")).to_have_text("1", timeout=15_000)
    show_training_data(page)
    assert page.evaluate("document.body.dataset.mnist") == "loaded"
    assert sw_visit.console_errors == []
    # Nothing was fetched from the network while offline.
    assert {urlsplit(u).path for u in sw_visit.requests} == requested


def test_a_new_build_replaces_the_kept_files(sw_visit, site_root, tmp_path):
    # A copy of the checkout whose stylesheet changes between two builds served at /update/.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("build_site.py", "site_folder.py", "site_manifest.py", "site_pyodide.py", "site_serve.py",
                 "site_vendor.py", "site_wheel.py", "pyproject.toml", "LICENSE"):
        shutil.copy2(ROOT / name, checkout / name)
    for name in ("pycnn", "web", "static", "third_party"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "node_modules").symlink_to(ROOT / "node_modules")
    cache = tmp_path / "cache"
    for name in ("pyodide", "pycnn-wheel"):  # the checked numpy wheel and the built pycnn one: no download
        if (ROOT / ".cache" / name).is_dir():
            shutil.copytree(ROOT / ".cache" / name, cache / name)
    site = site_root / "update"
    old = build_site.build(site, root=checkout, cache=cache)

    sw_visit.open("update/")
    sw_visit.wait_for_state("ready")
    page = sw_visit.page
    wait_until_kept(page)
    names = page.evaluate(CACHES)
    assert [n for n in names if "shell" in n] == [f"pycnn /update/ shell {old['version']}"], names

    style = checkout / "web" / "style.css"
    style.write_text(style.read_text() + "\n/* the new build */\n")
    new = build_site.build(site, root=checkout, cache=cache)
    assert new["version"] != old["version"]
    # The next visit installs the new build and drops the old cache; the page says so.
    page.reload()
    sw_visit.wait_for_state("ready")
    page.wait_for_function(f"caches.keys().then(k => !k.includes('pycnn /update/ shell {old['version']}'))",
                           timeout=60_000)
    assert f"pycnn /update/ shell {new['version']}" in page.evaluate(CACHES)
    playwright_api.expect(page.locator("#status")).to_contain_text("reload the page to use it", timeout=10_000)
    page.reload()
    sw_visit.wait_for_state("ready")
    assert page.evaluate("fetch('style.css').then(r => r.text())").endswith("/* the new build */\n")
    assert sw_visit.console_errors == []
