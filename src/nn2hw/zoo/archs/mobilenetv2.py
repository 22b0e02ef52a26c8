"""MobileNetV2 (Sandler et al. 2018): inverted residual blocks with linear bottlenecks.

A block expands 1x1 by ``t`` (skipped when t = 1), filters 3x3 depthwise (carrying the
stride), projects 1x1 without activation, and adds its input when stride 1 keeps the width.
Widths are scaled by ``width_mult`` and rounded to multiples of 8. ``features.N`` and each
block's ``conv.M`` indices match torchvision, so its ImageNet checkpoint loads.

Settings (t, c, n, s per stage):
- ``imagenet``: the paper's table 2 (stem stride 2, 224x224 -> 7x7).
- ``fmnist``: a compact variant for 1x28x28 (stem stride 1, four stride-2 stages
  collapsed to two, 28 -> 14 -> 7), used at width 0.5 with a 256-channel last conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.zoo.archs._init import init_weights

SETTINGS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "imagenet": ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)),
    "fmnist": ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 160, 2, 1)),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never dropping more than 10 % below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, 'same' padding) + BN + ReLU6, indexed 0/1/2."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = [] if expand_ratio == 1 else [ConvBNReLU(in_channels, hidden, 1)]
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0,
                 setting: str = "imagenet", stem_stride: int = 2, last_channel: int = 1280,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if setting not in SETTINGS:
            raise ConfigError(f"Unknown MobileNetV2 setting {setting!r}.", f"Use one of {', '.join(SETTINGS)}.")
        if width_mult <= 0:
            raise ConfigError(f"MobileNetV2 width_mult must be positive, got {width_mult}.", "Use e.g. 1.0 or 0.5.")
        width = make_divisible(32 * width_mult)
        last = make_divisible(last_channel * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU(in_channels, width, 3, stem_stride)]
        for t, c, n, s in SETTINGS[setting]:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(width, out, s if i == 0 else 1, t))
                width = out
        layers.append(ConvBNReLU(width, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(in_channels: int, num_classes: int, width_mult: float = 1.0, setting: str = "imagenet",
                 stem_stride: int = 2, last_channel: int = 1280) -> MobileNetV2:
    """Zoo builder."""
    return MobileNetV2(in_channels, num_classes, width_mult, setting, stem_stride, last_channel)
