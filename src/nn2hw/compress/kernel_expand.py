"""Kernel expansion: K -> K + 2e with zero-padded weights and padding + e*dilation (HotNAS §2.5).

The old kernel sits in the centre of the new one and the ring(s) around it are zero, and the
padding grows so the output size is unchanged: at the start the layer computes exactly the same
function (HotNAS's ``ztNAS_modify_kernel_shape``). Fine-tuning can then use the larger receptive
field, which costs nothing on memory-bound layers (iDetect's I/O bottleneck, §2.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nn2hw.compress.base import Problem, Transform
from nn2hw.workload.layer import OpKind, Workload

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.plan import LayerChoice


class KernelExpand(Transform):
    name = "kernel_expand"
    fields = ("expand",)
    order = 1
    summary = "grow a conv kernel K -> K+2*expand with zero rings and padding +expand (function unchanged)"

    def problems(self, workload: Workload, choices: Mapping[str, LayerChoice]) -> list[Problem]:
        found = []
        for name in choices:
            layer = workload.layer(name)
            if layer.kind is not OpKind.CONV or layer.op.lower().endswith("1d"):
                found.append((f"Layer {name!r} is not a 2-D convolution; kernel expansion grows 2-D conv kernels.",
                              "Expand only nn.Conv2d layers."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, LayerChoice]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, choice in choices.items():
            layer, e = workload.layer(name), choice.expand
            out[name] = {"kernel_h": layer.kernel_h + 2 * e, "kernel_w": layer.kernel_w + 2 * e,
                         "pad_h": layer.pad_h + e * layer.dilation_h, "pad_w": layer.pad_w + e * layer.dilation_w}
        return out

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, LayerChoice]) -> None:
        from torch import nn

        from nn2hw.compress import _torch
        from nn2hw.errors import PlanError

        for name, choice in choices.items():
            conv = _torch.weight_module(model, name, (nn.Conv2d,), "kernel_expand")
            if isinstance(conv.padding, str):
                raise PlanError(f"Conv {name!r} uses padding={conv.padding!r}; kernel expansion needs numeric "
                                f"padding to grow it.", "Give the conv explicit integer padding.")
            e = choice.expand
            _torch.set_weight(conv, nn.functional.pad(conv.weight.detach(), (e, e, e, e)))
            kh, kw = conv.kernel_size
            conv.kernel_size = (kh + 2 * e, kw + 2 * e)
            conv.padding = (conv.padding[0] + e * conv.dilation[0], conv.padding[1] + e * conv.dilation[1])
