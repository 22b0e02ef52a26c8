"""SqueezeNet 1.0 (Iandola et al. 2016) with torchvision's module names.

A 7x7/2 conv to 96 channels, then eight Fire modules (a 1x1 "squeeze" conv feeding parallel
1x1 and 3x3 "expand" convs whose outputs are concatenated) with 3x3/2 max pools (ceil mode)
after the stem, Fire 4 and Fire 8. The classifier is dropout, a 1x1 conv to the classes,
ReLU and global average pooling. All convs have biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nn2hw.zoo.archs._init import init_weights

# (squeeze, expand1x1, expand3x3) of Fire 2..9, and after which ones a max pool follows
FIRES = ((16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128), (48, 192, 192), (48, 192, 192),
         (64, 256, 256), (64, 256, 256))
POOL_AFTER = (2, 6)  # indices into FIRES


class Fire(nn.Module):
    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], 1)


class SqueezeNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 96, 7, 2), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(3, 2, ceil_mode=True)]
        width = 96
        for index, (squeeze, e1, e3) in enumerate(FIRES):
            layers.append(Fire(width, squeeze, e1, e3))
            width = e1 + e3
            if index in POOL_AFTER:
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        head = nn.Conv2d(width, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), head, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        init_weights(self)
        nn.init.normal_(head.weight, 0.0, 0.01)  # small logits at start, as in the paper's solver

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_0(in_channels: int, num_classes: int) -> SqueezeNet:
    """Zoo builder."""
    return SqueezeNet(in_channels, num_classes)
