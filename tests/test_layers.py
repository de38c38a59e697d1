"""Layers: forward against naive loops, backward against float64 finite differences.

Every gradient check uses a random upstream gradient ``dout`` and the scalar
``sum(forward(x) * dout)``, whose gradient with respect to anything is what
``backward(dout)`` must return or assign.
"""

import numpy as np
import pytest

import pycnn.layers
import pycnn.ops
from pycnn.layers import Conv2D, Dense, Flatten, MaxPool2D, Param, ReLU, layer_from_config

H = 1e-6  # central-difference step; float64 keeps its error near 1e-10



# ops.PYODIDE picks `@` and np.maximum (native) or einsum and np.where (Pyodide): check both in CPython.
@pytest.fixture(autouse=True, params=[False, True], ids=["native", "pyodide"])
def spelling(request, monkeypatch):
    monkeypatch.setattr(pycnn.ops, "PYODIDE", request.param)
    return request.param


def rel_error(analytic, numeric):
    """Largest difference, relative to the largest entry of either array."""
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), 1e-12)
    return np.max(np.abs(analytic - numeric)) / scale


def numeric_grad(f, a):
    """Central differences of the scalar f() with respect to every entry of ``a`` (changed in place)."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        plus = f()
        flat[i] = old - H
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * H)
    return grad


def to_float64(layer):
    for p in layer.params():
        p.value = p.value.astype(np.float64)
    return layer


def check_gradients(layer, x, rng, tol=1e-7):
    """Compare backward's dx and every parameter gradient with finite differences."""
    out = layer.forward(x)
    assert out.dtype == np.float64, "layers must keep float64 inputs in float64"
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dout, dout_copy, err_msg="backward wrote into dout")
    grads = [p.grad.copy() for p in layer.params()]

    def f():
        return np.sum(layer.forward(x) * dout)

    assert dx.shape == x.shape
    assert rel_error(dx, numeric_grad(f, x)) < tol
    for p, g in zip(layer.params(), grads, strict=True):
        assert g.shape == p.value.shape
        assert rel_error(g, numeric_grad(f, p.value)) < tol, p.name


def conv_naive(x, W, b, stride, padding):
    """Cross-correlation with plain loops: x (N, H, W, C), W (KH, KW, C, F) -> (N, OH, OW, F)."""
    n, h, w, c = x.shape
    kh, kw, _, f = W.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    out = np.zeros((n, oh, ow, f))
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                patch = xp[s, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
                for k in range(f):
                    out[s, i, j, k] = np.sum(patch * W[:, :, :, k]) + b[k]
    return out


def conv_backward_naive(x, W, dout, stride, padding):
    """dx, dW, db of the convolution with plain loops."""
    kh, kw, _, f = W.shape
    p = padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    n, oh, ow, _ = dout.shape
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * stride, i * stride + kh)
                cols = slice(j * stride, j * stride + kw)
                for k in range(f):
                    dW[:, :, :, k] += xp[s, rows, cols, :] * dout[s, i, j, k]
                    dxp[s, rows, cols, :] += W[:, :, :, k] * dout[s, i, j, k]
    dx = dxp[:, p : p + x.shape[1], p : p + x.shape[2], :]
    return dx, dW, dout.sum(axis=(0, 1, 2))


def pool_naive(x, k, stride):
    n, h, w, c = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j, :] = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :].max(axis=(1, 2))
    return out


# (N, H, W, C, F, KH, KW, stride, padding)
CONV_CASES = [
    (2, 5, 5, 1, 2, 3, 3, 1, 0),
    (2, 5, 5, 2, 3, 3, 3, 1, 1),
    (1, 7, 6, 2, 2, 3, 2, 2, 0),   # non-square kernel, stride 2
    (2, 6, 7, 3, 2, 2, 3, 2, 1),   # non-square kernel, stride 2, padding
    (1, 6, 6, 2, 2, 3, 3, 2, 0),   # stride 2 leaves the last row and column unused
    (1, 8, 7, 1, 2, 4, 3, 3, 1),   # stride 3 that does not tile exactly, with padding
    (2, 4, 4, 3, 4, 1, 1, 1, 0),   # 1x1 kernel
    (1, 5, 5, 2, 1, 5, 5, 1, 2),   # kernel as large as the image, padded
]


