"""pycnn.ops: each operation gives its formula's result in both spellings (native and Pyodide's),
and in the layout the layers rely on."""

import numpy as np
import pytest

from pycnn import ops


@pytest.fixture(params=[False, True], ids=["native", "pyodide"])
def spelling(request, monkeypatch):
    monkeypatch.setattr(ops, "PYODIDE", request.param)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_patches_times_weights(spelling, rng):
    cols, w = rng.standard_normal((300, 10)).astype(np.float32), rng.standard_normal((10, 4)).astype(np.float32)
    out = ops.patches_times_weights(cols, w)
    np.testing.assert_allclose(out, cols.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    if spelling:  # the transposed rows lie an odd number of 64-byte lines apart
        assert out.T.strides[0] % 64 == 0 and (out.T.strides[0] // 64) % 2 == 1


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (1, 2, 0, 3)])
def test_gradient_rows_and_the_products_that_read_them(spelling, rng, order):
    dout = rng.standard_normal((3, 4, 5, 6))
    dz = ops.gradient_rows(dout, order)
    np.testing.assert_array_equal(dz, dout.transpose(order).reshape(-1, 6))
    if spelling:
        assert dz.T.flags.c_contiguous  # the (F, M) rows the einsums walk
    cols, w = rng.standard_normal((60, 7)), rng.standard_normal((7, 6))
    np.testing.assert_allclose(ops.patches_t_times(cols, dz), cols.T @ dz, rtol=1e-12)
    dcols = ops.rows_times_weights_t(dz, w)
    np.testing.assert_allclose(dcols, dz @ w.T, rtol=1e-12)
    assert dcols.flags.f_contiguous  # column-major, as col2im reads it


def test_dense_products(spelling, rng):
    x, w, dout = rng.standard_normal((5, 8)), rng.standard_normal((8, 3)), rng.standard_normal((5, 3))
    out, w_t = ops.dense_product(x, w)
    np.testing.assert_allclose(out, x @ w, rtol=1e-12)
    assert (w_t is not None) == spelling
    grad = ops.dense_weight_gradient(x, dout)
    np.testing.assert_allclose(grad, x.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(ops.dense_input_gradient(dout, w, w_t), dout @ w.T, rtol=1e-12)


def test_elementwise(spelling, rng):
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    np.testing.assert_array_equal(ops.relu(x, x > 0), np.maximum(x, 0))
    np.testing.assert_array_equal(ops.masked(y, x > 0), np.where(x > 0, y, 0))
    np.testing.assert_array_equal(ops.maximum(x, y, y > x), np.maximum(x, y))
