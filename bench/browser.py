"""Training in the real page: time to a test accuracy and the tab's memory, in headless Chromium.

``python -m bench.browser`` builds the site, serves it on localhost, opens it in Debian's
Chromium, sets the Train form the way a visitor would, presses Train and reports:

- seconds from pressing Train to the first epoch whose test accuracy reaches ``--target``;
- the page's own images/s while training (and so ms per step at the chosen batch size);
- the peak resident memory of the tab's renderer process (page and workers), and of all
  Chromium processes together (PSS).

``--workers N`` trains with N data-parallel workers (the extra ones are started, and waited
for, before Train is pressed, as the page does when the count is chosen).

``--scaling`` measures data-parallel scaling instead: for 1 and N workers (``--workers``,
default 2) it trains on the full set and reports the images/s of the training phase alone
(from the progress bar, between 10% of the epoch and ``--window`` seconds later; with
``--repeat R`` it alternates R runs of each and keeps the fastest), the speed-up over one
worker, and the page's own figures: its estimate of the speed-up and the first worker's time
per step spent waiting for the others' gradients. Every line carries the load averages before
and after, since this machine is shared, and how many cores the browser actually got while it
was timed (its processes' CPU time over the wall time) with its CPU time per image: two
workers can only be faster if the browser gets close to two cores.

Not part of the test suite: it times things. Needs the test extras (Playwright) and
/usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# The fastest settings found for 0.977 (see docs/PERFORMANCE.md): one epoch of the one-layer model at stride 2.
FASTEST = {"preset": "seed", "optimizer": "adam", "lr": "0.002", "batch_size": "64", "epochs": "2",
           "train_size": "60000", "n_filter": "32", "filter_size": "6", "stride": "2", "padding": "2"}


def chromium_processes() -> dict[int, int]:
    """The Chromium processes this benchmark started (descendants of this process, not
    other users' browsers), with the CPU clock ticks each has used so far (every thread)."""
    children, stats = {}, {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            text = (proc / "stat").read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(proc.name))
        stats[int(proc.name)] = (comm, int(rest[11]) + int(rest[12]))  # utime + stime
    mine, todo = {}, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        comm, ticks = stats.get(pid, ("", 0))
        if comm.startswith("chrom"):
            mine[pid] = ticks
    return mine


def chromium_cpu_seconds() -> float:
    """CPU seconds used so far by the Chromium processes this benchmark started."""
    return sum(chromium_processes().values()) / os.sysconf("SC_CLK_TCK")


def chromium_memory_mb() -> tuple[float, float]:
    """(largest peak RSS of one Chromium process, PSS of all of them now), in MB, for this benchmark's browser.

    The page and its workers live in one renderer process, so the first is the
    tab's own footprint at its highest so far (VmHWM, so sampling cannot miss
    it); PSS shares common pages fairly, so the second is what the whole
    browser costs the machine.
    """
    largest = total_pss = 0
    for pid in chromium_processes():
        proc = Path("/proc") / str(pid)
        try:
            rss = next(int(line.split()[1]) for line in (proc / "status").read_text().splitlines()
                       if line.startswith("VmHWM:"))
            pss = next(int(line.split()[1]) for line in (proc / "smaps_rollup").read_text().splitlines()
                       if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        largest, total_pss = max(largest, rss), total_pss + pss
    return largest / 1024, total_pss / 1024


def fill_form(page, settings: dict) -> None:
    for name in ("preset", "optimizer", "batch_size", "train_size"):
        page.select_option(f"#train-form [name={name}]", settings[name])
    knobs = ("n_filter", "filter_size", "stride", "padding") if settings["preset"] == "seed" else ()
    for name in ("lr", "epochs", *knobs):
        field = page.locator(f"#train-form [name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(settings[name])
        else:
            field.fill(settings[name])
    workers = settings.get("workers", "1")
    page.select_option("#workers", workers)
    page.wait_for_function("n => document.querySelector('#workers').dataset.ready === n", arg=workers, timeout=120_000)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def serve_and_browse():
    """Build the site, serve it and launch Chromium; returns (browser, url, close)."""
    from playwright.sync_api import sync_playwright

    import build_site

    tmp = tempfile.TemporaryDirectory()
    site = Path(tmp.name) / "site"
    build_site.build(site)
    server = build_site.make_server(site, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    return browser, f"http://127.0.0.1:{server.server_address[1]}/", lambda: (browser.close(), p.stop(),
                                                                                 server.shutdown(), tmp.cleanup())


def throughput(browser, url: str, settings: dict, window_s: float) -> dict:
    """Images/s of the training phase with these settings (the full set, one epoch), then Stop."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=120_000)
    fill_form(page, {**settings, "train_size": "60000", "epochs": "1"})
    before = load()
    page.click("#train")
    samples = []  # (seconds, images done in the epoch, browser CPU seconds: first and last only)
    start = time.monotonic()
    while time.monotonic() - start < window_s + 120:
        # Polled gently: this loop's own CPU is taken from the browser on a 2-core machine.
        m = re.search(r"([\d,]+) / ([\d,]+) images", page.inner_text("#progress-label"))
        if m:
            done, total = (int(g.replace(",", "")) for g in m.groups())
            if done >= 0.1 * total:
                now = time.monotonic()
                last = bool(samples) and (now - samples[0][0] >= window_s or done >= 0.95 * total)
                samples.append((now, done, chromium_cpu_seconds() if last or not samples else None))
                if last:
                    break
        time.sleep(0.25)
    note = page.locator("#workers-note")
    figures = {k: note.get_attribute(f"data-{k}") for k in ("workers", "speedup", "wait-ms", "step-ms")}
    page.click("#stop")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=30_000)
    page.close()
    (t0, n0, c0), (t1, n1, c1) = samples[0], samples[-1]
    return {"workers": int(settings.get("workers", "1")), "images_per_second": round((n1 - n0) / (t1 - t0)),
            "window_seconds": round(t1 - t0, 1),
            # How many cores the browser got, and its CPU time per image (all its threads):
            # on a shared machine the first says whether the workers had cores to run on.
            "browser_cores_used": round((c1 - c0) / (t1 - t0), 2),
            "browser_cpu_ms_per_image": round(1000 * (c1 - c0) / (n1 - n0), 3),
            "page_speedup_estimate": figures["speedup"],
            "wait_ms_per_step": figures["wait-ms"], "ms_per_step": figures["step-ms"],
            "load_before": before, "load_after": load()}


def scaling(settings: dict, workers: int, window_s: float, repeat: int) -> dict:
    """One worker, then ``workers``, ``repeat`` times in turn; the fastest run of each counts."""
    browser, url, close = serve_and_browse()
    runs = {1: [], workers: []}
    try:
        for _ in range(repeat):
            for n in runs:
                runs[n].append(throughput(browser, url, {**settings, "workers": str(n)}, window_s))
    finally:
        close()
    one, many = (max(runs[n], key=lambda r: r["images_per_second"]) for n in runs)
    knobs = ("n_filter", "filter_size", "stride", "padding") if settings["preset"] != "seed" else ()
    return {"settings": {k: v for k, v in settings.items() if k not in ("train_size", "epochs", *knobs)},
            "one": one, "many": many, "speedup": round(many["images_per_second"] / one["images_per_second"], 2),
            "cpu_per_image_ratio": round(many["browser_cpu_ms_per_image"] / one["browser_cpu_ms_per_image"], 2),
            "all_images_per_second": {n: [r["images_per_second"] for r in rs] for n, rs in runs.items()}}


def measure(settings: dict, target: float, timeout_s: float) -> dict:
    from playwright.sync_api import sync_playwright

    import build_site

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site.build(site)
        server = build_site.make_server(site, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            start = time.monotonic()
            page.goto(url)
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=120_000)
            ready = time.monotonic() - start
            fill_form(page, settings)
            before = load()
            page.click("#train")
            start, tab, browser_pss, reached, speed = time.monotonic(), 0.0, 0.0, None, None
            accuracy, sampled = None, 0.0
            while time.monotonic() - start < timeout_s:
                # Reading every process's smaps costs this script about 25 ms of CPU, which on
                # 2 cores is taken from the browser: memory is sampled every 2 s, not every poll.
                if time.monotonic() - sampled >= 2:
                    one, total = chromium_memory_mb()
                    tab, browser_pss, sampled = max(tab, one), max(browser_pss, total), time.monotonic()
                text = page.inner_text("#test-accuracy").strip()
                speed = page.inner_text("#progress-speed") or speed
                try:
                    accuracy = float(text)
                except ValueError:
                    accuracy = None
                if accuracy is not None and accuracy >= target:
                    reached = time.monotonic() - start
                    break
                if page.evaluate("document.body.dataset.state") != "training":
                    break
                time.sleep(0.25)
            tab = max(tab, chromium_memory_mb()[0])
            page.click("#stop") if page.evaluate("document.body.dataset.state") == "training" else None
            browser.close()
        server.shutdown()
    return {"settings": settings, "target": target, "ready_seconds": round(ready, 1),
            "seconds_to_target": None if reached is None else round(reached, 1),
            "test_accuracy": accuracy, "progress_text": speed, "load_before": before, "load_after": load(),
            "peak_tab_rss_mb": round(tab), "peak_browser_pss_mb": round(browser_pss)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.977)
    parser.add_argument("--timeout", type=float, default=300, help="seconds before giving up")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a form field, e.g. --set preset=lenet")
    parser.add_argument("--workers", type=int, default=None, help="data-parallel workers (default 1; 2 with --scaling)")
    parser.add_argument("--scaling", action="store_true",
                        help="images/s with 1 and --workers workers, and the speed-up")
    parser.add_argument("--window", type=float, default=20, help="seconds of training timed per run with --scaling")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --scaling: runs of each, in turn; the fastest counts")
    args = parser.parse_args(argv)
    settings = dict(FASTEST)
    for item in args.set:
        name, _, value = item.partition("=")
        settings[name] = value
    if args.scaling:
        print(json.dumps(scaling(settings, args.workers or 2, args.window, args.repeat)))
        return 0
    settings["workers"] = str(args.workers or 1)
    print(json.dumps(measure(settings, args.target, args.timeout)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
