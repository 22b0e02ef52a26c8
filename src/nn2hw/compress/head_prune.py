"""Attention-head removal: keep the k heads of an attention block whose Q/K/V weights weigh most.

The query, key and value projections of one attention block meet in its two matmuls, so the
workload puts them in one coupling group whose ``unit`` is head_dim, pinned for ``channel_cut``
by "attention heads" (``Workload.coupling_groups``). This transform cuts exactly such a group by
whole heads: the plan sets ``heads`` (the heads kept) on each of Q, K and V; their output widths
become heads x head_dim, and ``Workload.with_changes`` carries that through the head splits, the
two matmuls (their groups = heads shrink, with their MACs), the scaling, mask add and softmax, the
head merge, into the output projection's input channels.

Torch side: a head's score is the sum of ``channel_cut``'s filter scores over its rows of Q, K and
V; the top-k heads (ties to the lower index) are kept in their order, and the shared slicing walk
(``_slicing.propagate_cut``) slices Q/K/V rows, biases and the output projection's columns. The
attention module's head count (``num_attention_heads``, Hugging Face's name, and ``all_head_size``
when it has one) is set to k, since its forward splits heads by it.

FFN width needs no transform of its own: the intermediate dense layer is a cuttable group of one
(its GELU follows it, the output dense reads it), so ``channel_cut`` (``with_cut``) cuts it.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw._checks import is_int
from nn2hw.compress._slicing import filter_scores, propagate_cut, top_filters
from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, check_int
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import Plan
from nn2hw.workload.layer import CouplingGroup, Layer, Workload

if TYPE_CHECKING:
    from torch import nn

HEADS_REASON = "(attention heads)"
"""How ``Workload.coupling_groups`` words the pin of a group that attention matmuls read by heads."""
HEAD_COUNT_ATTRS = ("num_attention_heads", "num_heads")
"""Attribute names an attention module's forward reads its head count from (Hugging Face, timm/torch)."""


@dataclass(frozen=True)
class HeadChoice:
    """``heads``: keep this many attention heads (set on the query, key and value projections of one block)."""

    heads: int | None = None

    def __post_init__(self) -> None:
        if self.heads == 0 and is_int(self.heads):
            raise PlanError("heads=0 would remove every head of the attention block, leaving its output "
                            "projection nothing to read.",
                            "Keep at least 1 head (heads >= 1), or leave heads unset to keep them all.")
        check_int("heads", self.heads, 1, fix="Keep at least 1 head.")


def is_attention_group(group: CouplingGroup) -> bool:
    """Whether ``group`` is the Q/K/V projections of an attention block: cut by whole heads, pinned
    by nothing but attention matmuls."""
    return group.unit > 1 and bool(group.layers) and bool(group.fixed_by) and \
        all(reason.endswith(HEADS_REASON) for reason in group.fixed_by)


def attention_groups(workload: Workload) -> tuple[CouplingGroup, ...]:
    """The attention blocks' Q/K/V groups, in order."""
    return tuple(g for g in workload.coupling_groups if is_attention_group(g))


def head_count(group: CouplingGroup) -> int:
    """Heads of an attention group now."""
    return group.channels // group.unit


def with_heads(plan: Plan, workload: Workload, heads: int, layers: str = "*") -> Plan:
    """``plan`` with every attention block one of whose Q/K/V projections matches the glob ``layers``
    keeping ``heads`` heads (set on all three)."""
    chosen = [g for g in attention_groups(workload) if any(fnmatch.fnmatchcase(n, layers) for n in g.layers)]
    if not chosen:
        raise PlanError(f"No attention block's query/key/value projection matches {layers!r} in {workload.name!r}.",
                        "Give a glob of Q/K/V layer names, e.g. 'encoder.layer.0.*' (`nn2hw analyze` lists them).")
    for group in chosen:
        for name in group.layers:
            plan = plan.with_choice(name, heads=heads)
    return plan


def _group_problem(workload: Workload, name: str) -> Problem | None:
    group = workload.group_of(name)
    if group is not None and name in group.layers and is_attention_group(group):
        return None
    return (f"Layer {name!r} is not a query/key/value projection of an attention block (no coupling group split "
            f"into heads defines its channels), so its heads cannot be removed.",
            "Set heads on the Q, K and V projections of one attention block "
            "(nn2hw.compress.with_heads(plan, workload, k, glob) does it); cut other widths with out_channels.")


