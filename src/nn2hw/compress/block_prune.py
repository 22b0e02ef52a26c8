"""Block-structured pruning of linear layers (Li et al. 2020, BERT with hardware-friendly block pruning).

A weight matrix ``[out, in]`` is split into column blocks of ``block_cols`` columns; in each block
the ``block_rows`` rows whose segment has the largest L2 norm stay (ties to the lower index) and the
other segments are zeroed. Every column block keeps the same number of rows, so the layer
multiplies ``block_rows / out`` of its weights: ``Layer.kept_rows`` records it and ``macs`` /
``read_bytes`` count only those (what a block-sparse kernel or accelerator runs).

Dense kernels gain nothing from the zeros, which stay in the dense tensors as kernel patterns' do
(``export_onnx`` lists the layer in ``masked_layers``). What dense kernels do speed up is a whole
row removed physically: that is a channel cut of the layer (``with_cut``, coupling-aware), so a
single column block spanning every column is refused here with that fix.

Torch side: a ``WeightMask`` parametrization (``weight = original * mask``; the originals are
zeroed too), so fine-tuning cannot revive a pruned block.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, check_int, has_module_weights
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import Plan
from nn2hw.workload.layer import Layer, OpKind, Workload

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class BlockChoice:
    """``block_cols``: columns per block (dividing the layer's input width); ``block_rows``: rows each
    column block keeps."""

    block_cols: int | None = None
    block_rows: int | None = None

    def __post_init__(self) -> None:
        if (self.block_cols is None) != (self.block_rows is None):
            raise PlanError("Block pruning needs both block_cols and block_rows.",
                            "Give block_cols (columns per block) and block_rows (rows each block keeps).")
        check_int("block_cols", self.block_cols, 1, fix="Give block_cols as a positive number of columns.")
        check_int("block_rows", self.block_rows, 1, fix="Keep at least 1 row per column block.")


def with_block_pruning(plan: Plan, workload: Workload, block_cols: int, keep: float, layers: str = "*") -> Plan:
    """``plan`` with every linear layer matching the glob ``layers`` block-pruned: column blocks of
    ``block_cols`` keeping ``keep`` of their rows (at least one)."""
    chosen = [layer for layer in workload.compute_layers
              if layer.kind is OpKind.LINEAR and has_module_weights(layer) and fnmatch.fnmatchcase(layer.name, layers)]
    if not chosen:
        raise PlanError(f"No linear layer matches {layers!r} in {workload.name!r}.",
                        "Check the layer glob against the workload's layer names.")
    if not 0 < keep < 1:
        raise PlanError(f"Block pruning keeps a fraction strictly between 0 and 1 of the rows, not {keep!r}.",
                        "Give keep such as 0.5.")
    for layer in chosen:
        plan = plan.with_choice(layer.name, block_cols=block_cols,
                                block_rows=max(1, round(layer.out_channels * keep)))
    return plan


def block_mask(weight: torch.Tensor, block_cols: int, block_rows: int) -> torch.Tensor:
    """The 0/1 mask keeping, in each block of ``block_cols`` columns, the ``block_rows`` rows whose
    segment has the largest L2 norm (ties to the lower index)."""
    import torch

    rows, cols = weight.shape
    norms = weight.detach().reshape(rows, cols // block_cols, block_cols).norm(dim=2)
    best = torch.sort(-norms, dim=0, stable=True).indices[:block_rows]
    keep = torch.zeros_like(norms, dtype=torch.bool).scatter_(0, best, True)
    return keep[:, :, None].expand(-1, -1, block_cols).reshape(rows, cols).to(weight.dtype)


class BlockPrune(Transform):
    """Zero all but the strongest rows of each column block of a linear layer (``block_cols``, ``block_rows``)."""

    name = "block_prune"
    label = "block pruning"
    order = 2
    choice_type = BlockChoice
    option_name = "keep"
    option_help = "kept fractions of each column block's rows, strictly between 0 and 1 (blocks of 16 columns)"
    default_options = (0.75, 0.5, 0.25)
    offer_block_cols = 16
    """Columns per block of the search dimension (fixed here; `with_block_pruning` takes any block size)."""

    def check_option(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """The kept row counts of ``options`` for a linear layer whose width splits into blocks of 16."""
        if layer.kind is not OpKind.LINEAR or not has_module_weights(layer) or layer.kept_rows is not None or \
                layer.in_channels % self.offer_block_cols or layer.in_channels == self.offer_block_cols:
            return None
        counts = sorted({max(1, round(layer.out_channels * f)) for f in options} - {layer.out_channels}, reverse=True)
        if not counts:
            return None
        cols = self.offer_block_cols
        return Offer((layer.name,), (None, *({"block_cols": cols, "block_rows": k} for k in counts)),
                     ("dense", *(f"{k}/{layer.out_channels} rows per {cols}-col block" for k in counts)),
                     leanest=len(counts))

    def describe(self, choice: BlockChoice, before: Layer, after: Layer) -> str:
        return (f"{choice.block_rows}/{before.out_channels} rows kept per {choice.block_cols}-column block "
                "(zeros stored densely)")

    def problems(self, workload: Workload, choices: Mapping[str, BlockChoice]) -> list[Problem]:
        found: list[Problem] = []
        for name, choice in choices.items():
            layer = workload.layer(name)
            cols, rows = int(choice.block_cols or 0), int(choice.block_rows or 0)
            if layer.kind is not OpKind.LINEAR:
                found.append((f"Layer {name!r} is a {layer.kind.value} layer; block pruning prunes linear layers.",
                              "Use kernel patterns for convolutions."))
            elif layer.in_channels % cols:
                found.append((f"Layer {name!r}: blocks of {cols} columns do not divide its {layer.in_channels} "
                              f"input columns.", f"Choose block_cols dividing {layer.in_channels}."))
            elif cols == layer.in_channels:
                found.append((f"Layer {name!r}: one column block spanning all {cols} columns removes whole rows, "
                              f"which is a channel cut.",
                              "Cut the rows physically with out_channels (nn2hw.compress.with_cut), which dense "
                              "kernels run faster, or choose smaller blocks."))
            elif not rows < layer.out_channels:
                found.append((f"Layer {name!r}: keeping {rows} of its {layer.out_channels} rows per block prunes "
                              f"nothing.", f"Keep between 1 and {layer.out_channels - 1} rows per block."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, BlockChoice]) -> dict[str, dict[str, Any]]:
        return {name: {"kept_rows": choice.block_rows} for name, choice in choices.items()}

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, BlockChoice]) -> None:
        import torch

        from nn2hw.compress import _torch

        for name, choice in choices.items():
            linear = _torch.weight_module(model, name, (torch.nn.Linear,), "block_prune")
            assert choice.block_cols is not None and choice.block_rows is not None
            mask = block_mask(linear.weight, choice.block_cols, choice.block_rows)
            with torch.no_grad():
                linear.weight.mul_(mask)
            _torch.add_weight_parametrization(linear, _torch.WeightMask(mask))
            _torch.record_fields(linear, kept_rows=choice.block_rows)


TRANSFORMS.register(BlockPrune.name, BlockPrune())
