"""The data-parallel coordinator (web/parallel.js) under Node, with fake workers."""

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("parallel_coordinator.test.mjs")


def test_coordinator_sums_parts_and_falls_back_to_one_worker():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install Node.js >= 18 (see the README)", pytrace=False)
    run = subprocess.run([node, "--test", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# pass 6" in run.stdout, run.stdout
