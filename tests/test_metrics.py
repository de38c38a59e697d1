import numpy as np
import pytest

from pycnn.metrics import accuracy, confusion_matrix, format_confusion_matrix, per_class_accuracy

LABELS = np.array([0, 0, 1, 1, 1, 2])
PRED = np.array([0, 1, 1, 1, 0, 1])


def test_accuracy():
    assert accuracy(PRED, LABELS) == pytest.approx(3 / 6)
    assert accuracy([2, 2], [2, 2]) == 1.0
    assert isinstance(accuracy(PRED, LABELS), float)


def test_confusion_matrix():
    cm = confusion_matrix(LABELS, PRED, num_classes=3)
    # rows: true 0 -> predicted 0 once, 1 once; true 1 -> 0 once, 1 twice; true 2 -> 1 once
    np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 1, 0]])
    assert cm.dtype == np.int64
    assert confusion_matrix(LABELS, PRED).shape == (10, 10)
    assert confusion_matrix(LABELS, PRED).sum() == 6


def test_per_class_accuracy_with_empty_class():
    cm = confusion_matrix(LABELS, PRED, num_classes=4)  # class 3 never occurs
    np.testing.assert_allclose(per_class_accuracy(cm), [1 / 2, 2 / 3, 0.0, np.nan])


def test_format_confusion_matrix():
    cm = confusion_matrix(LABELS, PRED, num_classes=4)
    lines = format_confusion_matrix(cm).splitlines()
    assert lines[0].split() == ["true\\pred", "0", "1", "2", "3", "|", "acc"]
    assert lines[2].split() == ["0", "1", "1", "0", "0", "|", "50.0%"]
    assert lines[3].split() == ["1", "1", "2", "0", "0", "|", "66.7%"]
    assert lines[4].split() == ["2", "0", "1", "0", "0", "|", "0.0%"]
    assert lines[5].split() == ["3", "0", "0", "0", "0", "|", "-"]
    assert len({len(line) for line in lines}) == 1  # columns line up


@pytest.mark.parametrize(
    "labels, pred, message",
    [
        ([0, 1], [0], "equal length"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([0, 1], [0.0, 1.0], "argmax"),
        ([0, 10], [0, 1], r"labels must lie in 0\.\.9"),
        ([0, 1], [-1, 1], r"pred must lie in 0\.\.9"),
    ],
)
def test_bad_input(labels, pred, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(labels, pred)


def test_accuracy_of_nothing():
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
