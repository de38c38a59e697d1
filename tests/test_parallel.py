"""Data-parallel training in one process: the shard schedule, flat vectors, and replicas
that sum their gradients end where a single trainer on the same global batches ends."""

import numpy as np
import pytest

from pycnn import SGD, Adam, Trainer
from pycnn.losses import softmax_cross_entropy
from pycnn.parallel import ShardSchedule
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


def replicas(shards, data, make_optimizer, **kwargs):
    """One trainer per shard, each holding only its shard, as the browser's workers do."""
    x, y, xt, yt = data
    out = []
    for k in range(shards):
        model = tiny_model()
        s = ShardSchedule(len(x), kwargs["batch_size"], shards)
        lo, hi = s.bounds[k], s.bounds[k + 1]
        out.append(Trainer(model, x[lo:hi].copy(), y[lo:hi].copy(), xt if k == 0 else None, yt if k == 0 else None,
                           optimizer=make_optimizer(model), shards=shards, shard=k, train_size=len(x), **kwargs))
    return out


def all_reduce_step(trainers):
    """What web/parallel.js does: sum the parts' gradients and stats, every replica applies the sum."""
    parts = [t.compute_gradients() for t in trainers]
    total = np.sum([t.model.flat_grads() for t in trainers], axis=0, dtype=np.float32)
    batch = {key: sum(p[key] for p in parts) for key in ("count", "loss", "correct")}
    events = []
    for t in trainers:
        t.model.set_flat_grads(total)
        events.append(t.apply_gradients(batch))
    return events


@pytest.mark.parametrize("shards, n, make_optimizer", [
    (2, 40, lambda m: SGD(m.params(), lr=0.05)),
    (3, 41, lambda m: SGD(m.params(), lr=0.05)),  # uneven shards, partial last batch
    (3, 41, lambda m: Adam(m.params(), lr=0.01)),
])
def test_replicas_end_where_one_trainer_on_the_same_global_batches_ends(shards, n, make_optimizer):
    data = tiny_data(n=n)
    kwargs = dict(batch_size=8, epochs=2, seed=4)
    model = tiny_model()
    single = Trainer(model, *data, optimizer=make_optimizer(model), shards=shards, **kwargs)
    group = replicas(shards, data, make_optimizer, **kwargs)
    single_events = []
    while not single.done:
        single_events += single.run()
    group_events = []
    while not group[0].done:
        if group[0].evaluating:  # only the first replica has the test set
            group_events += [t.run(max_steps=0) for t in group][0]
        else:
            group_events.append(all_reduce_step(group)[0])
    assert len(group_events) == len(single_events) == 2 * (single.steps_per_epoch + 1)
    for a, b in zip(single_events, group_events, strict=True):
        assert a["kind"] == b["kind"]
        assert a.get("loss") == pytest.approx(b.get("loss"), rel=1e-4)
        if a["kind"] == "step":
            assert (a["accuracy"], a["examples"]) == (b["accuracy"], b["examples"])
    for t in group[1:]:  # the replicas stay bit-identical
        np.testing.assert_array_equal(t.model.flat_params(), group[0].model.flat_params())
    np.testing.assert_allclose(group[0].model.flat_params(), model.flat_params(), rtol=1e-4, atol=1e-5)
    assert group_events[-1]["test_accuracy"] == single_events[-1]["test_accuracy"]


def test_a_replica_left_alone_goes_on_with_the_same_batches():
    data = tiny_data(n=40)
    kwargs = dict(batch_size=8, epochs=1, seed=1)
    model = tiny_model()
    single = Trainer(model, *data, optimizer=SGD(model.params(), lr=0.05), shards=2, **kwargs)
    single.run()
    group = replicas(2, data, lambda m: SGD(m.params(), lr=0.05), **kwargs)
    all_reduce_step(group)
    all_reduce_step(group)
    group[0].compute_gradients()  # the other replica dies before this step is applied
    group[0].go_solo(data[0], data[1])
    while not group[0].done:
        group[0].run()
    np.testing.assert_allclose(group[0].model.flat_params(), model.flat_params(), rtol=1e-5, atol=1e-6)


def test_an_epoch_driven_step_by_step_counts_the_time_spent_in_its_steps():
    """Replicas train through compute_gradients/apply_gradients, not run(): their epoch's
    "seconds" must still count those steps (it once counted only the test evaluation)."""
    import time

    group = replicas(2, tiny_data(n=400), lambda m: SGD(m.params(), lr=0.05), batch_size=8, epochs=1)
    in_steps = 0.0
    while not group[0].evaluating:
        tick = time.perf_counter()
        all_reduce_step(group)
        in_steps += time.perf_counter() - tick
    epoch = [e for e in group[0].run() if e["kind"] == "epoch"][0]
    assert epoch["seconds"] >= 0.4 * in_steps > 0  # its share of the steps' time, at least (two replicas here)


def test_a_shard_of_the_wrong_size_is_refused():
    x, y, _, _ = tiny_data(n=40)
    model = tiny_model()
    with pytest.raises(ValueError, match="shard 1 of 40 images over 2 shards holds 20 images, got 19"):
        Trainer(model, x[:19], y[:19], optimizer=SGD(model.params(), lr=0.1), batch_size=8,
                shards=2, shard=1, train_size=40)


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
