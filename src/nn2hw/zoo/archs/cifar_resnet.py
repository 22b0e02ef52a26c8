"""The CIFAR ResNet of He et al. (2016, section 4.2) with the parameter-free option-A shortcut.

Depth 6n + 2: a 3x3 stem conv to 16 channels, three stages of n basic blocks at 16, 32 and 64
channels (the first block of stages 2 and 3 halves the map), global average pooling and one
linear layer. Names match akamaster/pytorch_resnet_cifar10 (``conv1``, ``bn1``,
``layerL.i.conv1/bn1/conv2/bn2``, ``linear``). Input channels and size are free, so the same
network serves CIFAR-10 (3x32x32) and Fashion-MNIST (1x28x28).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.zoo.archs._init import init_weights

STAGE_WIDTHS = (16, 32, 64)


class OptionAShortcut(nn.Module):
    """Subsample by ``stride``, then zero-pad the channels, half of the zeros before and half after.

    The even split matters: the published weights expect the identity channels in the middle
    (appending every zero channel at the end drops CIFAR-10 accuracy to 5-23 %).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        extra = out_channels - in_channels
        if extra < 0 or extra % 2:
            raise ConfigError(f"Option-A shortcut cannot pad {in_channels} to {out_channels} channels evenly.",
                              "Use an output width of the input width plus an even number.")
        self.stride = stride
        self.pad = extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))


class CifarBasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        reshapes = stride != 1 or in_channels != channels
        self.shortcut = OptionAShortcut(in_channels, channels, stride) if reshapes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images."""

    def __init__(self, depth: int, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ConfigError(f"A CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, ...), got {depth}.",
                              "Pick a depth of the form 6n+2.")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        width = STAGE_WIDTHS[0]
        stages = []
        for index, channels in enumerate(STAGE_WIDTHS):
            stride = 1 if index == 0 else 2
            stage = [CifarBasicBlock(width, channels, stride)]
            stage += [CifarBasicBlock(channels, channels, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            width = channels
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(width, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def cifar_resnet(in_channels: int, num_classes: int, depth: int) -> CifarResNet:
    """Zoo builder: ``depth`` 20, 32, 44 or 56 for the published checkpoints."""
    return CifarResNet(depth, in_channels, num_classes)
