"""The repository stands on its own: no tracked file refers to a path outside it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import ROOT

# Spelled in two parts so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/" + "work/")


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail(f"{ROOT} is not a git checkout: this test reads `git ls-files`", pytrace=False)
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    return [name for name in listing.stdout.decode().split("\0") if name]


def test_no_tracked_file_refers_to_a_path_outside_the_repository():
    found = []
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree but not yet in the index
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            found += [f"{name}:{lineno}: {line.strip()}" for needle in OUTSIDE if needle in line]
    assert not found, "files refer to paths outside the repository:\n" + "\n".join(found)


def test_the_version_is_the_same_everywhere_and_has_a_changelog_section():
    import tomllib

    import pycnn

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pycnn.__version__ == version, f"pycnn/__init__.py says {pycnn.__version__}, pyproject.toml {version}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog, "CHANGELOG.md needs an [Unreleased] section at the top"
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.MULTILINE), \
        f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section"
