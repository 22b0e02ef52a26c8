"""Channel cut: keep the top-k output filters of a conv/linear layer by L2 norm, coupling-aware.

The score of a filter is HotNAS's (``ztNAS_cut_channel``): the sum over its input channels of
the L2 norm of each kernel (for a linear layer, the sum of absolute weights). The cut follows
the workload graph, not a separate one: the kept indices flow through BatchNorm, LayerNorm over
the channel axis (a Transformer's hidden width: its statistics then cover the kept channels, as the
workload describes it), activations, pools, residual adds and depthwise convs (which are cut with
their producer), into the input channels of every consumer conv/linear, through flattens (each
channel's H*W features) and concats (at the input's channel offset). Layers coupled by a residual
add or an element-wise multiply (one ``Workload.coupling_groups`` group) are cut together, by one
set of indices chosen on their summed scores; a group pinned by its ``fixed_by`` reasons (network
output, option-A shortcut pad, an op nn2hw does not understand, a stored constant across its channels
such as a position embedding) is refused with those reasons.

The space offers a group only where both sides can build its cut: nothing ``rewritten_problems``
refuses (a GroupNorm, a functional or grouped conv in its way), and no hidden width (a group read
by a LayerNorm: a Transformer's residual stream). A model's code may read a hidden width where the
workload does not see it, a reshape sized by it (``reshape(B, N, C)`` after attention, ``C`` a stored
number), so a search would propose cuts the model cannot run. A plan
may still cut one (``with_cut``): the LayerNorms are sliced, and the cut model is run once on zeros,
a model that no longer runs being a ``PlanError`` naming the cause.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw._checks import is_int
from nn2hw.compress._slicing import (
    LAYER_NORM_OPS,
    PARAM_OPS,
    SLICEABLE_PARAM_OPS,
    check_runs,
    filter_scores,
    normalizes_channels_only,
    propagate_cut,
    top_filters,
)
from nn2hw.compress.base import FUNCTIONAL_OPS, TRANSFORMS, Offer, SpaceContext, Transform, check_int
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import Plan
from nn2hw.workload.layer import CouplingGroup, Layer, OpKind, Workload

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class CutChoice:
    """``out_channels``: keep this many output filters (with every layer of its coupling group)."""

    out_channels: int | None = None

    def __post_init__(self) -> None:
        k = self.out_channels
        if k == 0 and is_int(k):
            raise PlanError("out_channels=0 would leave the layer with zero channels.",
                            "Keep at least 1 output channel (or leave out_channels unset to keep them all).")
        check_int("out_channels", k, 1, fix="Keep at least 1 output channel.")


def cut_groups(workload: Workload, choices: Mapping[str, CutChoice]) -> dict[CouplingGroup, int]:
    """The coupling groups the choices really cut (narrower than now), with their new width."""
    groups: dict[CouplingGroup, int] = {}
    for name, choice in choices.items():
        layer = workload.layer(name)
        group = workload.group_of(name)
        k = choice.out_channels
        if group is not None and name in group.layers and k is not None and k < layer.out_channels:
            groups.setdefault(group, k)
    return groups


def with_cut(plan: Plan, workload: Workload, layer: str, out_channels: int) -> Plan:
    """``plan`` with ``layer`` cut to ``out_channels`` together with every layer of its coupling group."""
    group = workload.group_of(layer)
    for name in group.layers if group is not None and layer in group.layers else (layer,):
        plan = plan.with_choice(name, out_channels=out_channels)
    return plan


def with_uniform_cut(plan: Plan, workload: Workload, keep: float) -> Plan:
    """``plan`` with every cuttable coupling group cut to ``keep`` of its channels (at least one):
    the "cut every layer by half" network of latency studies."""
    if not 0 < keep <= 1:
        raise PlanError(f"A uniform cut keeps a fraction in (0, 1] of the channels, not {keep!r}.",
                        "Give keep such as 0.5.")
    for group in workload.coupling_groups:
        width = max(1, round(group.channels * keep))
        if group.cuttable and width < group.channels:
            plan = with_cut(plan, workload, group.layers[0], width)
    return plan


class ChannelCut(Transform):
    """Keep the top-k output filters by L2 norm; coupled layers are cut together (``out_channels``)."""

    name = "channel_cut"
    label = "channel cut"
    order = 0
    choice_type = CutChoice
    option_name = "keep"
    option_help = "kept fractions strictly between 0 and 1"
    default_options = (0.875, 0.75, 0.625, 0.5)

    def check_option(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """The widths of ``layer``'s coupling group at the kept fractions (the space keeps one per group)."""
        group = workload.group_of(layer.name)
        if group is None or not group.cuttable:
            return None
        widths = sorted({max(1, round(group.channels * f)) for f in options} - {group.channels}, reverse=True)
        if not widths or not self._buildable(workload, group, widths[-1]):
            return None
        return Offer(group.layers, (None, *({"out_channels": w} for w in widths)),
                     (f"{group.channels} ch", *(f"{w} ch" for w in widths)), leanest=len(widths),
                     unchanged={"out_channels": group.channels})

    def _buildable(self, workload: Workload, group: CouplingGroup, width: int) -> bool:
        """Whether cutting ``group`` to ``width`` is carried by the workload and sliceable on the torch
        side (every narrower width reaches the same ops) and is not a hidden width (module docstring):
        the space offers nothing either side refuses."""
        if hidden_width_norms(workload, group):
            return False
        try:
            after = workload.with_changes({name: {"out_channels": width} for name in group.layers})
        except PlanError:
            return False
        return not self.rewritten_problems(workload, after, {})

    def describe(self, choice: CutChoice, before: Layer, after: Layer) -> str:
        return f"{before.out_channels}->{after.out_channels} ch"

    def problems(self, workload: Workload, choices: Mapping[str, CutChoice]) -> list[Problem]:
        found: list[Problem] = []
        for name, choice in choices.items():
            assert choice.out_channels is not None  # a selected choice sets it (plans drop None fields)
            layer, k = workload.layer(name), int(choice.out_channels)
            group = workload.group_of(name)
            if k > layer.out_channels:
                found.append((f"Layer {name!r}: a cut to {k} channels is above its width of {layer.out_channels}.",
                              f"Choose out_channels between 1 and {layer.out_channels}."))
            elif k == layer.out_channels:
                continue  # keeping every channel is always allowed
            elif group is None or name not in group.layers:
                producer = group.layers if group is not None else ()
                found.append((f"Layer {name!r} ({layer.conv_type or layer.kind.value}) does not define its own "
                              f"channels: they follow its input.",
                              f"Cut the layer(s) that feed it instead: {', '.join(producer) or 'none can be cut'}."))
            elif layer.kind is OpKind.CONV and layer.groups > 1:
                found.append((f"Layer {name!r} is a grouped conv (groups={layer.groups}); nn2hw cuts standard "
                              f"convs, linear layers and the depthwise convs that follow them.",
                              "Leave this layer's width unchanged."))
            elif not group.cuttable:
                found.append((f"Layer {name!r} cannot be cut: its channels are fixed by "
                              f"{', '.join(group.fixed_by)} (coupling group {list(group.layers)}).",
                              "Leave this layer's width unchanged."))
        if found:
            return found
        for group, width in cut_groups(workload, choices).items():
            named = {n: choices[n].out_channels for n in group.layers if n in choices}
            if len(named) < len(group.layers) or len(set(named.values())) > 1:
                missing = [n for n in group.layers if n not in named]
                found.append((
                    f"The cut breaks coupling group {list(group.layers)} (their outputs are added or multiplied "
                    f"together): " + (f"{missing} are not cut" if missing else f"widths differ: {named}") + ".",
                    f"Give every layer of the group the same out_channels (e.g. {width}); "
                    f"nn2hw.compress.with_cut(plan, workload, layer, {width}) does it.",
                ))
        return found

    def rewritten_problems(self, before: Workload, after: Workload, choices: Mapping[str, CutChoice]) -> list[Problem]:
        """Ops whose input channels the cut changes but that the torch side cannot slice (a cut the
        workload cannot carry at all fails in ``with_changes``, which the pipeline reports)."""
        found = []
        for old in before.layers:
            changed = after.layer(old.name).in_channels != old.in_channels
            if not changed or old.kind is OpKind.INPUT:
                continue
            if old.op in FUNCTIONAL_OPS or (old.op in PARAM_OPS and old.op not in SLICEABLE_PARAM_OPS) or \
                    not normalizes_channels_only(old):
                found.append((f"The cut changes the input channels of {old.name!r} ({old.op}), whose parameters "
                              f"nn2hw cannot slice.",
                              "Leave the layers feeding it unchanged, or use nn.Conv2d / nn.Linear / "
                              "nn.BatchNorm2d modules there."))
            elif old.kind is OpKind.CONV and old.groups > 1 and old.conv_type != "depthwise":
                found.append((f"The cut changes the input channels of grouped conv {old.name!r} "
                              f"(groups={old.groups}).", "Leave the layers feeding it unchanged."))
            elif old.kind is OpKind.CONCAT and sum(before.layer(i).out_channels for i in old.inputs) != \
                    old.out_channels:
                found.append((f"Concat {old.name!r} reads one tensor twice; nn2hw cannot place the cut's offsets.",
                              "Leave the layers feeding it unchanged."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, CutChoice]) -> dict[str, dict[str, Any]]:
        return {name: {"out_channels": choice.out_channels} for name, choice in choices.items()}

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, CutChoice]) -> None:
        from nn2hw.compress import _torch

        kept_by_layer = {}
        norms: list[str] = []
        for group, width in cut_groups(workload, choices).items():
            modules = [_torch.weight_module(model, n, transform="channel_cut") for n in group.layers]
            scores = functools.reduce(operator.add, (filter_scores(m.weight) for m in modules))
            idx = top_filters(scores, width).cpu()  # index any device
            kept_by_layer.update(dict.fromkeys(group.layers, idx))
            norms += hidden_width_norms(workload, group)
        if kept_by_layer:
            propagate_cut(model, workload, kept_by_layer)
        if norms:
            check_runs(model, workload, norms[0])


def hidden_width_norms(workload: Workload, group: CouplingGroup) -> list[str]:
    """The LayerNorms that read ``group``'s channels: non-empty for a hidden width."""
    return [name for name in group.followers if workload.layer(name).op in LAYER_NORM_OPS]


TRANSFORMS.register(ChannelCut.name, ChannelCut())
