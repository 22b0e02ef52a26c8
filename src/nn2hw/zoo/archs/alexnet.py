"""AlexNet in the one-GPU form of Krizhevsky (2014, "One weird trick"), as torchvision ships it.

Five convs (11x11/4 to 64, 5x5 to 192, then 3x3 to 384, 256, 256) with ReLUs and three 3x3/2
max pools, a 6x6 adaptive average pool, and three fully connected layers (4096, 4096, classes)
with dropout before the first two. ``features``/``classifier`` indices match torchvision.
"""

from __future__ import annotations

import torch
from torch import nn

from nn2hw.zoo.archs._init import init_weights


class AlexNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def alexnet(in_channels: int, num_classes: int) -> AlexNet:
    """Zoo builder."""
    return AlexNet(in_channels, num_classes)
