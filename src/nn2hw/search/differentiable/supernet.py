"""The hot-start supernet: the pretrained model with each relaxed dimension of the search space as
a gated choice, run single-path (hard Gumbel one-hot gates in the forward pass, soft gradients).

The relaxed-space protocol (``RelaxedSpace``) is what the training loop needs of any supernet:
``counts`` (choices per position), ``forward(x, gates)`` with one gate tensor per position, and
``estimate_bytes(batch)`` to refuse a supernet that cannot fit before it is allocated. The FBNet and
NAS-Bench-201 supernets follow the same protocol.

What is relaxed, per dimension of the hot-start space (kernel patterns, bit widths, channel cuts):
- ``quantize``: the layer's weight is ``sum_j g_j Q_j(W)`` with ``Q_0`` the unchanged weight and
  ``Q_j`` the fixed-point weight of choice j (integer bits from the weight range, as the quantize
  transform chooses them) passed straight through; with one-hot gates this is exactly ``Q_h(W)``,
  and every choice's gate still gets its gradient (weight-space mixing: one convolution per layer).
  A choice with activation bits fake-quantizes the layer's input the same way.
- ``kernel_pattern``: the weight is ``W * sum_j g_j M_j``, ``M_j`` the per-kernel masks the
  kernel-pattern transform picks from the pretrained weights for choice j's patterns (``M_0`` keeps
  every weight); patterns compose before bit widths, as the transforms apply them.
- ``channel_cut``: the output of every layer of the coupling group (after its BatchNorm when one
  follows it alone) is multiplied by ``sum_j g_j m_j``, ``m_j`` keeping the group's top filters in the
  channel cut's own importance order (summed L2 kernel norms of the pretrained weights): a zeroed
  channel is a removed one for every consumer.
Other techniques stay at their choice 0 (see ``costs.RELAXED_TECHNIQUES``). One approximation: a
quantized layer's integer bits come from all its filters, where the plan takes them after a cut
(the same unless the largest weight is in a cut filter).
"""

from __future__ import annotations

import copy
import functools
import operator
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from nn2hw.compress._slicing import filter_scores, top_filters
from nn2hw.compress._torch import weight_module
from nn2hw.compress.kernel_pattern import PatternChoice, kernel_masks, pattern_mask
from nn2hw.compress.quantize import auto_int_bits, default_act_int_bits
from nn2hw.fixedpoint import fixed_point, straight_through
from nn2hw.space import Dimension
from nn2hw.workload import OpKind, Workload

FLOAT_BYTES = 4


