"""The pycnn wheel the page installs: built from pycnn/ with `pip wheel --no-deps`, cached by source hash."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from site_folder import BuildError, log


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
