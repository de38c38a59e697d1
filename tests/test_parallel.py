"""The batch schedule of data-parallel training (pycnn.parallel), flat parameter vectors, and why
weighted parts of a batch sum to its gradient. The replicas themselves: tests/test_replica.py."""

import numpy as np
import pytest

from pycnn import SGD, Trainer
from pycnn.losses import softmax_cross_entropy
from pycnn.parallel import ShardSchedule, ShardView
from test_train import tiny_data, tiny_model, weights

# ---------------------------------------------------------------- the schedule


@pytest.mark.parametrize("n, batch, shards", [(40, 8, 1), (40, 8, 2), (41, 8, 3), (100, 7, 4), (5, 64, 5)])
def test_every_epoch_visits_each_image_once_in_full_batches(n, batch, shards):
    s = ShardSchedule(n, batch, shards, seed=3)
    assert s.bounds[0] == 0 and s.bounds[-1] == n and sum(s.local_sizes) == batch
    for _ in range(2):
        s.start_epoch()
        batches = [s.batch(j) for j in range(s.steps_per_epoch)]
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))
        assert [len(b) for b in batches[:-1]] == [batch] * (len(batches) - 1)
        assert 1 <= len(batches[-1]) <= batch
        assert [s.batch_len(j) for j in range(s.steps_per_epoch)] == [len(b) for b in batches]


def test_a_global_batch_is_each_shards_local_batch_in_turn():
    s = ShardSchedule(41, 8, 3, seed=0)
    s.start_epoch()
    for j in range(s.steps_per_epoch):
        parts = [s.local_batch(j, k) for k in range(3)]
        for k, part in enumerate(parts):
            assert np.all((0 <= part) & (part < s.shard_size(k)))
        np.testing.assert_array_equal(s.batch(j), np.concatenate([s.bounds[k] + p for k, p in enumerate(parts)]))


def test_one_shard_is_the_classic_schedule():
    s = ShardSchedule(50, 8, 1, seed=5)
    rng = np.random.default_rng(5)
    for _ in range(2):
        s.start_epoch()
        order = rng.permutation(50)
        assert s.steps_per_epoch == 7
        for j in range(7):
            np.testing.assert_array_equal(s.batch(j), order[8 * j : 8 * j + 8])


def test_shards_follow_their_share_of_the_batch():
    s = ShardSchedule(60000, 64, 3)
    assert s.local_sizes == [21, 21, 22]
    assert [s.shard_size(k) for k in range(3)] == [19687, 19688, 20625]
    assert s.steps_per_epoch == 938  # as for one shard: no shard runs far behind


def test_uneven_shards_run_out_at_the_end():
    s = ShardSchedule(10, 4, 3)  # local batches 1, 1, 2 over shards of 2, 3, 5 images
    s.start_epoch()
    assert s.steps_per_epoch == 3
    assert [len(s.local_batch(2, k)) for k in range(3)] == [0, 1, 1]


@pytest.mark.parametrize("args, message", [
    ((10, 4, 5), "cannot be split over 5 shards"),
    ((3, 8, 4), "3 training images cannot be split"),
    ((10, 0, 1), "batch size must be a whole number"),
    ((10, 4, 1.5), "shards must be a whole number"),
])
def test_schedule_rejects_impossible_splits(args, message):
    with pytest.raises(ValueError, match=message):
        ShardSchedule(*args)


# ---------------------------------------------------------------- flat vectors


def test_flat_params_and_grads_round_trip():
    model = tiny_model()
    flat = model.flat_params()
    assert flat.dtype == np.float32 and flat.shape == (model.num_params,)
    model.set_flat_params(flat * 2)
    np.testing.assert_array_equal(model.flat_params(), flat * 2)
    grads = np.arange(model.num_params, dtype=np.float32)
    model.set_flat_grads(grads)
    np.testing.assert_array_equal(model.flat_grads(), grads)
    assert [p.grad.shape for p in model.params()] == [p.value.shape for p in model.params()]


@pytest.mark.parametrize("flat", [np.zeros(3, np.float32), np.zeros(10**6, np.float32), np.zeros(1120, np.float64)])
def test_flat_vectors_of_the_wrong_size_or_type_are_refused(flat):
    model = tiny_model()
    assert model.num_params == 1120
    with pytest.raises(ValueError, match="float32 vector of 1120 numbers"):
        model.set_flat_grads(flat)


# ---------------------------------------------------------------- gradients


def test_weighted_gradients_of_shards_sum_to_the_whole_batch_gradient():
    model = tiny_model()
    x, y, _, _ = tiny_data(n=23)
    images = model.as_images(x)

    def gradient(xs, ys):
        loss, dlogits = softmax_cross_entropy(model.forward(xs), ys)
        model.backward(dlogits)
        return loss, model.flat_grads().astype(np.float64)

    whole_loss, whole = gradient(images, y)
    parts = [(0, 5), (5, 17), (17, 23)]  # uneven shards
    summed = sum(gradient(images[lo:hi], y[lo:hi])[1] * (hi - lo) / 23 for lo, hi in parts)
    assert np.abs(summed - whole).max() <= 1e-5 * np.abs(whole).max()
    summed_loss = sum(gradient(images[lo:hi], y[lo:hi])[0] * (hi - lo) / 23 for lo, hi in parts)
    assert summed_loss == pytest.approx(whole_loss, rel=1e-5)


def test_a_shard_view_is_that_shards_part_of_each_global_batch():
    s = ShardSchedule(41, 8, 3, seed=2)
    view = ShardView(s, 1)
    assert (view.n, view.batch_size, view.steps_per_epoch) == (s.shard_size(1), 8, s.steps_per_epoch)
    view.start_epoch()  # draws every shard's order, as the whole schedule does
    for j in range(s.steps_per_epoch):
        np.testing.assert_array_equal(view.batch(j), s.local_batch(j, 1))
    with pytest.raises(ValueError, match="from 0 to 2"):
        ShardView(s, 3)


def test_a_trainer_on_a_sharded_schedule_trains_its_global_batches():
    """One process holding all the data reproduces a 3-worker run's batches."""
    x, y, _, _ = tiny_data(n=41)
    model = tiny_model()
    schedule = ShardSchedule(41, 8, 3, seed=4)
    trainer = Trainer(model, x, y, optimizer=SGD(model.params(), lr=0.05), schedule=schedule)
    reference = ShardSchedule(41, 8, 3, seed=4)
    reference.start_epoch()
    seen = [trainer.apply_gradients(trainer.compute_gradients())["examples"] for _ in range(3)]
    assert seen == np.cumsum([len(reference.batch(j)) for j in range(3)]).tolist()
    with pytest.raises(ValueError, match="schedule is for 41 training images, got 40"):
        Trainer(model, x[:40], y[:40], optimizer=SGD(model.params(), lr=0.05), schedule=schedule)


def test_split_steps_are_the_ordinary_step():
    data = tiny_data()
    a, b = tiny_model(), tiny_model()
    ta = Trainer(a, *data, optimizer=SGD(a.params(), lr=0.05), batch_size=8)
    tb = Trainer(b, *data, optimizer=SGD(b.params(), lr=0.05), batch_size=8)
    ta.run(max_steps=3)
    for _ in range(3):
        tb.apply_gradients(tb.compute_gradients())
    for wa, wb in zip(weights(a), weights(b), strict=True):
        np.testing.assert_array_equal(wa, wb)