class HeadPrune(Transform):
    """Remove whole attention heads: Q/K/V rows, the matmuls' heads and the output projection's columns (``heads``)."""

    name = "head_prune"
    label = "head removal"
    order = 0
    choice_type = HeadChoice
    option_name = "keep"
    option_help = "kept fractions of the heads, strictly between 0 and 1"
    default_options = (0.75, 0.5, 0.25)

    def check_option(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """The head counts of ``layer``'s attention block at the kept fractions (one dimension per block)."""
        group = workload.group_of(layer.name)
        if group is None or layer.name not in group.layers or not is_attention_group(group):
            return None
        now = head_count(group)
        counts = sorted({max(1, round(now * f)) for f in options} - {now}, reverse=True)
        if not counts:
            return None
        return Offer(group.layers, (None, *({"heads": k} for k in counts)),
                     (f"{now} heads", *(f"{k} heads" for k in counts)), leanest=len(counts))

    def describe(self, choice: HeadChoice, before: Layer, after: Layer) -> str:
        return f"{choice.heads} heads ({before.out_channels}->{after.out_channels} ch)"

    def problems(self, workload: Workload, choices: Mapping[str, HeadChoice]) -> list[Problem]:
        found = [p for p in (_group_problem(workload, name) for name in choices) if p is not None]
        if found:
            return found
        groups = {workload.group_of(name) for name in choices}
        for group in groups:
            assert group is not None
            now = head_count(group)
            named = {n: choices[n].heads for n in group.layers if n in choices}
            values = set(named.values())
            if len(named) < len(group.layers) or len(values) > 1:
                missing = [n for n in group.layers if n not in named]
                found.append((f"Head removal must cut the query, key and value projections of one block together "
                              f"(group {list(group.layers)}): "
                              + (f"{missing} have no heads" if missing else f"head counts differ: {named}") + ".",
                              "Give every projection of the block the same heads; nn2hw.compress.with_heads does it."))
            elif (values.pop() or 0) > now:
                found.append((f"The attention block of {group.layers[0]!r} has {now} heads; the plan keeps "
                              f"{named[group.layers[0]]}.", f"Keep between 1 and {now} heads."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, HeadChoice]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, choice in choices.items():
            group = workload.group_of(name)
            assert group is not None and choice.heads is not None
            out[name] = {"out_channels": choice.heads * group.unit}
        return out

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, HeadChoice]) -> None:
        import torch
        from torch import nn

        from nn2hw.compress import _torch

        kept: dict[str, torch.Tensor] = {}
        for group in dict.fromkeys(g for g in map(workload.group_of, choices) if g is not None):
            heads = choices[group.layers[0]].heads
            assert heads is not None
            if heads == head_count(group):
                continue
            modules = [_torch.weight_module(model, n, (nn.Linear,), transform="head_prune") for n in group.layers]
            scores = functools.reduce(operator.add, (filter_scores(m.weight) for m in modules))
            best = top_filters(scores.reshape(-1, group.unit).sum(dim=1), heads).cpu()
            idx = (best[:, None] * group.unit + torch.arange(group.unit)).flatten()
            kept.update(dict.fromkeys(group.layers, idx))
            _set_head_count(model, group, heads)
        if kept:
            propagate_cut(model, workload, kept)


def _set_head_count(model: nn.Module, group: CouplingGroup, heads: int) -> None:
    """Tell the attention module owning the group's projections its new head count."""
    parents = {name.rpartition(".")[0] for name in group.layers}
    owner = model.get_submodule(parents.pop()) if len(parents) == 1 else None
    attr = next((a for a in HEAD_COUNT_ATTRS if owner is not None and is_int(getattr(owner, a, None))), None)
    if owner is None or attr is None:
        raise PlanError(f"The projections {list(group.layers)} are not held by one attention module with a head "
                        f"count attribute ({' or '.join(HEAD_COUNT_ATTRS)}), so the forward's head split cannot be "
                        "told the new count.",
                        "Keep every head of this block, or give the attention module a num_attention_heads "
                        "attribute its forward splits heads by (as Hugging Face's BertSelfAttention does).")
    setattr(owner, attr, heads)
    if is_int(getattr(owner, "all_head_size", None)):
        owner.all_head_size = heads * group.unit  # type: ignore[assignment]  # torch types Module attributes as Tensor | Module


TRANSFORMS.register(HeadPrune.name, HeadPrune())
