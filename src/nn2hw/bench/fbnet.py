"""The FBNet search space (HW-NAS-Bench's layout) as torch-free nn2hw workloads and lookup-table keys.

An architecture is 22 op indices, one per block, into ``FBNET_OPS`` (HW-NAS-Bench's order:
k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip). The network is FBNetV1's:
a 3x3 stem to 16 channels, seven stages of [1, 4, 4, 4, 4, 4, 1] blocks with [16, 24, 32, 64,
112, 184, 352] channels (the first block of a stage takes the stage's stride), a 1x1 header, a
global average pool and a classifier. A block is a 1x1 expansion (grouped for the g2 ops, then a
channel shuffle), a depthwise kxk carrying the stride, and a 1x1 projection (grouped for g2),
each followed by batch norm, the first two by ReLU; it adds its input when it keeps the shape.
``skip`` is the identity, or a 1x1 conv + norm + ReLU when the shape changes.

``fbnet_blocks`` (``nn2hw.workload.spaces.fbnet``, re-exported here) is the one schedule: the
workload (``fbnet_workload``), the HW-NAS-Bench table keys (``fbnet_table_keys``) and the torch
module (``nn2hw.zoo.archs.fbnet``) are all read from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nn2hw.workload import Layer, OpKind, Workload
from nn2hw.workload.spaces.fbnet import (
    FBNET_DEPTH,
    FBNET_LAYOUTS,
    FBNET_OPS,
    STAGE_CHANNELS,
    STAGE_DEPTHS,
    STEM_CHANNELS,
    FbnetBlock,
    FbnetLayout,
    FbnetNetwork,
    FbnetOp,
    check_arch,
    fbnet_blocks,
    fbnet_layout,
    random_arch,
)

__all__ = ["FBNET_DEPTH", "FBNET_LAYOUTS", "FBNET_OPS", "STAGE_CHANNELS", "STAGE_DEPTHS", "STEM_CHANNELS",
           "FbnetBlock", "FbnetLayout", "FbnetNetwork", "FbnetOp", "check_arch", "fbnet_blocks", "fbnet_layout",
           "fbnet_table_keys", "fbnet_workload", "random_arch"]


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
