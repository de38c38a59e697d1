"""Data-parallel training's JavaScript (web/mesh.js, web/pool.js, web/peer.js over the real Comlink) under Node, with fake workers."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("parallel_coordinator.test.mjs")


def test_workers_exchange_parts_and_fall_back_to_one_worker():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install Node.js >= 18 (see the README)", pytrace=False)
    run = subprocess.run([node, "--test", "--test-force-exit", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    tests = len(re.findall(r"^test\(", SCRIPT.read_text(), re.M))
    assert tests >= 14 and f"# pass {tests}" in run.stdout, run.stdout