def make_conv(c, f, kh, kw, stride, padding, seed=0):
    rng = np.random.default_rng(seed)
    layer = to_float64(Conv2D(c, f, kh, kw, stride, padding, rng=rng))
    layer.b.value = rng.standard_normal(f)  # non-zero bias so it is really checked
    return layer


# -- Conv2D -----------------------------------------------------------------

@pytest.mark.parametrize("n, h, w, c, f, kh, kw, stride, padding", CONV_CASES)
def test_conv_forward_matches_loops(n, h, w, c, f, kh, kw, stride, padding):
    layer = make_conv(c, f, kh, kw, stride, padding)
    x = np.random.default_rng(1).standard_normal((n, h, w, c))
    out = layer.forward(x)
    expected = conv_naive(x, layer.W.value, layer.b.value, stride, padding)
    assert out.shape == expected.shape == (n, *layer.output_shape((h, w, c)))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, h, w, c, f, kh, kw, stride, padding", CONV_CASES)
def test_conv_backward_matches_loops(n, h, w, c, f, kh, kw, stride, padding):
    layer = make_conv(c, f, kh, kw, stride, padding)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, h, w, c))
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)
    dx_ref, dW_ref, db_ref = conv_backward_naive(x, layer.W.value, dout, stride, padding)
    np.testing.assert_allclose(layer.W.grad, dW_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.b.grad, db_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, h, w, c, f, kh, kw, stride, padding", CONV_CASES)
def test_conv_gradients_match_finite_differences(n, h, w, c, f, kh, kw, stride, padding):
    rng = np.random.default_rng(3)
    layer = make_conv(c, f, kh, kw, stride, padding)
    check_gradients(layer, rng.standard_normal((n, h, w, c)), rng)


def test_conv_float32_stays_float32():
    layer = Conv2D(1, 4, 3, rng=np.random.default_rng(0))
    assert layer.W.value.dtype == layer.b.value.dtype == np.float32
    out = layer.forward(np.ones((2, 6, 6, 1), dtype=np.float32))
    assert out.dtype == np.float32 and out.shape == (2, 4, 4, 4)
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == layer.W.grad.dtype == layer.b.grad.dtype == np.float32


def test_first_layer_computes_no_input_gradient(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    full = Conv2D(2, 3, 3, stride=1, padding=1, rng=np.random.default_rng(5))
    first = Conv2D(2, 3, 3, stride=1, padding=1, rng=np.random.default_rng(5))
    dout = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    full.forward(x)
    assert full.backward(dout) is not None

    def no_col2im(*args, **kwargs):
        raise AssertionError("col2im was called for a layer that needs no input gradient")

    monkeypatch.setattr(pycnn.layers, "col2im", no_col2im)
    first.input_grad = False
    first.forward(x)
    assert first.backward(dout) is None
    np.testing.assert_array_equal(first.W.grad, full.W.grad)  # parameter gradients are still assigned
    np.testing.assert_array_equal(first.b.grad, full.b.grad)


def test_conv_he_initialisation():
    layer = Conv2D(8, 64, 5, 5, rng=np.random.default_rng(0))
    fan_in = 5 * 5 * 8
    assert layer.W.value.shape == (5, 5, 8, 64)
    assert abs(layer.W.value.std() / np.sqrt(2 / fan_in) - 1) < 0.05
    assert abs(layer.W.value.mean()) < 0.01
    np.testing.assert_array_equal(layer.b.value, 0)


def test_conv_rejects_wrong_channels_and_bad_settings():
    layer = Conv2D(3, 4, 3)
    with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
        layer.output_shape((8, 8, 1))
    with pytest.raises(ValueError, match="does not fit"):
        layer.output_shape((2, 8, 3))
    for kwargs, name in ((dict(kh=0), "kh"), (dict(stride=0), "stride"), (dict(padding=-1), "padding"),
                         (dict(out_ch=0), "out_ch"), (dict(kh=2.5), "kh")):
        args = dict(in_ch=1, out_ch=2, kh=3) | kwargs
        with pytest.raises(ValueError, match=f"Conv2D {name} must be an integer"):
            Conv2D(**args)


# -- ReLU -------------------------------------------------------------------

def test_relu_forward_and_backward():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    layer = ReLU()
    np.testing.assert_array_equal(layer.forward(x), [[0, 0, 0, 0.5, 3.0]])
    dout = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    np.testing.assert_array_equal(layer.backward(dout), [[0, 0, 0, 4.0, 5.0]])
    np.testing.assert_array_equal(dout, [[1.0, 2.0, 3.0, 4.0, 5.0]])


def test_relu_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    # keep every input at least 0.1 from the kink at 0
    x = rng.choice([-1.0, 1.0], size=(2, 4, 3, 2)) * (0.1 + rng.random((2, 4, 3, 2)))
    check_gradients(ReLU(), x, rng)


# -- MaxPool2D ----------------------------------------------------------------

def distinct_values(rng, shape):
    """A random arrangement of values 0.1 apart: no ties, no argmax flip under finite differences."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + rng.random() * 0.01


@pytest.mark.parametrize("k, stride, shape", [
    (2, 2, (2, 6, 6, 3)),
    (3, 2, (2, 7, 7, 2)),   # overlapping windows
    (3, 2, (1, 6, 8, 2)),   # overlapping, last row unused
    (2, 1, (1, 4, 5, 1)),
])
def test_maxpool_forward_and_gradient(k, stride, shape):
    rng = np.random.default_rng(5)
    x = distinct_values(rng, shape)
    layer = MaxPool2D(k, stride)
    np.testing.assert_array_equal(layer.forward(x), pool_naive(x, k, stride))
    check_gradients(layer, x, rng)


def test_maxpool_ties_send_the_gradient_to_the_first_maximum():
    # one 4x4 image, two channels, 2x2 windows
    x = np.zeros((1, 4, 4, 2))
    x[0, :2, :2, 0] = [[1, 5], [5, 2]]     # tie between (0,1) and (1,0): (0,1) comes first
    x[0, :2, 2:, 0] = [[3, 3], [3, 3]]     # all equal: (0,2)
    x[0, 2:, :2, 0] = [[0, 0], [7, 7]]     # tie in the bottom row: (3,0)
    x[0, 2:, 2:, 0] = [[-1, -2], [-3, -1]]  # negative tie: (2,2)
    x[0, :, :, 1] = 4.0                    # channel 1: every window is a four-way tie
    layer = MaxPool2D(2)
    out = layer.forward(x)
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 3], [7, -1]])
    np.testing.assert_array_equal(out[0, :, :, 1], 4.0)
    dout = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    dx = layer.backward(dout)
    expected0 = np.zeros((4, 4))
    expected0[0, 1], expected0[0, 2], expected0[3, 0], expected0[2, 2] = dout[0, 0, 0, 0], dout[0, 0, 1, 0], \
        dout[0, 1, 0, 0], dout[0, 1, 1, 0]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected0)
    expected1 = np.zeros((4, 4))
    expected1[::2, ::2] = dout[0, :, :, 1]
    np.testing.assert_array_equal(dx[0, :, :, 1], expected1)
    # each window passes on its gradient exactly once
    assert dx.sum() == dout.sum()


def test_maxpool_overlapping_ties_are_counted_once_per_window():
    x = np.ones((1, 5, 5, 1))
    layer = MaxPool2D(3, 2)
    np.testing.assert_array_equal(layer.forward(x), 1.0)
    dx = layer.backward(np.ones((1, 2, 2, 1)))[0, :, :, 0]
    expected = np.zeros((5, 5))
    expected[[0, 0, 2, 2], [0, 2, 0, 2]] = 1  # the top-left corner of each window
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_shapes_and_settings():
    assert MaxPool2D(2).output_shape((28, 28, 8)) == (14, 14, 8)
    assert MaxPool2D(3, 2).output_shape((7, 7, 2)) == (3, 3, 2)
    assert MaxPool2D(2).output_shape((5, 5, 1)) == (2, 2, 1)
    with pytest.raises(ValueError, match="does not fit"):
        MaxPool2D(3).output_shape((2, 2, 1))
    with pytest.raises(ValueError, match="MaxPool2D k and stride must be integers >= 1"):
        MaxPool2D(0)
    with pytest.raises(ValueError, match="MaxPool2D k and stride must be integers >= 1"):
        MaxPool2D(2, 0)


def test_maxpool_keeps_float32():
    out = MaxPool2D(2).forward(np.ones((1, 4, 4, 1), dtype=np.float32))
    assert out.dtype == np.float32


# -- Flatten and Dense ----------------------------------------------------------

def test_flatten_forward_and_gradient():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    out = layer.forward(x)
    assert out.shape == (2, 60)
    np.testing.assert_array_equal(out[1], x[1].ravel())
    assert layer.output_shape((3, 4, 5)) == (60,)
    check_gradients(layer, x, rng)


def test_dense_forward_and_gradient():
    rng = np.random.default_rng(7)
    layer = to_float64(Dense(6, 4, rng=rng))
    layer.b.value = rng.standard_normal(4)
    x = rng.standard_normal((3, 6))
    expected = np.array([[sum(x[n, d] * layer.W.value[d, m] for d in range(6)) + layer.b.value[m]
                          for m in range(4)] for n in range(3)])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    check_gradients(layer, x, rng)


def test_dense_shapes_and_settings():
    layer = Dense(10, 3, rng=np.random.default_rng(0))
    assert layer.W.value.shape == (10, 3) and layer.b.value.shape == (3,)
    assert layer.output_shape((10,)) == (3,)
    with pytest.raises(ValueError, match="Dense expects 10 input features"):
        layer.output_shape((12,))
    with pytest.raises(ValueError, match="Dense out_features must be an integer >= 1"):
        Dense(10, 0)


def test_stateless_layers_skip_input_gradient_when_asked():
    for layer, x in ((ReLU(), np.ones((1, 4))), (Flatten(), np.ones((1, 2, 2, 1))),
                     (MaxPool2D(2), np.ones((1, 2, 2, 1)))):
        layer.input_grad = False
        out = layer.forward(x)
        assert layer.backward(np.ones_like(out)) is None


def test_dense_first_layer_still_assigns_gradients():
    layer = Dense(3, 2, rng=np.random.default_rng(0))
    layer.input_grad = False
    layer.forward(np.ones((4, 3), dtype=np.float32))
    assert layer.backward(np.ones((4, 2), dtype=np.float32)) is None
    np.testing.assert_array_equal(layer.W.grad, 4.0)
    np.testing.assert_array_equal(layer.b.grad, 4.0)


# -- Param and configs ----------------------------------------------------------

def test_param_is_float32_with_zero_grad():
    p = Param(np.arange(6).reshape(2, 3), "W")
    assert p.value.dtype == np.float32 and p.grad.shape == (2, 3) and not p.grad.any()
    assert "W" in repr(p)


@pytest.mark.parametrize("layer", [
    Conv2D(2, 3, 3, 2, stride=2, padding=1), ReLU(), MaxPool2D(3, 2), Flatten(), Dense(5, 4),
])
def test_layer_config_round_trip(layer):
    rebuilt = layer_from_config(layer.config())
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert [p.value.shape for p in rebuilt.params()] == [p.value.shape for p in layer.params()]


def test_layer_from_bad_config():
    with pytest.raises(ValueError, match="unknown layer type 'Dropout'"):
        layer_from_config({"type": "Dropout"})
    with pytest.raises(ValueError, match="bad settings for Dense"):
        layer_from_config({"type": "Dense", "in_features": 3})
