"""pycnn.evaluation: the test-set report, in one go and in slices."""

import numpy as np
import pytest

import pycnn
from pycnn.evaluation import Evaluator, evaluation_report
from test_insight import assert_plain


@pytest.fixture(scope="module")
def small():
    """A small seed model on 8x8 images and a synthetic data set of 3 classes."""
    model = pycnn.build_model("seed", n_filter=3, h_filter=3, w_filter=3, padding=1, num_class=3,
                              img_height=8, img_width=8, seed=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(230, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, size=230)
    return model, x, y


# -- evaluation ------------------------------------------------------------------

def test_evaluation_report(small):
    model, x, y = small
    report = evaluation_report(model, x, y, batch_size=64, cell_limit=4, gallery_size=10)
    proba = model.predict_proba(x)
    pred = proba.argmax(axis=1)
    acc, _ = pycnn.evaluate(model, x, y)
    assert report["accuracy"] == pytest.approx(acc)
    assert report["count"] == 230 and report["correct"] == int((pred == y).sum())
    assert report["mistakes"] == int((pred != y).sum())
    for t in range(3):
        assert report["class_counts"][t] == int((y == t).sum())
        assert report["per_class_accuracy"][t] == pytest.approx(((pred == t) & (y == t)).sum() / (y == t).sum())
        for p in range(3):
            members = np.flatnonzero((y == t) & (pred == p))
            assert report["confusion"][t][p] == len(members)
            assert report["cells"][t][p] == members[:4].tolist()
    assert report["cell_limit"] == 4

    gallery = report["gallery"]
    assert len(gallery) == min(10, report["mistakes"]) and len(gallery) > 0
    for g in gallery:
        i = g["index"]
        assert g["label"] == y[i] != g["predicted"] == pred[i]
        assert g["confidence"] == pytest.approx(proba[i].max())
    confidences = [g["confidence"] for g in gallery]
    assert confidences == sorted(confidences, reverse=True)
    wrong = np.flatnonzero(pred != y)  # nothing left out is more confident than the last shown
    shown = {g["index"] for g in gallery}
    assert all(proba[i].max() <= confidences[-1] + 1e-7 for i in wrong if i not in shown)
    assert_plain(report)


def test_evaluator_runs_in_chunks(small):
    model, x, y = small
    ev = Evaluator(model, x, y, batch_size=100)
    with pytest.raises(RuntimeError, match="not finished"):
        ev.result()
    assert ev.run(max_batches=1) == {"evaluated": 100, "total": 230, "done": False}
    assert ev.run(max_seconds=0) == {"evaluated": 200, "total": 230, "done": False}
    assert ev.run(max_batches=5) == {"evaluated": 230, "total": 230, "done": True}
    assert ev.run(max_batches=1)["evaluated"] == 230
    assert ev.result() == evaluation_report(model, x, y, batch_size=100)


def test_per_class_accuracy_of_an_absent_class(small):
    model, x, y = small
    keep = y != 2
    report = evaluation_report(model, x[keep], y[keep])
    assert report["per_class_accuracy"][2] is None and report["class_counts"][2] == 0
    with pytest.raises(ValueError, match="labels"):
        Evaluator(model, x, y[:5])
