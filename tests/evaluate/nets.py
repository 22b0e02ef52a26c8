"""Small models and datasets for the evaluator tests (seconds, not minutes)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nn2hw.data import ArrayDataset


def bright_dark(n: int, seed: int = 0, full: int | None = None) -> ArrayDataset:
    """A learnable 2-class task on 1x8x8 images: class 1 is bright, class 0 is dark (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    pixels = np.clip(rng.normal(70 + 110 * labels[:, None, None, None], 40, (n, 1, 8, 8)), 0, 255).astype(np.uint8)
    return ArrayDataset("bright-dark", "train", pixels, labels.astype(np.int64), ("dark", "bright"), full or n, "mem")


class TinyNet(nn.Module):
    """conv-BN-ReLU, global pool, linear: enough to learn ``bright_dark``."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class Lookup(nn.Module):
    """Returns ``table[i]`` for the image whose pixels all equal i/255 (to test the metric arithmetic)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x[:, 0, 0, 0] * 255).round().long()]


def indexed(labels: list[int], classes: int, full: int | None = None) -> ArrayDataset:
    """Images 0..n-1 whose pixels hold their own index, with the given labels."""
    n = len(labels)
    pixels = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 2, 2)).copy()
    return ArrayDataset("indexed", "test", pixels, np.asarray(labels, np.int64), tuple(map(str, range(classes))),
                        full or n, "mem")
