"""Kernel expansion: K -> K + 2e with zero-padded weights and padding + e*dilation (HotNAS §2.5).

The old kernel sits in the centre of the new one and the ring(s) around it are zero, and the
padding grows so the output size is unchanged: at the start the layer computes exactly the same
function (HotNAS's ``ztNAS_modify_kernel_shape``). Fine-tuning can then use the larger receptive
field, which costs nothing on memory-bound layers (iDetect's I/O bottleneck, §2.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw._checks import is_int
from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, check_int
from nn2hw.errors import PlanError, Problem
from nn2hw.workload.layer import Layer, OpKind, Workload

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ExpandChoice:
    """``expand``: grow the kernel by 2 x expand (K -> K + 2e) with a zero ring and padding + e."""

    expand: int | None = None

    def __post_init__(self) -> None:
        check_int("expand", self.expand, 1, fix="Use expand=1 (K -> K+2), or leave it unset to keep the kernel.")


class KernelExpand(Transform):
    """Grow a conv kernel K -> K+2*expand with zero rings and padding +expand (function unchanged)."""

    name = "kernel_expand"
    label = "kernel expansion"
    order = 1
    choice_type = ExpandChoice
    option_name = "kernels"
    option_help = "odd kernel sizes >= 1 that may grow by 2"
    default_options = (1, 3)

    def check_option(self, value: Any) -> bool:
        return is_int(value) and value >= 1 and value % 2 == 1

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """K -> K+2 for square, non-grouped convs whose kernel size is one of ``options``."""
        if layer.kind is not OpKind.CONV or layer.kernel_h != layer.kernel_w or layer.kernel_h not in options \
                or layer.conv_type == "grouped":
            return None
        k = layer.kernel_h
        return Offer((layer.name,), (None, {"expand": 1}), (f"{k}x{k}", f"{k + 2}x{k + 2}"), leanest=0)

    def describe(self, choice: ExpandChoice, before: Layer, after: Layer) -> str:
        return f"{before.kernel_h}x{before.kernel_w}->{after.kernel_h}x{after.kernel_w}"

    def problems(self, workload: Workload, choices: Mapping[str, ExpandChoice]) -> list[Problem]:
        found = []
        for name in choices:
            layer = workload.layer(name)
            if layer.kind is not OpKind.CONV or layer.op.lower().endswith("1d"):
                found.append((f"Layer {name!r} is not a 2-D convolution; kernel expansion grows 2-D conv kernels.",
                              "Expand only nn.Conv2d layers."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, ExpandChoice]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, choice in choices.items():
            layer, e = workload.layer(name), choice.expand
            assert e is not None  # a selected choice sets it (plans drop None fields)
            out[name] = {"kernel_h": layer.kernel_h + 2 * e, "kernel_w": layer.kernel_w + 2 * e,
                         "pad_h": layer.pad_h + e * layer.dilation_h, "pad_w": layer.pad_w + e * layer.dilation_w}
        return out

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, ExpandChoice]) -> None:
        from torch import nn

        from nn2hw.compress import _torch

        for name, choice in choices.items():
            conv = _torch.weight_module(model, name, (nn.Conv2d,), "kernel_expand")
            if isinstance(conv.padding, str):
                raise PlanError(f"Conv {name!r} uses padding={conv.padding!r}; kernel expansion needs numeric "
                                f"padding to grow it.", "Give the conv explicit integer padding.")
            e = choice.expand
            assert e is not None  # a selected choice sets it (plans drop None fields)
            _torch.derive(conv, "weight", _torch.Pad((e, e, e, e)))
            kh, kw = conv.kernel_size
            conv.kernel_size = (kh + 2 * e, kw + 2 * e)
            conv.padding = (conv.padding[0] + e * conv.dilation[0], conv.padding[1] + e * conv.dilation[1])


TRANSFORMS.register(KernelExpand.name, KernelExpand())