class RelaxedSpace(Protocol):
    """A supernet the differentiable search trains."""

    counts: tuple[int, ...]

    def __call__(self, x: torch.Tensor, gates: Sequence[torch.Tensor]) -> torch.Tensor: ...

    def estimate_bytes(self, batch: int) -> int: ...

    def parameters(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


class _Gated:
    """Holds the gates of the forward pass running now (None outside one)."""

    def __init__(self) -> None:
        self.gates: Sequence[torch.Tensor] | None = None


class MixedMask(nn.Module):
    """Weight parametrization ``W * sum_j g_j M_j`` of one kernel-pattern position (``M_0`` keeps all)."""

    masks: torch.Tensor

    def __init__(self, gated: _Gated, position: int, masks: torch.Tensor) -> None:
        super().__init__()
        self.gated, self.position = gated, position
        self.register_buffer("masks", masks)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        gates = self.gated.gates
        if gates is None:
            return weight
        return weight * torch.tensordot(gates[self.position], self.masks, dims=1)


class MixedWeight(nn.Module):
    """Weight parametrization ``sum_j g_j Q_j(W)`` of one quantize position."""

    def __init__(self, gated: _Gated, position: int, bits: Sequence[int | None]) -> None:
        super().__init__()
        self.gated, self.position, self.bits = gated, position, tuple(bits)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        gates = self.gated.gates
        if gates is None:
            return weight
        gate = gates[self.position]
        mixed = gate[0] * weight
        for j, bits in enumerate(self.bits[1:], start=1):
            if bits is not None:
                quantized = straight_through(weight, fixed_point(weight, bits, auto_int_bits(weight, bits)))
                mixed = mixed + gate[j] * quantized
            else:
                mixed = mixed + gate[j] * weight
        return mixed


def _act_hook(gated: _Gated, position: int, acts: Sequence[tuple[int, int] | None]) -> Any:
    """A forward pre-hook mixing the layer's input over the choices' activation widths."""
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        gates = gated.gates
        if gates is None:
            return None
        x, rest = args[0], args[1:]
        gate = gates[position]
        mixed = gate[0] * x
        for j, act in enumerate(acts[1:], start=1):
            mixed = mixed + gate[j] * (x if act is None else straight_through(x, fixed_point(x, *act)))
        return (mixed, *rest)

    return hook


def _mask_hook(gated: _Gated, position: int, masks: torch.Tensor) -> Any:
    """A forward hook multiplying the output's channels by ``sum_j g_j m_j``."""
    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
        gates = gated.gates
        if gates is None:
            return None
        mask = gates[position] @ masks
        return output * mask.view(1, -1, *([1] * (output.dim() - 2)))

    return hook


class HotStartSupernet(nn.Module):
    """A copy of the pretrained ``model`` whose ``dimensions`` (kernel_pattern, quantize and channel_cut
    ones) are gated."""

    def __init__(self, model: nn.Module, workload: Workload, dimensions: Sequence[Dimension]) -> None:
        super().__init__()
        self.net = copy.deepcopy(model)
        self.workload = workload
        self.dimensions = tuple(dimensions)
        self.counts = tuple(len(d.choices) for d in self.dimensions)
        self._gated = _Gated()
        relax = {"kernel_pattern": self._relax_pattern, "quantize": self._relax_quantize,
                 "channel_cut": self._relax_cut}
        order = list(relax)  # weight parametrizations compose in the transforms' order: patterns, then bits
        for position in sorted(range(len(self.dimensions)), key=lambda p: order.index(self.dimensions[p].technique)):
            relax[self.dimensions[position].technique](position, self.dimensions[position])

    def forward(self, x: torch.Tensor, gates: Sequence[torch.Tensor]) -> torch.Tensor:
        self._gated.gates = gates
        try:
            return self.net(x)
        finally:
            self._gated.gates = None

    def _relax_quantize(self, position: int, dim: Dimension) -> None:
        choices = [c or {} for c in dim.choices]
        for name in dim.layers:
            module = weight_module(self.net, name, transform="quantize")
            parametrize.register_parametrization(
                module, "weight", MixedWeight(self._gated, position, [c.get("weight_bits") for c in choices]))
            if any(c.get("act_bits") for c in choices):
                acts = [None if not c.get("act_bits") else
                        (c["act_bits"], c.get("act_int_bits", default_act_int_bits(c["act_bits"]))) for c in choices]
                module.register_forward_pre_hook(_act_hook(self._gated, position, acts))

    def _relax_pattern(self, position: int, dim: Dimension) -> None:
        for name in dim.layers:
            conv = weight_module(self.net, name, (nn.Conv2d,), "kernel_pattern")
            weight = conv.weight.detach()
            masks = [torch.ones_like(weight)]
            for choice in dim.choices[1:]:
                chosen = PatternChoice(**choice)
                zeros, keep_last = chosen.library(weight.shape[-1])
                library = torch.from_numpy(np.stack([pattern_mask(weight.shape[-1], i, zeros, keep_last)
                                                     for i in chosen.patterns or ()])).to(weight.dtype)
                masks.append(kernel_masks(weight, library))
            parametrize.register_parametrization(conv, "weight", MixedMask(self._gated, position, torch.stack(masks)))

    def _relax_cut(self, position: int, dim: Dimension) -> None:
        modules = [weight_module(self.net, n, transform="channel_cut") for n in dim.layers]
        scores = functools.reduce(operator.add, (filter_scores(m.weight) for m in modules))
        widths = [len(scores), *(int(c["out_channels"]) for c in dim.choices[1:])]
        masks = torch.zeros(len(widths), len(scores))
        for j, width in enumerate(widths):
            masks[j, top_filters(scores, width)] = 1.0
        self.register_buffer(f"masks_{position}", masks)
        for name in dim.layers:
            self._output_module(name).register_forward_hook(_mask_hook(self._gated, position, masks))

    def _output_module(self, name: str) -> nn.Module:
        """The module whose output carries layer ``name``'s channels as every consumer sees them: its
        BatchNorm when that alone reads it, else the layer itself."""
        consumers = [layer for layer in self.workload.layers if name in layer.inputs]
        if len(consumers) == 1 and consumers[0].kind is OpKind.NORM and consumers[0].inputs == (name,):
            try:
                return self.net.get_submodule(consumers[0].name)
            except AttributeError:
                pass
        return self.net.get_submodule(name)

    def estimate_bytes(self, batch: int) -> int:
        """Training memory at ``batch``: weights with their gradients and momentum, one weight copy
        or mask per quantize or pattern choice, and every layer's output kept for the backward pass
        with its gradient."""
        params = sum(p.numel() for p in self.net.parameters())
        copies = sum(len(d.choices) * sum(_weight_elements(self.net, n) for n in d.layers)
                     for d in self.dimensions if d.technique in ("quantize", "kernel_pattern"))
        activations = sum(_elements(layer.out_shape) for layer in self.workload.layers)
        return FLOAT_BYTES * (3 * params + copies + 2 * batch * activations)


def _weight_elements(model: nn.Module, name: str) -> int:
    weight = model.get_submodule(name).weight
    return int(weight.numel()) if isinstance(weight, torch.Tensor) else 0


def _elements(shape: Sequence[int]) -> int:
    """Elements of one sample of an output shape (its batch dimension left out)."""
    count = 1
    for size in shape[1:]:
        count *= int(size)
    return count
