"""The code passes its linters: ruff (configured in pyproject.toml) and ESLint (eslint.config.mjs).

ruff comes from the `test` extra, ESLint from package.json's devDependencies (`npm ci`).
A failing run shows the linter's own report. The second test of each pair feeds the
linter a broken line under the project's configuration, so a linter that silently
checks nothing would fail it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

ESLINT = ROOT / "node_modules" / "eslint" / "bin" / "eslint.js"


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed: run `pip install -e '.[test]'`", pytrace=False)
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


def eslint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install Node.js >= 18 (see the README)", pytrace=False)
    if not ESLINT.is_file():
        pytest.fail(f"ESLint not found at {ESLINT}: run `npm ci` in the repository root", pytrace=False)
    return subprocess.run([node, str(ESLINT), *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_python_passes_ruff():
    result = ruff()
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_reports_a_broken_line():
    result = ruff("--stdin-filename", "pycnn/broken.py", stdin="import os\n")
    assert result.returncode == 1 and "F401" in result.stdout, result.stdout + result.stderr


def test_javascript_passes_eslint():
    result = eslint(".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_eslint_reports_a_broken_line():
    result = eslint("--stdin", "--stdin-filename", "web/broken.js", stdin="const unused = 1;\n")
    assert result.returncode == 1 and "no-unused-vars" in result.stdout, result.stdout + result.stderr
