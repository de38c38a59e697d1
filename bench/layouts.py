"""The same products and elementwise steps spelled several ways, timed natively and in Pyodide.

    python -m bench.layouts [--json]

These measurements chose the spellings in pycnn/layers.py and pycnn/im2col.py
(docs/PERFORMANCE.md quotes them). Shapes are the seed model's at batch 64:
patch matrix M x K = 36864 x 49, F = 32 filters, dense 18432 -> 10. Each case
reports the fastest of several runs; in Pyodide the clock is the node
process's CPU time (see bench/steps.py). This file imports only numpy and
pycnn, so the same source runs on both sides.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from pycnn.im2col import fold, unfold

N, H, KS, PAD, F = 64, 28, 7, 1, 32
OH = H + 2 * PAD - KS + 1
M, K, D, CLASSES = N * OH * OH, KS * KS, OH * OH * F, 10


def cases() -> dict:
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x = rng.random((N, H, H, 1), dtype=np.float32)
    cols_t = unfold(x, KS, KS, 1, PAD)  # (K, M), rows contiguous
    cols = np.ascontiguousarray(cols_t.T)  # (M, K), rows contiguous
    w = rand(K, F)
    w_t = np.ascontiguousarray(w.T)
    dz = rand(M, F)
    dz_t = np.ascontiguousarray(dz.T)
    out_t = rand(F, M)
    act = rand(N, OH, OH, F)
    mask = act > 0
    flat, dense_w, dlogits = rand(N, D), rand(D, CLASSES), rand(N, CLASSES)
    dense_w_t = np.ascontiguousarray(dense_w.T)
    xp = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    sn, sh, sw, sc = xp.strides
    windows = np.lib.stride_tricks.as_strided(xp, (N, OH, OH, KS, KS, 1), (sn, sh, sw, sh, sw, sc))
    x2 = rng.random((N, 14, 14, 16), dtype=np.float32)  # lenet's second convolution: C = 16
    cols2, cols2_last = unfold(x2, 5, 5), unfold(x2, 5, 5, batch_last=True)
    return {
        "patches: as_strided view copied to (M, K)": lambda: windows.reshape(M, K),
        "patches: unfold, 49 slice copies to (K, M)": lambda: unfold(x, KS, KS, 1, PAD),
        "patches, C=16: unfold, patches (n, i, j)": lambda: unfold(x2, 5, 5),
        "patches, C=16: unfold, patches (i, j, n)": lambda: unfold(x2, 5, 5, batch_last=True),
        "adjoint, C=16: fold, patches (n, i, j)": lambda: fold(cols2, x2.shape, 5, 5),
        "adjoint, C=16: fold, patches (i, j, n)": lambda: fold(cols2_last, x2.shape, 5, 5, batch_last=True),
        "conv forward: cols @ w, cols (M, K) row-major": lambda: cols @ w,
        "conv forward: cols_t.T @ w": lambda: cols_t.T @ w,
        "conv forward: einsum mk,fk->mf (cols, w_t)": lambda: np.einsum("mk,fk->mf", cols, w_t),
        "conv forward: einsum km,kf->fm (cols_t, w)": lambda: np.einsum("km,kf->fm", cols_t, w),
        "  then (F, M) -> (M, F) copy": lambda: np.ascontiguousarray(out_t.T),
        "conv weight grad: cols_t @ dz": lambda: cols_t @ dz,
        "conv weight grad: einsum mk,mf->kf (cols, dz)": lambda: np.einsum("mk,mf->kf", cols, dz),
        "conv weight grad: einsum km,fm->kf (cols_t, dz_t)": lambda: np.einsum("km,fm->kf", cols_t, dz_t),
        "  before it: dz (M, F) -> dz_t (F, M) copy": lambda: np.ascontiguousarray(dz.T),
        "conv bias grad: dz.sum(axis=0)": lambda: dz.sum(axis=0),
        "conv bias grad: dz_t.sum(axis=1)": lambda: dz_t.sum(axis=1),
        "conv bias add: out += b": lambda: np.add(dz, w[0], out=dz),
        "dense forward: flat @ W": lambda: flat @ dense_w,
        "dense forward: einsum nd,md->nm (flat, W_t)": lambda: np.einsum("nd,md->nm", flat, dense_w_t),
        "dense weight grad: flat.T @ dlogits": lambda: flat.T @ dlogits,
        "dense weight grad: einsum nm,nd->md (gives W_t)": lambda: np.einsum("nm,nd->md", dlogits, flat),
        "dense input grad: dlogits @ W.T": lambda: dlogits @ dense_w.T,
        "dense input grad: einsum nm,md->nd (W_t)": lambda: np.einsum("nm,md->nd", dlogits, dense_w_t),
        "relu forward: np.maximum(x, 0)": lambda: np.maximum(act, 0),
        "relu forward: np.where(mask, x, 0)": lambda: np.where(mask, act, 0),
        "relu mask: x > 0": lambda: act > 0,
        "relu backward: dout * mask": lambda: act * mask,
        "relu backward: np.where(mask, dout, 0)": lambda: np.where(mask, act, 0),
    }


def clock():
    if sys.platform == "emscripten":
        import js

        usage = js.process.cpuUsage()
        return (usage.user + usage.system) / 1e6
    return time.perf_counter()


def measure(repeats: int = 7) -> dict:
    """Fastest time in ms of every case, the cases taking turns."""
    todo = cases()
    best = {name: float("inf") for name in todo}
    for _ in range(repeats):
        for name, case in todo.items():
            start = clock()
            case()
            best[name] = min(best[name], clock() - start)
    return {name: round(seconds * 1e3, 2) for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m bench.layouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from tools.pyodide_node import run_in_pyodide

    wasm = run_in_pyodide(Path(__file__).read_text() + "\nmeasure()\n")
    native = measure(repeats=21)
    if args.json:
        print(json.dumps({"wasm_cpu_ms": wasm, "native_ms": native}, indent=1))
        return 0
    width = max(map(len, native))
    print(f"{'case':<{width}}  {'Pyodide':>8}  {'native':>8}   (ms, fastest run)")
    for name in native:
        print(f"{name:<{width}}  {wasm[name]:>8.2f}  {native[name]:>8.2f}")
    return 0


if __name__ == "__main__" and sys.platform != "emscripten":  # Pyodide runs this source only for measure()
    sys.exit(main())
