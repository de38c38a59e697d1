"""pycnn.replica: data-parallel workers, each a plain Trainer computing its shard's part of every step,
end bit-identical to each other and where one trainer stepping through the same global batches ends."""

import numpy as np
import pytest

from pycnn import SGD, Adam, Trainer
from pycnn.parallel import ShardSchedule
from pycnn.replica import Replica
from test_train import tiny_data, tiny_model


def replicas(shards, data, make_optimizer, batch_size=8, epochs=1, seed=0):
    """One replica per shard, each holding only its shard (the first also the test set), as the page's workers."""
    x, y, xt, yt = data
    out = []
    for k in range(shards):
        model = tiny_model()
        schedule = ShardSchedule(len(x), batch_size, shards, seed)
        lo, hi = schedule.bounds[k], schedule.bounds[k + 1]
        out.append(Replica(model, x[lo:hi].copy(), y[lo:hi].copy(), xt if k == 0 else None, yt if k == 0 else None,
                           optimizer=make_optimizer(model), schedule=schedule, shard=k, epochs=epochs))
    return out


def all_reduce_step(group):
    """What the workers do: sum the parts' gradients and counts in shard order, every replica applies the sum."""
    parts = [r.compute_gradients() for r in group]
    grads = [r.trainer.model.flat_grads() for r in group]
    total = grads[0].copy()
    for g in grads[1:]:
        total += g
    batch = {key: sum(p[key] for p in parts) for key in ("count", "loss", "correct")}
    events = []
    for r in group:
        r.trainer.model.set_flat_grads(total)
        events.append(r.apply_gradients(batch))
    return events


@pytest.mark.parametrize("shards, n, make_optimizer", [
    (2, 40, lambda m: SGD(m.params(), lr=0.05)),
    (3, 41, lambda m: SGD(m.params(), lr=0.05)),  # uneven shards, partial last batch
    (3, 41, lambda m: Adam(m.params(), lr=0.01)),
])
def test_replicas_end_where_one_trainer_on_the_same_global_batches_ends(shards, n, make_optimizer):
    data = tiny_data(n=n)
    model = tiny_model()
    single = Trainer(model, *data, optimizer=make_optimizer(model), schedule=ShardSchedule(n, 8, shards, 4), epochs=2)
    group = replicas(shards, data, make_optimizer, epochs=2, seed=4)
    single_events = []
    while not single.done:
        single_events += single.run()
    first = group[0].trainer
    group_events = []
    while not first.done:
        if first.evaluating:  # only the first replica has the test set; the others end the epoch at once
            group_events += [r.trainer.run(max_steps=0) for r in group][0]
        else:
            group_events.append(all_reduce_step(group)[0])
    assert len(group_events) == len(single_events) == 2 * (single.steps_per_epoch + 1)
    for a, b in zip(single_events, group_events, strict=True):
        assert a["kind"] == b["kind"]
        assert a.get("loss") == pytest.approx(b.get("loss"), rel=1e-4)
        if a["kind"] == "step":
            assert (a["accuracy"], a["examples"]) == (b["accuracy"], b["examples"])
    for r in group[1:]:  # the replicas stay bit-identical
        np.testing.assert_array_equal(r.trainer.model.flat_params(), first.model.flat_params())
    np.testing.assert_allclose(first.model.flat_params(), model.flat_params(), rtol=1e-4, atol=1e-5)
    assert group_events[-1]["test_accuracy"] == single_events[-1]["test_accuracy"]


def test_a_replica_left_alone_goes_on_with_the_same_batches():
    data = tiny_data(n=40)
    model = tiny_model()
    single = Trainer(model, *data, optimizer=SGD(model.params(), lr=0.05), schedule=ShardSchedule(40, 8, 2, 1))
    single.run()
    group = replicas(2, data, lambda m: SGD(m.params(), lr=0.05), seed=1)
    all_reduce_step(group)
    all_reduce_step(group)
    group[0].compute_gradients()  # the other replica dies before this step is applied
    group[0].go_solo(data[0], data[1])
    part = group[0].compute_gradients()  # the whole global batch now
    assert part["count"] == 8
    group[0].apply_gradients(part)
    while not group[0].trainer.done:
        group[0].trainer.run()
    np.testing.assert_allclose(group[0].trainer.model.flat_params(), model.flat_params(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="whole training set has 40 images, got 39"):
        group[1].go_solo(data[0][:39], data[1][:39])


def test_a_shard_that_runs_out_contributes_nothing():
    x, y, _, _ = tiny_data(n=10)
    group = replicas(3, (x, y, None, None), lambda m: SGD(m.params(), lr=0.05), batch_size=4)
    for _ in range(2):
        all_reduce_step(group)
    assert group[0].compute_gradients() == {"count": 0, "loss": 0.0, "correct": 0}
    assert not group[0].trainer.model.flat_grads().any()


def test_an_epoch_driven_step_by_step_counts_the_time_spent_in_its_steps():
    """Replicas train through compute_gradients/apply_gradients, not run(): their epoch's
    "seconds" must still count those steps (it once counted only the test evaluation)."""
    group = replicas(2, tiny_data(n=40), lambda m: SGD(m.params(), lr=0.05))
    while not group[0].trainer.evaluating:
        all_reduce_step(group)
    in_steps = group[0].trainer.train_seconds
    assert in_steps > 0 and group[0].trainer.test_seconds == 0
    epoch = [e for e in group[0].trainer.run() if e["kind"] == "epoch"][0]
    assert epoch["seconds"] >= in_steps


def test_a_shard_of_the_wrong_size_is_refused():
    x, y, _, _ = tiny_data(n=40)
    model = tiny_model()
    with pytest.raises(ValueError, match="shard 1 of 40 images over 2 shards holds 20 images, got 19"):
        Replica(model, x[:19], y[:19], optimizer=SGD(model.params(), lr=0.1),
                schedule=ShardSchedule(40, 8, 2), shard=1)
