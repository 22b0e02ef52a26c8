"""Slicing a torch model along the workload graph: what every transform that removes channels shares.

A transform that physically removes output channels (``channel_cut``: filters; ``head_prune``:
whole attention heads) scores them here (``filter_scores``, ``top_filters``) and hands the kept
indices of the layers it cuts to ``propagate_cut``, which walks the workload in topological order
and slices every module the cut reaches: BatchNorm/InstanceNorm/PReLU parameters, a LayerNorm over the
channel axis (its scale and shift at the kept channels, its statistics then over the kept channels only:
the network the workload describes), depthwise convs, the input channels of consumer convs and
linears, through flattens, concats and, for heads, the attention matmuls (whose heads follow their
operands'). Every layer of a coupling group gets the same kept indices, so a residual stream keeps
one set of channels in every layer that writes or reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nn2hw.errors import PlanError
from nn2hw.workload.layer import Layer, OpKind, Workload

if TYPE_CHECKING:
    import torch
    from torch import nn

SLICEABLE_PARAM_OPS = frozenset({"BatchNorm1d", "BatchNorm2d", "InstanceNorm1d", "InstanceNorm2d", "PReLU",
                                 "LayerNorm"})
"""Module ops with per-channel parameters the cut can slice (other parameter-free ops just pass); a
LayerNorm only where it normalizes over the channel axis alone (``normalizes_channels_only``)."""
PARAM_OPS = frozenset({"GroupNorm", "LayerNorm", "batch_norm", "layer_norm", "group_norm", "instance_norm",
                       "prelu"}) | SLICEABLE_PARAM_OPS
"""Ops with per-channel parameters (those outside ``SLICEABLE_PARAM_OPS`` stop a cut)."""
LAYER_NORM_OPS = frozenset({"LayerNorm", "layer_norm"})
"""Layer normalization, module or function: what reads a Transformer's hidden width."""


def normalizes_channels_only(layer: Layer) -> bool:
    """Whether a LayerNorm's normalized axes can be its channels alone: the channel axis is the last
    one (a Transformer's hidden width, channels-last maps). ``nn.LayerNorm([C, H, W])`` on an NCHW
    map also normalizes over space, so its parameters cannot be cut by channels."""
    return layer.op != "LayerNorm" or (bool(layer.out_shape) and layer.channel_axes == (len(layer.out_shape) - 1,))


def filter_scores(weight: torch.Tensor) -> torch.Tensor:
    """Per output filter: the sum over inputs of each kernel's L2 norm (|w| summed for a linear layer)."""
    return weight.detach().reshape(weight.shape[0], weight.shape[1], -1).norm(dim=2).sum(dim=1)


