"""The FBNet search space (HW-NAS-Bench's layout): candidate blocks, dataset layouts and the block schedule.

An architecture is 22 op indices, one per block, into ``FBNET_OPS`` (HW-NAS-Bench's order:
k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip). The network is FBNetV1's:
a 3x3 stem to 16 channels, seven stages of [1, 4, 4, 4, 4, 4, 1] blocks with [16, 24, 32, 64,
112, 184, 352] channels (the first block of a stage takes the stage's stride), a 1x1 header, a
global average pool and a classifier. ``fbnet_blocks`` lays an architecture out on a dataset's
layout; ``nn2hw.bench.fbnet`` reads it for the workload and HW-NAS-Bench's table keys,
``nn2hw.zoo.archs.fbnet`` for the torch module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nn2hw.errors import ConfigError


@dataclass(frozen=True)
class FbnetOp:
    """One candidate block: a kernel size, an expansion ratio and the 1x1 convs' groups; or the skip."""

    name: str
    kernel: int = 0
    expansion: int = 1
    groups: int = 1

    @property
    def is_skip(self) -> bool:
        return self.kernel == 0


FBNET_OPS: tuple[FbnetOp, ...] = (
    FbnetOp("k3_e1", 3, 1), FbnetOp("k3_e1_g2", 3, 1, 2), FbnetOp("k3_e3", 3, 3), FbnetOp("k3_e6", 3, 6),
    FbnetOp("k5_e1", 5, 1), FbnetOp("k5_e1_g2", 5, 1, 2), FbnetOp("k5_e3", 5, 3), FbnetOp("k5_e6", 5, 6),
    FbnetOp("skip"),
)
"""The 9 candidate blocks, indexed as in HW-NAS-Bench's FBNet encoding."""

STAGE_DEPTHS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STEM_CHANNELS = 16
FBNET_DEPTH = sum(STAGE_DEPTHS)
"""Blocks per architecture: 22."""


@dataclass(frozen=True)
class FbnetLayout:
    """The input setting of one dataset: input size, stem stride, stage strides, header width, classes."""

    dataset: str
    input_size: int
    stem_stride: int
    stage_strides: tuple[int, ...]
    header_channels: int
    classes: int


_CIFAR_STRIDES = (1, 1, 2, 2, 1, 2, 1)
FBNET_LAYOUTS: dict[str, FbnetLayout] = {
    layout.dataset: layout for layout in (
        FbnetLayout("cifar10", 32, 1, _CIFAR_STRIDES, 1504, 10),
        FbnetLayout("cifar100", 32, 1, _CIFAR_STRIDES, 1504, 100),
        FbnetLayout("ImageNet", 224, 2, (1, 2, 2, 2, 1, 2, 1), 1984, 1000),
    )
}
"""FBNetV1's CIFAR (HW-NAS-Bench's unofficial 32x32 setting) and ImageNet (224x224) layouts."""


@dataclass(frozen=True)
class FbnetBlock:
    """Block ``index`` of an architecture: its op, channels, stride and input feature size."""

    index: int
    op: FbnetOp
    in_channels: int
    out_channels: int
    stride: int
    in_size: int

    @property
    def out_size(self) -> int:
        return self.in_size // self.stride

    @property
    def keeps_shape(self) -> bool:
        """Same channels and stride 1: a conv block adds its input, a skip is the identity."""
        return self.in_channels == self.out_channels and self.stride == 1


@dataclass(frozen=True)
class FbnetNetwork:
    """An architecture laid out: the dataset's layout, the blocks and the header's input size."""

    arch: tuple[int, ...]
    layout: FbnetLayout
    blocks: tuple[FbnetBlock, ...] = field(repr=False)

    @property
    def final_size(self) -> int:
        return self.blocks[-1].out_size


def fbnet_layout(dataset: str) -> FbnetLayout:
    """The layout of ``dataset`` (case-insensitive); a ``ConfigError`` naming the known ones otherwise."""
    by_lower = {name.lower(): layout for name, layout in FBNET_LAYOUTS.items()}
    layout = by_lower.get(str(dataset).lower())
    if layout is None:
        raise ConfigError(f"The FBNet space has no input setting for dataset {dataset!r}.",
                          f"Use one of {sorted(FBNET_LAYOUTS)}.")
    return layout


def check_arch(arch: Sequence[int]) -> tuple[int, ...]:
    """``arch`` as a tuple of 22 op indices in 0..8; a ``ConfigError`` naming the bad entry otherwise."""
    if isinstance(arch, (str, bytes)) or not isinstance(arch, (Sequence, np.ndarray)):
        raise ConfigError(f"An FBNet architecture must be a sequence of {FBNET_DEPTH} op indices, got {arch!r}.",
                          f"Pass a list of {FBNET_DEPTH} integers in 0..{len(FBNET_OPS) - 1}.")
    if len(arch) != FBNET_DEPTH:
        raise ConfigError(f"An FBNet architecture has {FBNET_DEPTH} blocks; this one has {len(arch)} op indices.",
                          f"Give exactly {FBNET_DEPTH} op indices, one per block.")
    for position, value in enumerate(arch):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not 0 <= value < len(FBNET_OPS):
            raise ConfigError(
                f"Block {position} of the FBNet architecture has op index {value!r}, outside 0..{len(FBNET_OPS) - 1}.",
                "Use op indices " + ", ".join(f"{i}={op.name}" for i, op in enumerate(FBNET_OPS)) + ".")
    return tuple(int(v) for v in arch)


def fbnet_blocks(arch: Sequence[int], dataset: str = "cifar100") -> FbnetNetwork:
    """The schedule of ``arch`` on ``dataset``: every block's op, channels, stride and input size."""
    ops = check_arch(arch)
    layout = fbnet_layout(dataset)
    size = layout.input_size // layout.stem_stride
    channels = STEM_CHANNELS
    blocks: list[FbnetBlock] = []
    for depth, width, stride in zip(STAGE_DEPTHS, STAGE_CHANNELS, layout.stage_strides):
        for position in range(depth):
            block_stride = stride if position == 0 else 1
            block = FbnetBlock(len(blocks), FBNET_OPS[ops[len(blocks)]], channels, width, block_stride, size)
            blocks.append(block)
            channels, size = width, block.out_size
    return FbnetNetwork(ops, layout, tuple(blocks))


def random_arch(rng: np.random.Generator) -> tuple[int, ...]:
    """A uniformly drawn architecture: 22 op indices in 0..8."""
    return tuple(int(v) for v in rng.integers(0, len(FBNET_OPS), size=FBNET_DEPTH))
