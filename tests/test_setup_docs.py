"""The README's two fresh-machine commands, and CI running the second one."""

import re

from conftest import ROOT

SERVE_COMMAND = "npm ci && pip install . && python build_site.py --serve"
TEST_COMMAND = "npm ci && pip install -e '.[test]' && python -m pytest"


def setup_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- setup:start -->(.*?)<!-- setup:end -->", text, re.DOTALL)
    assert match, "README.md lost its <!-- setup:start --> ... <!-- setup:end --> section"
    return match.group(1)


def test_quick_start_gives_the_two_commands_in_order():
    quick_start = setup_section().split("## Requirements")[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", quick_start, re.DOTALL)
    assert blocks == [SERVE_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    runs = [line for line in script.splitlines() if "python -m pytest" in line and not line.lstrip().startswith("#")]
    assert len(runs) == 1 and runs[0].startswith(TEST_COMMAND), runs
