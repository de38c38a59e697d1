"""Time pycnn training steps, per layer or whole, natively or inside Pyodide.

This file imports only numpy and pycnn: bench/run.py imports it natively and
sends its source into Pyodide under Node, so both sides run the same code.
Every function returns plain data (dicts of floats) that JSON can carry.

Two clocks: wall time, and CPU time. Inside Pyodide under Node the CPU clock
is the node process's CPU time, which on a busy machine stays close to what
the wall clock would read on an idle one (Pyodide runs on one thread).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import pycnn
from pycnn.losses import softmax_cross_entropy

IN_PYODIDE = sys.platform == "emscripten"
BATCHES = 8  # a step cycles through this many batches of real images


def cpu_seconds() -> float:
    """CPU time of this process (of the node process inside Pyodide), in seconds."""
    if IN_PYODIDE:
        import js  # Pyodide's bridge to JavaScript; under Node `process` is there

        usage = js.process.cpuUsage()
        return (usage.user + usage.system) / 1e6
    return time.process_time()


class Step:
    """One SGD training step of a preset model on the next of a few fixed batches.

    ``images`` are uint8 (N, 28, 28) and ``labels`` int (N,), N >= BATCHES * batch.
    A step is what Trainer does: forward, softmax cross-entropy, backward, update.
    """

    def __init__(self, preset: str, images: np.ndarray, labels: np.ndarray, batch: int = 64,
                 lr: float = 0.01) -> None:
        self.model = pycnn.build_model(preset)
        self.optimizer = pycnn.SGD(self.model.params(), lr)
        self.batches = [(self.model.as_images(images[i * batch : (i + 1) * batch]),
                         labels[i * batch : (i + 1) * batch]) for i in range(BATCHES)]
        self.count = 0

    def __call__(self) -> None:
        x, y = self.batches[self.count % BATCHES]
        self.count += 1
        logits = self.model.forward(x)
        _, dlogits = softmax_cross_entropy(logits, y)
        self.model.backward(dlogits)
        self.optimizer.step()


def time_block(step, steps: int) -> tuple[float, float]:
    """(wall, cpu) milliseconds per call of ``step``, over ``steps`` calls."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        step()
    return ((time.perf_counter() - wall) * 1e3 / steps, (cpu_seconds() - cpu) * 1e3 / steps)


def time_steps(preset: str, images: np.ndarray, labels: np.ndarray, batch: int = 64,
               steps: int = 10, repeats: int = 7) -> dict:
    """Median ms per training step over ``repeats`` blocks of ``steps`` steps (after a warm-up)."""
    step = Step(preset, images, labels, batch)
    time_block(step, 2)
    blocks = [time_block(step, steps) for _ in range(repeats)]
    return {"wall_ms": statistics.median(b[0] for b in blocks),
            "cpu_ms": statistics.median(b[1] for b in blocks)}


def profile(preset: str, images: np.ndarray, labels: np.ndarray, batch: int = 64,
            repeats: int = 15, clock=time.perf_counter) -> dict:
    """Median ms of each layer's forward and backward in one training step.

    Returns {"layers": [[name, type, forward ms, backward ms], ...], "loss": ms,
    "update": ms (the optimizer), "step": ms (the whole step, timed around all of it)}.
    """
    step = Step(preset, images, labels, batch)
    model, names = step.model, step.model.names
    forward = {n: [] for n in names}
    backward = {n: [] for n in names}
    loss_ms, update_ms, step_ms = [], [], []
    for r in range(repeats + 2):  # the first two are a warm-up
        x, y = step.batches[r % BATCHES]
        begin = clock()
        for name, layer in zip(names, model.layers, strict=True):
            t = clock()
            x = layer.forward(x)
            forward[name].append(clock() - t)
        t = clock()
        _, d = softmax_cross_entropy(x, y)
        loss_ms.append(clock() - t)
        for name, layer in zip(reversed(names), reversed(model.layers), strict=True):
            t = clock()
            d = layer.backward(d)
            backward[name].append(clock() - t)
        t = clock()
        step.optimizer.step()
        update_ms.append(clock() - t)
        step_ms.append(clock() - begin)

    def ms(samples: list[float]) -> float:
        return round(statistics.median(samples[2:]) * 1e3, 2)

    return {"layers": [[n, type(layer).__name__, ms(forward[n]), ms(backward[n])]
                       for n, layer in zip(names, model.layers, strict=True)],
            "loss": ms(loss_ms), "update": ms(update_ms), "step": ms(step_ms)}


def time_to_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                     config: dict, target: float = 0.977, slice_seconds: float = 0.2) -> dict:
    """Train as the page does (pycnn.web, in slices) until an epoch's test accuracy reaches ``target``.

    Returns {"seconds": wall time inside train_slice, "cpu_seconds": CPU time,
    "epochs": epochs run, "test_accuracy": the last epoch's, "reached": bool,
    "history": [test accuracy after each epoch]}. Stops at the end of
    ``config["epochs"]`` epochs if the target is not reached.
    """
    from pycnn import web  # the browser's API, so this measures what the page runs

    web.reset()
    web.set_dataset(x_train.tobytes(), y_train.astype(np.uint8).tobytes(), x_test.tobytes(),
                    y_test.astype(np.uint8).tobytes(), x_train.shape, x_test.shape)
    web.start_training(config)
    wall, cpu = time.perf_counter(), cpu_seconds()
    history = []
    while True:
        reply = web.train_slice(slice_seconds)
        history += [e["test_accuracy"] for e in reply["events"] if e["kind"] == "epoch"]
        if reply["done"] or (history and history[-1] >= target):
            break
    if not reply["done"]:
        web.request_stop()
        web.train_slice()  # ends the stopped run
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": cpu_seconds() - cpu,
            "epochs": len(history), "test_accuracy": history[-1] if history else None,
            "reached": bool(history) and history[-1] >= target, "history": history}
