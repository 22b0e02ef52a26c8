"""The FBNet search space (HW-NAS-Bench's layout) as torch-free nn2hw workloads and lookup-table keys.

An architecture is 22 op indices, one per block, into ``FBNET_OPS`` (HW-NAS-Bench's order:
k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip). The network is FBNetV1's:
a 3x3 stem to 16 channels, seven stages of [1, 4, 4, 4, 4, 4, 1] blocks with [16, 24, 32, 64,
112, 184, 352] channels (the first block of a stage takes the stage's stride), a 1x1 header, a
global average pool and a classifier. A block is a 1x1 expansion (grouped for the g2 ops, then a
channel shuffle), a depthwise kxk carrying the stride, and a 1x1 projection (grouped for g2),
each followed by batch norm, the first two by ReLU; it adds its input when it keeps the shape.
``skip`` is the identity, or a 1x1 conv + norm + ReLU when the shape changes.

``fbnet_blocks`` is the one schedule: the workload (``fbnet_workload``) and the HW-NAS-Bench
table keys (``fbnet_table_keys``) are both read from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn2hw.errors import ConfigError
from nn2hw.workload import Layer, OpKind, Workload


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


# --- HW-NAS-Bench table keys -------------------------------------------------------------------------


def fbnet_table_keys(arch: Sequence[int], dataset: str = "cifar100") -> list[str]:
    """The HW-NAS-Bench FBNet lookup-table keys of ``arch``, in the order the API sums them:
    stem, the 22 blocks, header, average pool, classifier."""
    net = fbnet_blocks(arch, dataset)
    layout = net.layout
    stem = layout.input_size
    keys = [f"ConvNorm_H{stem}_W{stem}_Cin3_Cout{STEM_CHANNELS}_kernel3_stride{layout.stem_stride}_group1"]
    keys += [_block_key(block) for block in net.blocks]
    size, last, header = net.final_size, STAGE_CHANNELS[-1], layout.header_channels
    keys += [f"ConvNorm_H{size}_W{size}_Cin{last}_Cout{header}_kernel1_stride1_group1",
             f"AvgP_H{size}_W{size}_Cin{header}_Cout{header}_kernel{size}_stride1",
             f"FC_Cin{header}_Cout{layout.classes}"]
    return keys


def _block_key(block: FbnetBlock) -> str:
    size, op = block.in_size, block.op
    shape = f"H{size}_W{size}_Cin{block.in_channels}_Cout{block.out_channels}"
    if op.is_skip:
        return f"Skip_{shape}_stride{block.stride}"
    return f"ConvBlock_{shape}_exp{op.expansion}_kernel{op.kernel}_stride{block.stride}_group{op.groups}"


# --- the workload ----------------------------------------------------------------------------------


class _Builder:
    """Appends layers with their recorded shapes; each op reads the last one unless told otherwise."""

    def __init__(self, channels: int, size: int) -> None:
        self.layers = [Layer("x", OpKind.INPUT, (), "input", in_channels=channels, out_channels=channels,
                             in_h=size, in_w=size, out_h=size, out_w=size, out_shape=(1, channels, size, size))]

    @property
    def last(self) -> Layer:
        return self.layers[-1]

    def _add(self, name: str, kind: OpKind, op: str, sources: tuple[Layer, ...], out_shape: tuple[int, ...],
             **view: Any) -> str:
        first = sources[0]
        out_channels, out_size = out_shape[1], (out_shape[2] if len(out_shape) > 2 else 1)
        self.layers.append(Layer(
            name, kind, tuple(s.name for s in sources), op, in_channels=first.out_channels,
            out_channels=out_channels, in_h=first.out_h, in_w=first.out_w, out_h=out_size, out_w=out_size,
            in_shapes=tuple(s.output_shape for s in sources), out_shape=out_shape, **view))
        return name

    def conv(self, name: str, channels: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> str:
        """A bias-free conv padded as FBNet pads (output = input / stride for even inputs)."""
        src = self.last
        pad = math.ceil((kernel - stride) / 2)
        out = (src.out_h + 2 * pad - kernel) // stride + 1
        return self._add(name, OpKind.CONV, "Conv2d", (src,), (1, channels, out, out), kernel_h=kernel,
                         kernel_w=kernel, stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad, groups=groups)

    def same(self, name: str, kind: OpKind, op: str, *sources: Layer) -> str:
        """An op that keeps its (first) input's shape: norm, activation, shuffle, residual add."""
        inputs = sources or (self.last,)
        return self._add(name, kind, op, inputs, inputs[0].output_shape)

    def conv_norm(self, prefix: str, channels: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                  relu: bool = True, suffix: str = "") -> None:
        self.conv(f"{prefix}.conv{suffix}", channels, kernel, stride, groups)
        self.same(f"{prefix}.bn{suffix}", OpKind.NORM, "BatchNorm2d")
        if relu:
            self.same(f"{prefix}.relu{suffix}", OpKind.ACT, "ReLU")

    def block(self, block: FbnetBlock) -> None:
        prefix, op = f"cells.{block.index}", block.op
        if op.is_skip:
            if not block.keeps_shape:
                self.conv_norm(prefix, block.out_channels, stride=block.stride)
            return
        identity = self.last
        mid = block.in_channels * op.expansion
        self.conv_norm(prefix, mid, groups=op.groups, suffix="1")
        if op.groups > 1:
            self.same(f"{prefix}.shuffle", OpKind.RESHAPE, "channel_shuffle")
        self.conv_norm(prefix, mid, op.kernel, block.stride, groups=mid, suffix="2")
        self.conv_norm(prefix, block.out_channels, groups=op.groups, relu=False, suffix="3")
        if block.keeps_shape:
            self.same(f"{prefix}.add", OpKind.ELTWISE, "add", self.last, identity)

    def head(self, header_channels: int, classes: int) -> None:
        self.conv_norm("header", header_channels)
        size = self.last.out_h
        self._add("avgpool", OpKind.POOL, "AdaptiveAvgPool2d", (self.last,), (1, header_channels, 1, 1),
                  kernel_h=size, kernel_w=size, stride_h=size, stride_w=size)
        self._add("flatten", OpKind.RESHAPE, "flatten", (self.last,), (1, header_channels))
        self._add("fc", OpKind.LINEAR, "Linear", (self.last,), (1, classes), bias=True)


def fbnet_workload(arch: Sequence[int], dataset: str = "cifar100") -> Workload:
    """The nn2hw workload of FBNet architecture ``arch`` (22 op indices) on ``dataset``'s layout.

    Layers are named after HW-NAS-Bench's ``FBNet_Infer`` modules (``stem``, ``cells.<i>``,
    ``header``, ``avgpool``, ``fc``); an identity skip adds no layer.
    """
    net = fbnet_blocks(arch, dataset)
    layout = net.layout
    build = _Builder(3, layout.input_size)
    build.conv_norm("stem", STEM_CHANNELS, kernel=3, stride=layout.stem_stride)
    for block in net.blocks:
        build.block(block)
    build.head(layout.header_channels, layout.classes)
    name = f"fbnet-{layout.dataset}-{''.join(str(i) for i in net.arch)}"
    return Workload(name, tuple(build.layers), (1, 3, layout.input_size, layout.input_size), source="fbnet")
