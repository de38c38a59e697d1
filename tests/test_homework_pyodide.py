"""The homework's checks inside Pyodide (WebAssembly, under Node), as the page's code worker runs them:
pycnn's solutions pass with Pyodide's spellings of the products, and a typical mistake fails there too."""

import pytest

from pycnn.homework import EXERCISES

PROGRAM = """
from pycnn import ops, web
h = web.homework()
solved = web.check_code(h["solution"])
wrong = h["solution"].replace("return ops.masked(dout, self.positive)", "return dout.copy()")
broken = web.check_code(wrong, ["ReLU.backward"])
syntax = web.check_code("def (:\\n")
{"pyodide": ops.PYODIDE, "ok": solved["ok"], "statuses": [r["status"] for r in solved["results"]],
 "wrong": broken["results"][0]["message"], "syntax_line": syntax["error"]["line"],
 "sources": sorted(h["sources"]), "has_getsource": "class Conv2D(Layer)" in h["sources"]["layers.py"]}
"""


@pytest.fixture(scope="module")
def wasm() -> dict:
    from tools.pyodide_node import run_in_pyodide

    return run_in_pyodide(PROGRAM)


def test_the_solutions_pass_in_pyodide(wasm):
    assert wasm["pyodide"] is True  # the einsum / np.where spellings ran
    assert wasm["ok"] and wasm["statuses"] == ["pass"] * len(EXERCISES)


def test_a_mistake_and_a_syntax_error_are_reported_in_pyodide(wasm):
    assert wasm["wrong"].startswith("dx vs pycnn: first differing entry")
    assert wasm["syntax_line"] == 1


def test_the_card_reads_the_installed_source_in_pyodide(wasm):
    assert wasm["sources"] == ["im2col.py", "layers.py", "losses.py", "ops.py", "optim.py"]
    assert wasm["has_getsource"]
