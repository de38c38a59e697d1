"""The pycnn presets rebuilt in PyTorch, for a side-by-side step time (optional).

PyTorch is channels-first, (N, C, H, W); the layers, sizes and the SGD step
match pycnn's presets exactly, so both sides do the same arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .steps import BATCHES


def torch_model(preset: str) -> nn.Module:
    """The same architecture as ``pycnn.build_model(preset)`` with default settings."""
    if preset == "seed":  # Conv 32@7x7 s1 p1 -> ReLU -> Dense 18432 -> 10
        return nn.Sequential(nn.Conv2d(1, 32, 7, 1, 1), nn.ReLU(), nn.Flatten(), nn.Linear(24 * 24 * 32, 10))
    if preset == "lenet":  # (Conv 5x5 -> ReLU -> MaxPool 2) x 2 -> Dense 128 -> ReLU -> Dense 10
        return nn.Sequential(
            nn.Conv2d(1, 16, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(5 * 5 * 32, 128), nn.ReLU(), nn.Linear(128, 10))
    raise ValueError(f"no PyTorch version of preset {preset!r}")


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
