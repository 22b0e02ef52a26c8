"""The FBNet space's networks as torch modules, from the same 22-op encoding and block schedule as
``nn2hw.bench.fbnet`` (``nn2hw.workload.spaces.fbnet.fbnet_blocks``).

A stem (3x3 conv to 16 channels + BN + ReLU), 22 blocks, a 1x1 header conv + BN + ReLU, a global
average pool and a linear classifier. A conv block is a 1x1 expansion (grouped for the g2 ops,
then a channel shuffle), a depthwise kxk carrying the stride and a 1x1 projection (grouped for g2),
each followed by BN, the first two by ReLU; it adds its input when it keeps the shape. ``skip`` is
the identity, or a 1x1 conv + BN + ReLU when the shape changes. Convs are bias-free with same
padding. Module names follow the workload's layer names (``stem.conv``, ``cells.<i>.conv1``,
``cells.<i>.shuffle``, ``header.conv``, ``avgpool``, ``fc``), HW-NAS-Bench's ``FBNet_Infer``
naming as far as ``nn2hw.bench.fbnet`` records it; no FBNet checkpoint exists here to check a
state dict against.

Beyond HW-NAS-Bench's networks, a builder takes the input channels (1 for Fashion-MNIST), a class
count and a width multiplier (every width, stem and header included, scaled and rounded to a
multiple of 4, for quick runs); the defaults build the published layout. ``fbnet_zoo`` is the
zoo's factory (entry ``fbnet``): the CIFAR layout (Fashion-MNIST's too) for any architecture and
width, the very network ``FBNetSupernet(dataset, width_mult=w).derive(indices)`` returns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.workload.spaces.fbnet import STEM_CHANNELS, FbnetBlock, FbnetNetwork, fbnet_blocks
from nn2hw.zoo.archs._init import init_weights


class ConvNorm(nn.Module):
    """A bias-free conv with same padding, batch norm and (optionally) ReLU: ``conv``, ``bn``, ``relu``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (groups, C/groups) channels read as (C/groups, groups)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


class ConvBlock(nn.Module):
    """Expansion 1x1 (+ shuffle when grouped), depthwise kxk (the stride), projection 1x1; residual if kept."""

    def __init__(self, block: FbnetBlock) -> None:
        super().__init__()
        op, mid = block.op, block.in_channels * block.op.expansion
        self.residual = block.keeps_shape
        self.conv1 = nn.Conv2d(block.in_channels, mid, 1, groups=op.groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU(inplace=True)
        self.shuffle = ChannelShuffle(op.groups) if op.groups > 1 else nn.Identity()
        self.conv2 = nn.Conv2d(mid, mid, op.kernel, block.stride, op.kernel // 2, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(mid, block.out_channels, 1, groups=op.groups, bias=False)
        self.bn3 = nn.BatchNorm2d(block.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.relu1(self.bn1(self.conv1(x))))
        y = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(y)))))
        return y + x if self.residual else y


class Skip(ConvNorm):
    """The ``skip`` op where the shape changes: a 1x1 conv (the stride) + BN + ReLU."""

    def __init__(self, block: FbnetBlock) -> None:
        super().__init__(block.in_channels, block.out_channels, stride=block.stride)


def block_module(block: FbnetBlock) -> nn.Module:
    """The module of one scheduled block: a conv block, a projecting skip or the identity."""
    if not block.op.is_skip:
        return ConvBlock(block)
    return nn.Identity() if block.keeps_shape else Skip(block)


def scale_channels(channels: int, width_mult: float) -> int:
    """``channels`` x ``width_mult`` rounded to a multiple of 4 (at least 4): even, as the g2
    blocks' grouped convs and shuffle need; every FBNet width is a multiple of 4, so 1.0 keeps it."""
    return max(4, 4 * round(channels * width_mult / 4))


def check_width_mult(width_mult: float) -> float:
    """``width_mult`` as a positive finite float; a ``ConfigError`` otherwise."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or \
            not math.isfinite(width_mult) or width_mult <= 0:
        raise ConfigError(f"The width multiplier must be a positive number, got {width_mult!r}.",
                          "Use e.g. width_mult=1.0 (the published widths) or 0.25 for quick runs.")
    return float(width_mult)


def scaled_blocks(net: FbnetNetwork, width_mult: float) -> tuple[FbnetBlock, ...]:
    """``net``'s blocks with widths scaled by ``width_mult``; a ``ConfigError`` when rounding makes
    a block that changes width keep it (its residual and skip would change)."""
    blocks = tuple(dataclasses.replace(block, in_channels=scale_channels(block.in_channels, width_mult),
                                       out_channels=scale_channels(block.out_channels, width_mult))
                   for block in net.blocks)
    for old, new in zip(net.blocks, blocks):
        if new.keeps_shape != old.keeps_shape:
            raise ConfigError(
                f"Width multiplier {width_mult} rounds block {old.index}'s {old.in_channels} -> "
                f"{old.out_channels} channels to {new.in_channels} -> {new.out_channels}, which changes its wiring.",
                "Use a larger width multiplier (0.25 or more keeps every block's wiring).")
    return blocks


class FBNet(nn.Module):
    """An FBNet-space network: stem, 22 scheduled blocks, header, average pool, classifier."""

    def __init__(self, arch: Sequence[int], dataset: str = "cifar100", *, in_channels: int = 3,
                 num_classes: int | None = None, width_mult: float = 1.0) -> None:
        super().__init__()
        net = fbnet_blocks(arch, dataset)
        layout = net.layout
        width_mult = check_width_mult(width_mult)
        blocks = scaled_blocks(net, width_mult)
        header = scale_channels(layout.header_channels, width_mult)
        self.arch = net.arch
        self.stem = ConvNorm(in_channels, scale_channels(STEM_CHANNELS, width_mult), 3, layout.stem_stride)
        self.cells = nn.ModuleList(block_module(block) for block in blocks)
        self.header = ConvNorm(blocks[-1].out_channels, header)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(header, layout.classes if num_classes is None else num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.fc(torch.flatten(self.avgpool(self.header(x)), 1))


def fbnet_network(arch: Sequence[int], dataset: str = "cifar100", *, in_channels: int = 3,
                  num_classes: int | None = None, width_mult: float = 1.0) -> FBNet:
    """The torch module of FBNet architecture ``arch`` (22 op indices in HW-NAS-Bench's order) on
    ``dataset``'s layout (cifar10, cifar100 or ImageNet), in training mode, freshly initialized;
    ``in_channels`` input channels, ``num_classes`` classes (default: the layout's) and every
    width scaled by ``width_mult``."""
    return FBNet(arch, dataset, in_channels=in_channels, num_classes=num_classes, width_mult=width_mult)


def fbnet_zoo(in_channels: int, num_classes: int, *, arch: Sequence[int], width_mult: float = 1.0) -> FBNet:
    """The zoo entry ``fbnet``: ``arch`` on the CIFAR layout (CIFAR-10 and CIFAR-100 differ only in
    their classes, and Fashion-MNIST uses it with one input channel), as the FBNet supernet derives it."""
    return fbnet_network(arch, "cifar10", in_channels=in_channels, num_classes=num_classes, width_mult=width_mult)
