"""What a visitor's browser downloads, and how long the page takes to become ready.

``python -m bench.visit`` builds the site, serves it on localhost under a sub-path
(as a static host would), and opens it in Debian's headless Chromium with a fresh
profile. It prints, from the server's side:

- the first visit: every request until the page is ready (method, path, status,
  bytes of body sent), their total, and the seconds from navigation to ready;
- what the service worker downloads after that to keep the site (nothing, when
  the browser's HTTP cache still holds what the page just loaded);
- opening the Training data panel: the MNIST download;
- the second visit (a reload) and a reload with the network off: seconds to ready
  and the requests that reached the server.

Localhost has no network latency, so the times are the browser's and Pyodide's own
work; a real connection adds the transfer time of the first visit's bytes. Not part
of the test suite: it times things. Needs the test extras and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import threading
import time
from pathlib import Path

from .browser import ARGS, CHROMIUM

SUBPATH = "pycnn"


def counting_server(root: Path):
    """A build_site server for `root` that records (method, path, status, body bytes) per request."""
    import build_site

    log: list[dict] = []

    class Handler(build_site.SiteHandler):
        def log_request(self, code="-", size="-") -> None:
            self.record = {"method": self.command, "path": self.path, "status": int(code), "bytes": 0}
            log.append(self.record)

        def copyfile(self, source, outputfile) -> None:
            start = source.tell()
            super().copyfile(source, outputfile)
            self.record["bytes"] = source.tell() - start

        def log_message(self, format: str, *args) -> None:
            pass

    server = build_site.SiteServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    return server, log


def take(log: list[dict], start: int) -> list[dict]:
    return [dict(r) for r in log[start:]]


def load(page, action) -> float:
    """Seconds from `action()` (a navigation) until the page is ready."""
    start = time.monotonic()
    action()
    page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=180_000)
    if page.evaluate("document.body.dataset.state") != "ready":
        raise SystemExit(f"the page failed: {page.inner_text('#status')}")
    return time.monotonic() - start


def measure(incognito: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    import build_site

    with tempfile.TemporaryDirectory() as tmp:
        build_site.build(Path(tmp) / SUBPATH)
        server, log = counting_server(Path(tmp))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{SUBPATH}/"
        out = {}
        with sync_playwright() as p:
            viewport = {"width": 1280, "height": 900}
            if incognito:  # an in-memory profile: its HTTP cache keeps no file as big as the .wasm
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                context = browser.new_context(viewport=viewport)
            else:  # a fresh profile on disk, as a visitor's browser has
                context = p.chromium.launch_persistent_context(
                    Path(tmp) / "profile", executable_path=CHROMIUM, args=ARGS, headless=True, viewport=viewport)
            page = context.pages[0] if context.pages else context.new_page()
            timings: list[dict] = []  # the worker's own loading times, one per visit (ms since it started)
            page.on("console", lambda m: m.text.startswith("pycnn: loading times")
                    and timings.append(json.loads(m.text[m.text.index("{"):])))
            start = time.monotonic()
            out["first_visit_ready_seconds"] = round(load(page, lambda: page.goto(url)), 2)
            out["first_visit"] = take(log, 0)
            mark = len(log)
            page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=120_000)
            out["service_worker_kept_after_seconds"] = round(time.monotonic() - start, 2)
            out["service_worker_install"] = take(log, mark)
            mark = len(log)
            page.click("#data-panel summary")
            page.wait_for_function("document.body.dataset.mnist === 'loaded'", timeout=120_000)
            out["mnist"] = take(log, mark)
            mark = len(log)
            out["second_visit_ready_seconds"] = round(load(page, page.reload), 2)
            out["second_visit"] = take(log, mark)
            mark = len(log)
            context.set_offline(True)
            out["offline_visit_ready_seconds"] = round(load(page, page.reload), 2)
            out["offline_visit"] = take(log, mark)
            context.close()
        out["worker_timings_ms"] = dict(zip(("first_visit", "second_visit", "offline_visit"), timings, strict=True))
        server.shutdown()
    return out


def table(title: str, records: list[dict]) -> str:
    lines = [f"{title}: {len(records)} requests, {sum(r['bytes'] for r in records):,} bytes"]
    for r in records:
        lines.append(f"  {r['method']:<4} {r['status']} {r['bytes']:>12,}  {r['path']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    parser.add_argument("--incognito", action="store_true",
                        help="use an in-memory profile (as Playwright's new_context does) instead of one on disk")
    args = parser.parse_args(argv)
    out = measure(args.incognito)
    if args.json:
        print(json.dumps(out))
        return 0
    print(table(f"first visit (ready after {out['first_visit_ready_seconds']} s)", out["first_visit"]))
    print(table(f"service worker keeping the site (controls the page {out['service_worker_kept_after_seconds']} s "
                "after navigation)", out["service_worker_install"]))
    print(table("MNIST, on opening the Training data panel", out["mnist"]))
    print(table(f"second visit (ready after {out['second_visit_ready_seconds']} s)", out["second_visit"]))
    print(table(f"reload with the network off (ready after {out['offline_visit_ready_seconds']} s)",
                out["offline_visit"]))
    print("the worker's loading times (ms since it started):", json.dumps(out["worker_timings_ms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
