"""ImageNet ResNet-18/34/50 (He et al. 2016) with torchvision's module names.

Stem: 7x7/2 conv to 64 channels, BN, ReLU, 3x3/2 max pool. Four stages of basic (two 3x3)
or bottleneck (1x1, 3x3, 1x1 with 4x expansion) blocks at 64, 128, 256, 512 base channels;
stages 2-4 start with stride 2, carried by the 3x3 conv (the "v1.5" placement torchvision
uses). A shape-changing block projects its shortcut with ``downsample`` = 1x1 conv + BN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.zoo.archs._init import init_weights

STAGE_WIDTHS = (64, 128, 256, 512)
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """The 1x1 conv + BN shortcut when a block changes shape, else ``None`` (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _projection(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, depth: int, in_channels: int = 3, num_classes: int = 1000) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ConfigError(f"No ImageNet ResNet of depth {depth} in the zoo.",
                              f"Use one of {', '.join(map(str, DEPTHS))}.")
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        width = STAGE_WIDTHS[0]
        stages = []
        for index, (channels, count) in enumerate(zip(STAGE_WIDTHS, counts)):
            blocks = []
            for i in range(count):
                blocks.append(block(width, channels, 2 if index > 0 and i == 0 else 1))
                width = channels * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(in_channels: int, num_classes: int, depth: int) -> ResNet:
    """Zoo builder: ``depth`` 18, 34 or 50."""
    return ResNet(depth, in_channels, num_classes)
