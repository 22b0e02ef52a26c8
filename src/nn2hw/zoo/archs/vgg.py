"""VGG (Simonyan & Zisserman 2015): stacks of 3x3 convs (pad 1) with ReLU, 2x2/2 max pools.

``features`` indexes convs, optional BNs, ReLUs and pools in order, as torchvision does, so
its VGG-11/16 checkpoints load. The ImageNet head is a 7x7 adaptive average pool and three
fully connected layers (4096, 4096, classes). A small head (global pool, dropout, one linear)
serves the compact Fashion-MNIST VGG.
"""

from __future__ import annotations

import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.zoo.archs._init import init_weights

POOL = "M"
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "vgg16": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL),
    # compact VGG for 1x28x28: 28 -> 14 -> 7 -> 3 -> 1 after the four pools
    "vgg_fmnist": (32, 32, POOL, 64, 64, POOL, 128, 128, POOL, 256, POOL),
}


def vgg_features(config: tuple[int | str, ...], in_channels: int, batch_norm: bool) -> tuple[nn.Sequential, int]:
    """The conv/pool stack for ``config`` and its output channel count."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == POOL:
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU(inplace=True))
        channels = int(item)
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    """``hidden`` > 0 gives the ImageNet head (two hidden FC layers); 0 gives dropout + one linear."""

    def __init__(self, config: str, in_channels: int = 3, num_classes: int = 1000, batch_norm: bool = False,
                 pool_size: int = 7, hidden: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        if config not in CONFIGS:
            raise ConfigError(f"Unknown VGG configuration {config!r}.", f"Use one of {', '.join(CONFIGS)}.")
        self.features, channels = vgg_features(CONFIGS[config], in_channels, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        flat = channels * pool_size * pool_size
        if hidden:
            self.classifier = nn.Sequential(
                nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg(in_channels: int, num_classes: int, config: str, batch_norm: bool = False, pool_size: int = 7,
        hidden: int = 4096, dropout: float = 0.5) -> VGG:
    """Zoo builder for the VGG configurations in ``CONFIGS``."""
    return VGG(config, in_channels, num_classes, batch_norm, pool_size, hidden, dropout)
