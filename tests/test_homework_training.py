"""Training with the student's code (pycnn/homework/usecode.py, page.py): through pycnn.web as the worker calls it."""

import numpy as np
import pytest

import pycnn
from pycnn import web
from pycnn.homework import UserCodeError, file_text
from pycnn.homework.edit import replace_function
from pycnn.session import Session

N_TRAIN, N_TEST = 2000, 500
SEED = {"preset": "seed", "optimizer": "sgd", "lr": 0.1, "batch_size": 32, "epochs": 1, "train_size": 2000,
        "n_filter": 8, "filter_size": 5, "stride": 1, "padding": 0}
LEAKY = """
import numpy as np

from pycnn import layers


class ReLU(layers.ReLU):
    def forward(self, x, training=True):
        self.positive = x > 0
        return np.where(self.positive, x, 0.01 * x)

    def backward(self, dout):
        return np.where(self.positive, dout, 0.01 * dout)
"""


@pytest.fixture(autouse=True)
def data(mnist):
    x_train, y_train, x_test, y_test = mnist
    web.reset()
    web.set_dataset(x_train[:N_TRAIN].tobytes(), y_train[:N_TRAIN].astype(np.uint8).tobytes(),
                    x_test[:N_TEST].tobytes(), y_test[:N_TEST].astype(np.uint8).tobytes(),
                    [N_TRAIN, 28, 28], [N_TEST, 28, 28])
    web.load_pretrained(pycnn.build_model("lenet").to_bytes())
    yield
    web.reset()


def train_to_end() -> dict:
    reply = None
    for _ in range(1000):
        reply = web.train_slice(5, max_steps=20)
        if reply["done"]:
            return reply
    pytest.fail("the run did not end")


def test_the_solution_file_trains_the_seed_model_with_the_students_classes():
    start = web.start_training({**SEED, "code": file_text(solved=True)})
    assert start["code"]["edited"] == ["ReLU", "Dense", "Conv2D", "im2col", "softmax_cross_entropy", "SGD"]
    assert start["code"]["step_ms"] > 0 and start["code"]["pycnn_step_ms"] > 0
    assert "with your code (ReLU, Dense, Conv2D" in start["code"]["summary"]
    layers = web._session.run.model.layers  # the run's model as the trainer steps it
    assert {type(layer).__module__ for layer in layers if type(layer).__name__ in ("ReLU", "Dense", "Conv2D")} \
        == {"my_layers"}
    end = train_to_end()
    model = end["state"]["model"]
    assert model["code"]["edited"][:3] == ["ReLU", "Dense", "Conv2D"] and model["test_accuracy"] > 0.85
    # The .npz says so, and loads in pycnn itself with pycnn's layers
    again = pycnn.load_model(web.model_bytes())
    assert again.preset["code"]["sha256"] == model["code"]["sha256"]
    assert type(again.layers[0]) is pycnn.layers.Conv2D


def test_a_leaky_relu_trains_and_pycnns_code_is_back_after():
    start = web.start_training({**SEED, "code": LEAKY})
    assert start["code"]["edited"] == ["ReLU"]
    assert train_to_end()["state"]["model"]["test_accuracy"] > 0.8
    web.start_training(SEED)  # no code: pycnn's classes
    assert all(type(layer).__module__ == "pycnn.layers" for layer in web._session.run.model.layers)


def test_unwritten_or_wrong_gradients_do_not_train_and_nothing_starts():
    template = file_text(solved=False)
    with pytest.raises(UserCodeError, match="ReLU.backward cannot train yet: ReLU.backward is not written"):
        web.start_training({**SEED, "code": template})
    assert web.state()["phase"] == "idle"
    wrong = replace_function(template, "ReLU.backward")
    wrong = wrong.replace("return ops.masked(dout, self.positive)", "return dout * 2")
    with pytest.raises(UserCodeError, match="numerical gradient fails"):
        web.start_training({**SEED, "code": wrong})
    assert web.state()["phase"] == "idle" and web.state()["run"]["phase"] == "stopped"
    with pytest.raises(UserCodeError, match="does not run: SyntaxError"):
        web.start_training({**SEED, "code": "def (:\n"})


def test_unused_stubs_do_not_block_a_run():
    # The template with only ReLU written: its Dense and Conv2D stubs block a seed run, but not once deleted
    solved_relu = replace_function(file_text(solved=False), "ReLU.backward")
    only_relu = solved_relu[:solved_relu.index("class Dense")]
    assert web.start_training({**SEED, "code": only_relu})["code"]["edited"] == ["ReLU"]


def test_every_worker_of_a_data_parallel_run_gets_the_code(mnist):
    x_train, y_train, x_test, y_test = mnist
    config = {**SEED, "train_size": 300}
    first = Session()
    first.set_mnist(x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST])
    first.start_training(config, workers=2)
    shard = first.shard_data(1)
    web.reset()
    out = web.start_replica({**first.run.config, "code": LEAKY}, shard["images"].tobytes(),
                            shard["labels"].astype(np.uint8).tobytes(), [150, 28, 28], 1, first.params().tobytes())
    assert out["code"] == {"edited": ["ReLU"]}
    assert type(web._session.run.model.layers[1]).__module__ == "my_layers"