def top_filters(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest scores, ties to the lower index, returned in ascending order."""
    import torch

    order = torch.sort(-scores, stable=True).indices[:k]
    return torch.sort(order).values


def _kept_after(layer: Layer, srcs: list[Layer], kept: dict[str, Any]) -> Any:
    """Kept output-channel indices of a non-cut layer, from those of its inputs (None: all kept)."""
    import torch

    ins = [kept.get(s.name) for s in srcs]
    if all(i is None for i in ins):
        return None
    if layer.concat_along_channels:
        parts, offset = [], 0
        for src, idx in zip(srcs, ins):
            parts.append((idx if idx is not None else torch.arange(src.out_channels)) + offset)
            offset += src.out_channels
        return torch.cat(parts)
    if layer.kind is OpKind.MATMUL:
        return _matmul_kept(layer, srcs, ins)
    primary = next((k for s, k in zip(srcs, ins) if s.out_channels == layer.in_channels and k is not None), None)
    if layer.kind is OpKind.RESHAPE or layer.conv_type == "depthwise":
        if primary is None:  # no input carries the channels this layer reads
            raise _cannot_carry(layer)
        if layer.kind is OpKind.RESHAPE:
            area = layer.channel_factor  # each channel's H*W features after a flatten, 1 after a transpose
            return (primary[:, None] * area + torch.arange(area)).flatten()
        multiplier = layer.out_channels // layer.in_channels
        return (primary[:, None] * multiplier + torch.arange(multiplier)).flatten()
    if layer.is_compute:
        return None  # a consumer: its input shrinks, its output does not
    if layer.keeps_channels:
        return primary
    raise _cannot_carry(layer)


def _matmul_kept(layer: Layer, srcs: list[Layer], ins: list[Any]) -> Any:
    """Kept output channels of an attention matmul whose operands lost whole heads: the kept heads
    (read off the first cut operand, channels head-major) times the output's channels per head."""
    import torch

    heads = layer.groups
    src, idx = next((s, i) for s, i in zip(srcs, ins) if i is not None)
    per_in, per_out = src.out_channels // heads, layer.out_channels // heads
    if heads == 1 or len(idx) % per_in or not torch.equal(idx.reshape(-1, per_in) % per_in,
                                                          torch.arange(per_in).expand(len(idx) // per_in, -1)):
        raise _cannot_carry(layer)
    kept_heads = idx.reshape(-1, per_in)[:, 0] // per_in
    return (kept_heads[:, None] * per_out + torch.arange(per_out)).flatten()


def _cannot_carry(layer: Layer) -> PlanError:
    return PlanError(f"The cut reaches {layer.name!r} ({layer.op}), which nn2hw cannot carry a channel cut through.",
                     "Leave the layers feeding it unchanged.")


def propagate_cut(model: nn.Module, workload: Workload, cut: Mapping[str, torch.Tensor]) -> None:
    """Slice every module the cut reaches, walking the workload graph in topological order.

    ``cut`` maps the cut conv/linear layers to their kept output indices. Each layer's kept
    output indices (None when all are kept) are derived from its inputs' and drive the edits.
    """
    kept: dict[str, Any] = {}
    for layer in workload.layers:
        srcs = [workload.layer(i) for i in layer.inputs]
        in_kept = next((kept[s.name] for s in srcs if kept.get(s.name) is not None), None)
        out_kept = cut.get(layer.name)
        if out_kept is None and layer.kind is not OpKind.INPUT:
            out_kept = _kept_after(layer, srcs, kept)
        kept[layer.name] = out_kept
        if in_kept is None and out_kept is None:
            continue
        if layer.kind in (OpKind.CONV, OpKind.LINEAR):
            _slice_compute(model, layer, in_kept, out_kept)
        elif layer.op in SLICEABLE_PARAM_OPS:
            _slice_channel_params(model, layer, in_kept)


def _slice_compute(model: nn.Module, layer: Layer, in_kept: Any, out_kept: Any) -> None:
    from torch import nn

    from nn2hw.compress import _torch

    module = _torch.weight_module(model, layer.name, transform="channel_cut")
    depthwise = layer.conv_type == "depthwise"
    steps = []
    if out_kept is not None:
        steps.append(_torch.take(0, out_kept))
        if module.bias is not None:
            _torch.derive(module, "bias", _torch.take(0, out_kept))
    if in_kept is not None and not depthwise:
        steps.append(_torch.take(1, in_kept))
    _torch.derive(module, "weight", *steps)
    weight = module.weight
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = weight.shape[0], weight.shape[1]
        return
    module.out_channels = weight.shape[0]
    if depthwise:
        module.in_channels = module.groups = len(in_kept)
    else:
        module.in_channels = weight.shape[1]


def _slice_channel_params(model: nn.Module, layer: Layer, in_kept: Any) -> None:
    """Slice the per-channel parameters and buffers of a BatchNorm / InstanceNorm / LayerNorm / PReLU module."""
    from torch import nn

    from nn2hw.compress import _torch

    try:
        module = model.get_submodule(layer.name)
    except AttributeError:
        return  # a functional op of the same kind without parameters
    if type(module).__name__ != layer.op:
        return
    if isinstance(module, nn.LayerNorm):
        _slice_layer_norm(module, layer, in_kept)
        return
    if isinstance(module, nn.PReLU):
        if module.num_parameters > 1:
            _torch.derive(module, "weight", _torch.take(0, in_kept))
            module.num_parameters = len(in_kept)
        return
    for pname in ("weight", "bias"):
        if getattr(module, pname, None) is not None:
            _torch.derive(module, pname, _torch.take(0, in_kept))
    for bname in ("running_mean", "running_var"):
        if getattr(module, bname, None) is not None:
            _torch.set_buffer(module, bname, getattr(module, bname)[in_kept])
    module.num_features = len(in_kept)  # type: ignore[assignment]  # torch types Module attributes as Tensor | Module


def _slice_layer_norm(module: nn.LayerNorm, layer: Layer, in_kept: Any) -> None:
    """A LayerNorm over the channels only: scale and shift at the kept channels, ``normalized_shape``
    the kept count (its mean and variance are then over the kept channels)."""
    from nn2hw.compress import _torch

    if tuple(module.normalized_shape) != (layer.in_channels,):
        raise PlanError(f"The cut reaches LayerNorm {layer.name!r}, which normalizes over "
                        f"{list(module.normalized_shape)}, not over its {layer.in_channels} channels alone; "
                        "nn2hw cannot cut its parameters by channel.",
                        "Leave the layers feeding it unchanged (exclude them in the space file).")
    for pname in ("weight", "bias"):
        if getattr(module, pname, None) is not None:
            _torch.derive(module, pname, _torch.take(0, in_kept))
    module.normalized_shape = (len(in_kept),)


def check_runs(model: nn.Module, workload: Workload, norm: str) -> None:
    """Run the cut model once (eval mode, no gradients) on zeros of the workload's inputs: a cut
    through a hidden width (LayerNorm ``norm`` reads it) can meet code the workload does not see, and
    a model that no longer runs is a ``PlanError`` here rather than at its first use."""
    import torch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = [torch.zeros(layer.out_shape, dtype=getattr(torch, layer.dtype), device=device)
              for layer in workload.inputs]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    except RuntimeError as exc:
        raise PlanError(f"The channel cut through the hidden width that {norm!r} normalizes leaves a model that "
                        f"does not run ({str(exc).splitlines()[0]}): its code reads that width outside the "
                        f"modules nn2hw slices, e.g. a reshape sized by it.",
                        "Leave that width unchanged; cut the FFN widths or heads instead.") from None
    finally:
        model.train(training)
