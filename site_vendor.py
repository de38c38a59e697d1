"""The JavaScript libraries the page imports as ES modules, from node_modules into site/vendor/:
copied as they are, or (the Code card's editor) bundled by esbuild at build time."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from site_folder import BuildError, Staging

# npm packages the page imports as ES modules: site/vendor/<name> <- node_modules/<package>/<file>,
# with the package's licence beside it as vendor/<package>-LICENSE.
VENDOR = {
    "comlink.mjs": ("comlink", "dist/esm/comlink.mjs", "LICENSE"),  # page <-> worker calls (Apache-2.0)
    "idb-keyval.js": ("idb-keyval", "dist/index.js", "LICENCE"),  # IndexedDB in the worker (Apache-2.0)
}
# The Code card's editor: one ES module bundled from npm packages at build time (no CDN).
EDITOR_ENTRY = "editor-entry.js"
EDITOR_BUNDLE = "editor.js"


def check_vendor(root: Path) -> None:
    """Raise BuildError naming `npm ci` when a vendored file or its licence is missing."""
    for package, file, licence in VENDOR.values():
        for name in (file, licence):
            if not (root / "node_modules" / package / name).is_file():
                raise BuildError(f"node_modules/{package}/{name} not found: run `npm ci` first")


def stage_vendor(root: Path, stage: Staging) -> None:
    """Stage vendor/<name> and vendor/<package>-LICENSE for every entry of VENDOR."""
    for name, (package, file, licence) in VENDOR.items():
        for src, dst in ((file, name), (licence, f"{package}-LICENSE")):
            stage.copy(root / "node_modules" / package / src, f"vendor/{dst}")


def bundle_editor(root: Path, stage: Staging) -> None:
    """esbuild web/editor-entry.js and the npm packages it imports into vendor/editor.js,
    with the licence of every package in the bundle (from esbuild's metafile) beside it."""
    if not (root / "node_modules" / ".bin" / "esbuild").is_file():
        raise BuildError("node_modules/.bin/esbuild not found (it bundles the code editor): run `npm ci` first")
    with tempfile.TemporaryDirectory() as tmp:
        bundle, meta = Path(tmp) / EDITOR_BUNDLE, Path(tmp) / "meta.json"
        command = [str(root / "node_modules" / ".bin" / "esbuild"), str(root / "web" / EDITOR_ENTRY), "--bundle",
                   "--format=esm", "--minify", "--target=es2020", "--log-level=error",
                   f"--outfile={bundle}", f"--metafile={meta}"]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BuildError(f"esbuild could not bundle web/{EDITOR_ENTRY}: {done.stderr.strip().splitlines()[-1:]}")
        packages = sorted({_npm_package(name) for name in json.loads(meta.read_text())["inputs"]} - {None})
        stage.write(f"vendor/{EDITOR_BUNDLE}", bundle.read_text())
    licences = []
    for package in packages:
        found = sorted((root / "node_modules" / package).glob("LICEN[CS]E*"))
        if not found:
            raise BuildError(f"node_modules/{package} has no licence file to ship with the editor bundle")
        licences.append(f"== {package} ==\n\n{found[0].read_text().strip()}\n")
    stage.write("vendor/editor-LICENSES.txt", "\n".join(licences))


def _npm_package(path: str) -> str | None:
    """The npm package a bundled file came from ("@codemirror/view"), None for the project's own."""
    parts = path.split("node_modules/")[-1].split("/") if "node_modules/" in path else None
    if not parts:
        return None
    return "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]
