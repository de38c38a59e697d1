"""im2col against a loop over patches, and col2im as its exact adjoint."""

import ast
import inspect

import numpy as np
import pytest

from pycnn import im2col as im2col_module
from pycnn.im2col import col2im, im2col, output_size

# (N, H, W, C, KH, KW, stride, padding): square and non-square kernels, stride 1
# and 2, padding, overlapping windows and a stride that leaves rows unused.
SHAPES = [
    (1, 4, 4, 1, 2, 2, 2, 0),
    (2, 5, 5, 3, 3, 3, 1, 0),
    (2, 5, 6, 2, 3, 3, 1, 1),
    (1, 7, 7, 2, 3, 2, 2, 0),
    (3, 6, 5, 1, 2, 3, 2, 1),
    (2, 6, 6, 2, 3, 3, 2, 0),  # (6 - 3) // 2 + 1 = 2: the last row and column are never read
    (1, 5, 5, 1, 1, 1, 1, 0),
    (1, 4, 4, 2, 4, 4, 1, 2),
]


def patches_naive(x, kh, kw, stride, padding):
    """Row (n, i, j) is the flattened (KH, KW, C) patch at (i*stride, j*stride) of the padded image."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    rows = []
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                rows.append(xp[b, i * stride : i * stride + kh, j * stride : j * stride + kw, :].ravel())
    return np.array(rows)


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    (28, 7, 1, 1, 24), (28, 5, 1, 2, 28), (28, 2, 2, 0, 14), (7, 3, 2, 0, 3),
    (6, 3, 2, 0, 2), (5, 5, 1, 0, 1), (4, 1, 3, 0, 2),
])
def test_output_size(size, kernel, stride, padding, expected):
    assert output_size(size, kernel, stride, padding) == expected


@pytest.mark.parametrize("size, kernel, stride, padding, message", [
    (28, 40, 1, 1, "a kernel of 40 does not fit an input of 28 with padding 1"),
    (3, 4, 1, 0, "does not fit"),
    (28, 0, 1, 0, "must be >= 1"),
    (28, 3, 0, 0, "must be >= 1"),
    (28, 3, 1, -1, "padding (-1) >= 0"),
])
def test_output_size_rejects(size, kernel, stride, padding, message):
    with pytest.raises(ValueError) as info:
        output_size(size, kernel, stride, padding)
    assert message in str(info.value)


@pytest.mark.parametrize("n, h, w, c, kh, kw, stride, padding", SHAPES)
def test_im2col_matches_loop(n, h, w, c, kh, kw, stride, padding):
    x = np.random.default_rng(0).standard_normal((n, h, w, c))
    cols = im2col(x, kh, kw, stride, padding)
    expected = patches_naive(x, kh, kw, stride, padding)
    assert cols.shape == expected.shape
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("n, h, w, c, kh, kw, stride, padding", SHAPES)
def test_im2col_batch_last_orders_patches_position_by_position(n, h, w, c, kh, kw, stride, padding):
    x = np.random.default_rng(0).standard_normal((n, h, w, c))
    cols = im2col(x, kh, kw, stride, padding, ones=True, batch_last=True)
    naive = patches_naive(x, kh, kw, stride, padding)  # rows (n, i, j)
    expected = naive.reshape(n, -1, naive.shape[1]).transpose(1, 0, 2).reshape(naive.shape)  # (i, j, n)
    np.testing.assert_array_equal(cols[:, :-1], expected)
    np.testing.assert_array_equal(cols[:, -1], 1)


@pytest.mark.parametrize("n, h, w, c, kh, kw, stride, padding", SHAPES)
def test_col2im_is_adjoint_of_im2col(n, h, w, c, kh, kw, stride, padding):
    """<im2col(x), c> == <x, col2im(c)> for random x and c."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, h, w, c))
    cols = im2col(x, kh, kw, stride, padding)
    c_ = rng.standard_normal(cols.shape)
    back = col2im(c_, x.shape, kh, kw, stride, padding)
    assert back.shape == x.shape
    lhs = np.sum(cols * c_)
    rhs = np.sum(x * back)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_col2im_sums_overlaps():
    """With all-ones patches, each pixel gets the number of windows that cover it."""
    x_shape = (1, 4, 4, 1)
    cols = np.ones((9, 4))  # 2x2 kernel, stride 1: 3x3 windows
    counts = col2im(cols, x_shape, 2, 2, 1, 0)[0, :, :, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_col2im_with_padding_drops_the_border_and_skips_unused_pixels():
    x_shape = (1, 6, 6, 1)
    cols = np.ones((4, 9))  # 3x3 kernel, stride 2, no padding: 2x2 windows over rows/cols 0..4
    counts = col2im(cols, x_shape, 3, 3, 2, 0)[0, :, :, 0]
    assert counts[5].sum() == 0 and counts[:, 5].sum() == 0
    assert counts[2, 2] == 4 and counts[0, 0] == 1
    padded = col2im(np.ones((36, 9)), x_shape, 3, 3, 1, 1)[0, :, :, 0]
    assert padded.shape == (6, 6)
    assert padded[0, 0] == 4 and padded[2, 2] == 9


def test_dtypes_are_kept():
    x = np.ones((1, 4, 4, 1), dtype=np.float32)
    assert im2col(x, 2, 2).dtype == np.float32
    assert col2im(np.ones((9, 4), dtype=np.float32), x.shape, 2, 2).dtype == np.float32
    assert col2im(np.ones((9, 4)), x.shape, 2, 2).dtype == np.float64


def test_col2im_does_not_scatter_with_add_at():
    """np.add.at is slow and the rule is to sum kernel-offset slices instead."""
    tree = ast.parse(inspect.getsource(im2col_module))
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr == "at"
             and isinstance(node.value, ast.Attribute) and node.value.attr == "add"]
    assert not calls
