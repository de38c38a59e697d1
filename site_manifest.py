"""manifest.json and sw.js: what the page loads, and what the service worker keeps offline.

The manifest names the versions and files the page loads and lists every staged
file's size and sha256; sw.js is web/sw.js after a line naming the build's
version and the files to keep offline, with their sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from site_folder import GENERATOR, MANIFEST, SERVICE_WORKER, Staging


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_table(stage: Staging) -> dict[str, dict]:
    """{relative path: {"bytes": size, "sha256": hex digest}} of every file staged, sorted by path."""
    return {rel: {"bytes": stage.staged(rel).stat().st_size, "sha256": sha256_of(stage.staged(rel))}
            for rel in sorted(stage.files)}


def write_manifest(root: Path, stage: Staging, lock: dict, pycnn_wheel: Path, mnist: dict[str, str],
                   pretrained: str | None) -> dict:
    """Stage manifest.json and sw.js for everything staged so far; return the manifest."""
    entry = lock["packages"]["numpy"]
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
