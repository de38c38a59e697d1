"""pycnn.settings: the page's training settings, filled in, typed and checked with messages fit to show."""

import pytest

from pycnn.errors import ConfigError
from pycnn.settings import DEFAULTS, build, check_speed, defaults, validate_config

N_TRAIN = 2000



def test_validate_config_fills_defaults():
    config = validate_config({}, train_available=N_TRAIN)
    assert config == {"preset": "lenet", "optimizer": "adam", "lr": 0.001, "momentum": 0.9, "batch_size": 64,
                      "epochs": 1, "train_size": N_TRAIN, "seed": 0, "shards": 1}
    seed = validate_config({"preset": "seed", "lr": 0.01, "batch_size": 32.0})
    assert seed["batch_size"] == 32 and isinstance(seed["batch_size"], int)
    assert (seed["n_filter"], seed["filter_size"], seed["stride"], seed["padding"]) == (32, 7, 1, 1)


@pytest.mark.parametrize("config, message", [
    ({"lr": 1e9}, r"learning rate must be between 1e-06 and 1, got 1e\+09"),
    ({"lr": -0.1}, r"learning rate must be a positive finite number, got -0\.1"),
    ({"lr": float("nan")}, r"learning rate must be a positive finite number, got nan"),
    ({"lr": "fast"}, r"learning rate must be a positive finite number, got 'fast'"),
    ({"batch_size": 0}, r"batch size must be a whole number >= 1, got 0"),
    ({"batch_size": 10**6}, r"batch size must be between 1 and 512"),
    ({"batch_size": 2.5}, r"batch size must be a whole number"),
    ({"epochs": 0}, r"epochs must be a whole number >= 1, got 0"),
    ({"epochs": 50}, r"epochs must be between 1 and 20"),
    ({"epochs": True}, r"epochs must be a whole number"),
    ({"train_size": 10}, r"training-set size must be between 100 and 60000"),
    ({"train_size": 0}, r"the training-set size \(--limit\) must be a whole number >= 1, got 0"),
    ({"preset": "vgg"}, r"preset must be 'seed' or 'lenet'"),
    ({"optimizer": "rmsprop"}, r"optimizer must be one of sgd, momentum, adam"),
    ({"learning_rate": 0.1}, r"unknown training setting 'learning_rate'"),
    ({"preset": "seed", "n_filter": 0}, r"number of filters must be a whole number >= 1, got 0"),
    ({"preset": "seed", "n_filter": 65}, r"number of filters must be between 1 and 64"),
    ({"preset": "seed", "filter_size": 31},
     r"a filter 31 pixels in height is larger than the padded image "
     r"\(28 \+ 2\*1 = 30\); use a filter of at most 30 or padding of at least 2"),
    ({"preset": "seed", "filter_size": 29, "padding": 1}, r"filter size must be between 1 and 28"),
    ({"preset": "seed", "filter_size": 3, "padding": 3}, r"padding must be between 0 and 2"),
    ({"preset": "seed", "stride": 0}, r"stride must be a whole number >= 1, got 0"),
    ({"preset": "seed", "stride": 2}, r"stride 2 does not tile the image's height: \(28 \+ 2\*1 - 7\) / 2 \+ 1 = "
                                      r"12\.5 is not a whole number of positions; with padding 1 use stride 1 or 23, "
                                      r"or with stride 2 and padding 1 use a filter of 6 or 8"),
    ({"shards": 0}, r"number of workers must be between 1 and 16"),
    ({"batch_size": 4, "shards": 5}, r"number of workers must be between 1 and 4"),
])
def test_validate_config_rejects_absurd_settings(config, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_a_training_set_size_above_the_data_uses_all_and_says_so():
    config = validate_config({"train_size": 70000}, train_available=N_TRAIN)
    assert config["train_size"] == N_TRAIN
    assert config["note"] == f"the data has only {N_TRAIN:,} training images; using all of them (asked for 70,000)"


def test_defaults_start_with_the_learning_rate_of_their_optimizer():
    d = defaults()
    assert d["settings"] == DEFAULTS and d["lr"][DEFAULTS["optimizer"]] == DEFAULTS["lr"]
    assert validate_config(d["settings"], N_TRAIN)["lr"] == DEFAULTS["lr"]


def test_check_speed_refuses_steps_too_slow_for_the_browser():
    model = build(validate_config({"preset": "seed"}))  # 1.09 million multiply-adds per image
    with pytest.raises(ConfigError, match=r"batch 512\).*use a batch size of at most 275"):
        check_speed(model, 512)
    assert check_speed(model, 256) > 1e6
