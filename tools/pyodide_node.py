"""Run Python code inside Pyodide (WebAssembly) under Node and get its result back.

    from tools.pyodide_node import run_in_pyodide
    run_in_pyodide("import numpy as np\\nfloat(np.ones(3).sum())")   # -> 3.0

The code runs in a fresh Pyodide with the Pyodide numpy wheel and pycnn
installed; the value of its last expression comes back through JSON (numpy
values become numbers and lists). Anything it prints is passed to our stderr.
The numpy wheel and the pycnn wheel are made by build_site.py's
``fetch_numpy_wheel`` and ``build_pycnn_wheel`` (cached in ``.cache/``).

From the shell: ``python tools/pyodide_node.py [--source] (-c CODE | FILE)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "pyodide_node.mjs"


class PyodideRunError(RuntimeError):
    """Node or the Python code inside Pyodide failed; the message holds node's stderr."""


def _build_site():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import build_site

    return build_site


def numpy_wheel(cache: Path | None = None) -> Path:
    """The sha256-checked Pyodide numpy wheel (downloaded once into .cache/)."""
    build_site = _build_site()
    with contextlib.redirect_stdout(sys.stderr):  # keep our stdout for results
        return build_site.fetch_numpy_wheel(ROOT, cache or ROOT / ".cache")


def pycnn_wheel(cache: Path | None = None) -> Path:
    """The pure-Python pycnn wheel built from this checkout (rebuilt when pycnn/ changes)."""
    build_site = _build_site()
    with contextlib.redirect_stdout(sys.stderr):
        return build_site.build_pycnn_wheel(ROOT, cache or ROOT / ".cache")


def run_in_pyodide(code: str, timeout: float = 300, *, source: bool = False,
                   mounts: dict[str, str] | None = None) -> object:
    """Run ``code`` in Pyodide under Node; return its last expression's value (via JSON).

    source: install pycnn by copying pycnn/*.py instead of building and
        installing the wheel (quicker while editing; the wheel is what ships).
    mounts: host folder -> folder inside Pyodide, made readable from the code.
    Raises PyodideRunError with node's stderr when node or the code fails or
    when it runs longer than ``timeout`` seconds.
    """
    node = shutil.which("node")
    if node is None:
        raise PyodideRunError("node was not found on PATH: install Node 20 to run pycnn in Pyodide")
    if not (ROOT / "node_modules" / "pyodide" / "pyodide.mjs").is_file():
        raise PyodideRunError(f"{ROOT / 'node_modules' / 'pyodide'} is missing: run `npm ci` in {ROOT}")
    pycnn = ROOT / "pycnn" if source else pycnn_wheel()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "snippet.py"
        script.write_text(code)
        cmd = [node, str(SCRIPT), "--numpy", str(numpy_wheel()), "--pycnn", str(pycnn), "--file", str(script)]
        for host, target in (mounts or {}).items():
            cmd += ["--mount", f"{Path(host).resolve()}:{target}"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            raise PyodideRunError(f"Pyodide run timed out after {timeout:g} s\n{_tail(stderr)}") from None
    if result.returncode != 0:
        raise PyodideRunError(f"Pyodide run failed (node exit code {result.returncode}):\n{_tail(result.stderr)}")
    if result.stderr:
        sys.stderr.write(result.stderr)
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise PyodideRunError(f"Pyodide run printed no result\n{_tail(result.stderr)}")
    return json.loads(lines[-1])


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Python inside Pyodide under Node; print the result as JSON.")
    parser.add_argument("file", nargs="?", help="a Python script to run")
    parser.add_argument("-c", "--code", help="Python source to run instead of a file")
    parser.add_argument("--source", action="store_true", help="copy pycnn/*.py instead of installing the wheel")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if (args.file is None) == (args.code is None):
        parser.error("give a FILE or -c CODE (one of them)")
    code = args.code if args.code is not None else Path(args.file).read_text()
    try:
        print(json.dumps(run_in_pyodide(code, args.timeout, source=args.source)))
    except PyodideRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
