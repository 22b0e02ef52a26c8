"""MnasNet-B1 (Tan et al. 2019) with torchvision's layout: one flat ``layers`` Sequential.

``layers`` 0-7 are the stem: 3x3/2 conv, BN, ReLU, 3x3 depthwise conv, BN, ReLU, 1x1 conv, BN.
``layers`` 8-13 are six stacks of inverted residual blocks (kernel, first stride, expansion,
repeats = 3/2/3/3, 5/2/3/3, 5/2/6/3, 3/1/6/2, 5/2/6/4, 3/1/6/1), each block being
``layers.0-7`` = 1x1 expand, BN, ReLU, depthwise kxk, BN, ReLU, 1x1 project, BN, with a
residual add when shape allows. ``layers`` 14-16 map to 1280 channels; then global mean,
dropout and a linear classifier.

Widths are the base depths (32, 16, 24, 40, 80, 96, 192, 320) times ``alpha``, rounded to a
multiple of 8 (rounding up unless that adds more than 10 %). Current torchvision scales the
stem too (its "version 2"); ``legacy_stem=True`` keeps the stem at 32/32/16 channels as the
first torchvision release did, which is what HotNAS's published MnasNet-0.5 figures used.
For alpha = 1.0 both are identical.
"""

from __future__ import annotations

import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.zoo.archs._init import init_weights

BASE_DEPTHS = (32, 16, 24, 40, 80, 96, 192, 320)
LEGACY_STEM = (32, 16)
STACKS = ((3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1))
BN_MOMENTUM = 1 - 0.9997  # the paper's TensorFlow decay 0.9997, in PyTorch's convention


def round_to_multiple(value: float, divisor: int = 8, round_up_bias: float = 0.9) -> int:
    """Nearest multiple of ``divisor``, bumped up one step when rounding lost more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded if rounded >= round_up_bias * value else rounded + divisor


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class MnasBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False), _bn(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), _bn(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1, bias=False), _bn(out_channels),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x if self.residual else self.layers(x)


class MNASNet(nn.Module):
    def __init__(self, alpha: float, in_channels: int = 3, num_classes: int = 1000, legacy_stem: bool = False,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if alpha <= 0:
            raise ConfigError(f"MnasNet alpha must be positive, got {alpha}.", "Use e.g. 0.5 or 1.0.")
        depths = [round_to_multiple(d * alpha) for d in BASE_DEPTHS]
        stem, width = (LEGACY_STEM if legacy_stem else (depths[0], depths[1]))
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False), _bn(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, 1, 1, groups=stem, bias=False), _bn(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, width, 1, bias=False), _bn(width),
        ]
        for out, (kernel, stride, expansion, repeats) in zip(depths[2:], STACKS):
            blocks = [MnasBlock(width if i == 0 else out, out, kernel, stride if i == 0 else 1, expansion)
                      for i in range(repeats)]
            layers.append(nn.Sequential(*blocks))
            width = out
        layers += [nn.Conv2d(width, 1280, 1, bias=False), _bn(1280), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(1280, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


def mnasnet(in_channels: int, num_classes: int, alpha: float, legacy_stem: bool = False) -> MNASNet:
    """Zoo builder."""
    return MNASNet(alpha, in_channels, num_classes, legacy_stem)
