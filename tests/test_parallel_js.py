"""Data-parallel training's JavaScript under Node, with fake workers: the transport in each worker
(web/mesh.js, tests/mesh.test.mjs) and the page's side through the real Comlink (web/pool.js,
web/peer.js, tests/pool.test.mjs)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = [Path(__file__).with_name(name) for name in ("mesh.test.mjs", "pool.test.mjs")]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_workers_exchange_parts_and_fall_back_to_one_worker(script):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install Node.js >= 18 (see the README)", pytrace=False)
    # --test-force-exit: the ports Comlink's callbacks hold are closed only when garbage-collected.
    run = subprocess.run([node, "--test", "--test-force-exit", str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    tests = len(re.findall(r"^test\(", script.read_text(), re.M))
    assert tests >= 6 and f"# pass {tests}" in run.stdout, run.stdout
