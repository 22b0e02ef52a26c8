"""NAS-Bench-201's TinyNetwork for any cell of its space, and that network's nn2hw workload.

The macro skeleton (Dong & Yang, ICLR 2020): a 3x3 stem conv to C channels + BN; three stages of N
cells at C, 2C and 4C channels, joined by two residual reduction blocks (ReLU-Conv-BN 3x3 stride 2,
ReLU-Conv-BN 3x3, shortcut 2x2 average pool + 1x1 conv); BN + ReLU; global average pool; a
linear classifier. NAS-Bench-201 uses C = 16, N = 5. In a cell, ``nor_conv_kxk`` is ReLU-Conv-BN
(bias-free conv, same padding), ``avg_pool_3x3`` a 3x3 stride-1 average pool that does not count
the padding, ``skip_connect`` the identity and ``none`` zero. ``nb201_zoo`` is the zoo's factory
(entry ``nb201``).

State-dict keys follow the published ``TinyNetwork``/``InferCell``/``ResNetBasicblock`` layout:
``stem.{0,1}``, ``cells.<k>`` (cells 0..N-1, reduction block N, ...; 3N + 2 in all),
``cells.<k>.layers.<e>.op.{1,2}`` for a conv edge ``e`` (edges in the string's order, ``none``
and pool edges holding no parameters but keeping their position), ``cells.<k>.conv_a.op.{1,2}``,
``conv_b.op.{1,2}``, ``downsample.1``, ``lastact.0``, ``classifier``. How sure: the names and
module nesting were read from the authors' public code through the documentation search (cells,
operations, macro network); they were not checked against a NAS-Bench-201 weights file (none is
here), so a checkpoint should load with ``strict=True`` but that is untested.

Two departures, both outside the state dict: ``forward`` returns the logits only (the published
network returns the pooled features too), and a ``none`` edge adds nothing instead of adding
``x * 0``; a node whose edges are all ``none`` is zero, computed once as ``x * 0`` (a scalar
multiply, one activation-kind layer in the workload) so that later ops see its shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.workload import Workload, from_module
from nn2hw.workload.spaces.nb201 import (
    NB201_CELLS,
    NB201_CHANNELS,
    NB201_EDGES,
    NB201_NODES,
    NB201_OPS,
    check_nb201,
    nb201_dataset,
)
from nn2hw.zoo.archs._init import init_weights


class ReLUConvBN(nn.Module):
    """ReLU, a bias-free conv, batch norm (keys ``op.1``, ``op.2``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                                nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class AvgPool3x3(nn.Module):
    """The ``avg_pool_3x3`` edge: 3x3, stride 1, padding 1 not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` edge: zero of the input's shape (called only for a node whose edges are all ``none``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def edge_op(name: str, channels: int) -> nn.Module:
    """The module of one edge operation at ``channels`` (stride 1, channels kept)."""
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    if name == "skip_connect":
        return nn.Identity()
    if name == "none":
        return Zero()
    raise ConfigError(f"Unknown NAS-Bench-201 operation {name!r}.", f"Use one of {', '.join(NB201_OPS)}.")


CELL_INPUTS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((edge, source) for edge, (target, source) in enumerate(NB201_EDGES) if target == node)
    for node in range(1, NB201_NODES + 1))
"""For each computed node 1..3, its incoming (edge, source node) pairs."""


def run_cell(x: torch.Tensor, ops: Sequence[int], edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A cell's output for input ``x``: node i sums ``edge(e, node)`` over its edges whose op (``ops[e]``)
    is not ``none``, in edge order; a node whose edges are all ``none`` is ``edge`` of its first one (the zero)."""
    nodes = [x]
    for edges in CELL_INPUTS:
        live = [(index, source) for index, source in edges if NB201_OPS[ops[index]] != "none"]
        if not live:
            index, source = edges[0]
            nodes.append(edge(index, nodes[source]))
            continue
        total = edge(live[0][0], nodes[live[0][1]])
        for index, source in live[1:]:
            total = total + edge(index, nodes[source])
        nodes.append(total)
    return nodes[-1]


class InferCell(nn.Module):
    """A cell: node i (1..3) sums its edges' ops applied to the earlier nodes; node 3 is the output."""

    def __init__(self, ops: Sequence[int], channels: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.layers = nn.ModuleList(edge_op(NB201_OPS[op], channels) for op in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_cell(x, self.ops, lambda edge, value: self.layers[edge](value))


class ResNetBasicblock(nn.Module):
    """The reduction block: ReLU-Conv-BN 3x3 stride 2, ReLU-Conv-BN 3x3, plus an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    """NAS-Bench-201's macro network around one cell, repeated ``cells`` times in each of 3 stages."""

    def __init__(self, ops: Sequence[int], num_classes: int, channels: int = NB201_CHANNELS,
                 cells: int = NB201_CELLS, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        stages: list[nn.Module] = []
        for stage in range(3):
            width = channels * 2**stage
            if stage:
                stages.append(ResNetBasicblock(width // 2, width))
            stages += [InferCell(ops, width) for _ in range(cells)]
        self.cells = nn.ModuleList(stages)
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels * 4), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels * 4, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"The NAS-Bench-201 network's {what} must be a positive integer, got {value!r}.",
                          f"Use e.g. {what}={NB201_CHANNELS if what == 'channels' else NB201_CELLS} "
                          "(NAS-Bench-201's setting).")
    return value


def nb201_network(arch: str | Sequence[int], dataset: str = "cifar10", channels: int = NB201_CHANNELS,
                  cells: int = NB201_CELLS, *, in_channels: int = 3, num_classes: int | None = None) -> TinyNetwork:
    """The TinyNetwork of ``arch`` (a NAS-Bench-201 string or six op indices) for ``dataset``
    (cifar10, cifar100 or ImageNet16-120: its class count, unless ``num_classes`` is given) on
    ``in_channels`` input channels (1 for Fashion-MNIST), in training mode, freshly initialized."""
    ops = check_nb201(arch)
    data = nb201_dataset(dataset)
    return TinyNetwork(ops, data.classes if num_classes is None else num_classes, _positive(channels, "channels"),
                       _positive(cells, "cells"), in_channels)


def nb201_zoo(in_channels: int, num_classes: int, *, arch: str | Sequence[int], channels: int = NB201_CHANNELS,
              cells: int = NB201_CELLS) -> TinyNetwork:
    """The zoo entry ``nb201``: ``arch``'s TinyNetwork for ``in_channels`` and ``num_classes`` (the
    network does not depend on the input size), as the NAS-Bench-201 supernet derives it."""
    return nb201_network(arch, "cifar10", channels, cells, in_channels=in_channels, num_classes=num_classes)


def nb201_workload(arch: str | Sequence[int], dataset: str = "cifar10", batch: int = 1,
                   channels: int = NB201_CHANNELS, cells: int = NB201_CELLS) -> Workload:
    """The nn2hw workload of ``arch``'s TinyNetwork on a ``batch`` of ``dataset``'s images.

    Traced on torch's meta device (no weights allocated): ``none`` edges add no layer, pools are
    pool layers, each ``nor_conv`` is a ReLU, a conv and a batch norm. Named
    ``nb201-<dataset>-<six op indices>``.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"Batch size must be a positive integer, got {batch!r}.", "Use e.g. batch=1.")
    ops = check_nb201(arch)
    data = nb201_dataset(dataset)
    with torch.device("meta"):
        model = nb201_network(ops, data.name, channels, cells)
    example = torch.empty((batch, 3, data.input_size, data.input_size), device="meta")
    return from_module(model, example, name=f"nb201-{data.name}-{''.join(str(op) for op in ops)}")
