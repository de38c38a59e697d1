"""pycnn inside Pyodide (numpy 2.0.2, wasm, no BLAS) computes what it computes in CPython.

One program runs twice, natively and in Pyodide under Node (tools/pyodide_node.py,
with the pycnn wheel the site ships): from seed 0, each preset trains 5 steps
with each optimizer on a fixed batch of 32 MNIST images (batch size 16, so the
loop's shuffling runs too), and a drawn ring is preprocessed and classified.
The two runs must agree within float32 round-off: BLAS and Pyodide's plain
loops sum in different orders, so bit equality is not expected.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from conftest import MNIST_DIR, ROOT

pytestmark = pytest.mark.wasm

N_IMAGES = 32
RTOL, ATOL = 1e-4, 1e-5

# The program both runs execute. IMAGES and LABELS (base64 of uint8 bytes) are
# prepended as assignments; its last expression is the JSON-able result.
PROGRAM = r"""
import base64

import numpy as np

from pycnn import Trainer, build_model, make_optimizer
from pycnn.preprocess import preprocess_digit


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode()


def weights(model):
    return {p.name: b64(p.value) for p in model.params()}


x = np.frombuffer(base64.b64decode(IMAGES), np.uint8).reshape(-1, 28, 28)
y = np.frombuffer(base64.b64decode(LABELS), np.uint8).astype(np.int64)
result = {"numpy": np.__version__}
for preset in ("seed", "lenet"):
    result[f"{preset} init"] = {"losses": [], "weights": weights(build_model(preset, seed=0))}
    for name, lr in (("sgd", 0.1), ("momentum", 0.01), ("adam", 0.001)):
        model = build_model(preset, seed=0)
        trainer = Trainer(model, x, y, optimizer=make_optimizer(name, model.params(), lr),
                          batch_size=16, epochs=3, seed=0)
        events = trainer.run(max_steps=5)
        losses = [e["loss"] for e in events if e["kind"] == "step"]
        result[f"{preset} {name}"] = {"losses": losses, "weights": weights(model)}

rows, cols = np.mgrid[0:280, 0:280]
ring = np.abs(np.hypot((rows - 140) / 1.4, cols - 140) - 70) < 12
digit = preprocess_digit((ring * 255).astype(np.uint8))
proba = build_model("lenet", seed=0).predict_proba(digit[None])
result["drawn ring"] = {"losses": [], "weights": {"preprocessed": b64(digit), "proba": b64(proba)}}
result
"""


@pytest.fixture(scope="module")
def program() -> str:
    """PROGRAM with the first N_IMAGES MNIST training images and labels filled in."""
    images, labels = MNIST_DIR / "train-images-idx3-ubyte", MNIST_DIR / "train-labels-idx1-ubyte"
    if not (images.is_file() and labels.is_file()):
        pytest.fail(f"MNIST files not found in {MNIST_DIR}: run `npm ci` in {ROOT}", pytrace=False)
    with open(images, "rb") as f:
        image_bytes = f.read(16 + N_IMAGES * 28 * 28)[16:]  # IDX header: 16 bytes
    with open(labels, "rb") as f:
        label_bytes = f.read(8 + N_IMAGES)[8:]  # IDX header: 8 bytes
    images_b64, labels_b64 = base64.b64encode(image_bytes).decode(), base64.b64encode(label_bytes).decode()
    return f"IMAGES = {images_b64!r}\nLABELS = {labels_b64!r}\n{PROGRAM}"


@pytest.fixture(scope="module")
def runs(program) -> tuple[dict, dict]:
    """(native result, Pyodide result) of the same program."""
    from tools.pyodide_node import run_in_pyodide

    namespace: dict = {"__name__": "parity"}
    exec(compile(program, "<parity program>", "exec"), namespace)  # noqa: S102  (our own program, run as Pyodide runs it)
    return namespace["result"], run_in_pyodide(program)


def decode(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), np.float32)


def test_pyodide_runs_its_own_numpy(runs):
    native, wasm = runs
    assert wasm["numpy"] == "2.0.2"
    assert set(native) == set(wasm)


@pytest.mark.parametrize("run", ["seed init", "seed sgd", "seed momentum", "seed adam",
                                 "lenet init", "lenet sgd", "lenet momentum", "lenet adam", "drawn ring"])
def test_losses_and_weights_match_cpython(runs, run):
    native, wasm = runs[0][run], runs[1][run]
    assert len(wasm["losses"]) == len(native["losses"])
    np.testing.assert_allclose(wasm["losses"], native["losses"], rtol=RTOL, atol=ATOL, err_msg=f"{run}: losses")
    assert wasm["weights"].keys() == native["weights"].keys()
    worst = 0.0
    for name in native["weights"]:
        a, b = decode(wasm["weights"][name]), decode(native["weights"][name])
        assert a.shape == b.shape, f"{run}: {name} has {a.size} values in Pyodide, {b.size} natively"
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{run}: {name}")
        worst = max(worst, float(np.max(np.abs(a - b))))
    losses = np.abs(np.subtract(wasm["losses"], native["losses"]))
    print(f"{run}: max |loss diff| {losses.max(initial=0):.3g}, max |weight diff| {worst:.3g}")
