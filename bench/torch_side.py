"""The pycnn presets rebuilt in PyTorch, for a side-by-side step time (optional).

PyTorch is channels-first, (N, C, H, W); the layers and their sizes are read
from the pycnn preset itself and the SGD step is the same, so both sides do
the same arithmetic whatever the presets become.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import pycnn

from .steps import BATCHES


def torch_model(preset: str) -> nn.Module:
    """The same architecture as ``pycnn.build_model(preset)``, layer by layer from its configs."""
    layers = []
    for config in pycnn.build_model(preset).architecture()["layers"]:
        kind = config["type"]
        if kind == "Conv2D":
            layers.append(nn.Conv2d(config["in_ch"], config["out_ch"], (config["kh"], config["kw"]),
                                    config["stride"], config["padding"]))
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "MaxPool2D":
            layers.append(nn.MaxPool2d(config["k"], config["stride"]))
        elif kind == "Flatten":  # flattens channels first, pycnn channels last: same work
            layers.append(nn.Flatten())
        elif kind == "Dense":
            layers.append(nn.Linear(config["in_features"], config["out_features"]))
        else:
            raise ValueError(f"no PyTorch counterpart for pycnn layer {kind!r}")
    return nn.Sequential(*layers)


class TorchStep:
    """One SGD training step in PyTorch on the same batches as bench.steps.Step."""

    def __init__(self, preset: str, images: np.ndarray, labels: np.ndarray, batch: int = 64,
                 lr: float = 0.01) -> None:
        torch.manual_seed(0)
        self.model = torch_model(preset)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr)
        self.loss = nn.CrossEntropyLoss()
        self.batches = [
            (torch.from_numpy(images[i * batch : (i + 1) * batch, None].astype(np.float32) / 255),
             torch.from_numpy(labels[i * batch : (i + 1) * batch].astype(np.int64)))
            for i in range(BATCHES)]
        self.count = 0

    def __call__(self) -> None:
        x, y = self.batches[self.count % BATCHES]
        self.count += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.model(x), y).backward()
        self.optimizer.step()


def threads() -> int:
    return torch.get_num_threads()


def version() -> str:
    return torch.__version__
