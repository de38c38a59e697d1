"""The JavaScript libraries the page imports as ES modules, copied from node_modules into site/vendor/."""

from __future__ import annotations

from pathlib import Path

from site_folder import BuildError, Staging

# npm packages the page imports as ES modules: site/vendor/<name> <- node_modules/<package>/<file>,
# with the package's licence beside it as vendor/<package>-LICENSE.
VENDOR = {
    "comlink.mjs": ("comlink", "dist/esm/comlink.mjs", "LICENSE"),  # page <-> worker calls (Apache-2.0)
    "idb-keyval.js": ("idb-keyval", "dist/index.js", "LICENCE"),  # IndexedDB in the worker (Apache-2.0)
}


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
