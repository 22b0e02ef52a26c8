"""Models and example plans of the built-in transforms, shared by the transform, plan and bundle tests.

A new transform is enrolled by the conformance suite (``nn2hw.testing.TransformContract``); an
example here also runs it on zoo models, alone and with the others."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nn2hw import zoo
from nn2hw.compress import with_cut, with_patterns, with_quantization
from nn2hw.compress.kernel_pattern import has_library, library_size
from nn2hw.plan import Plan
from nn2hw.workload import Workload, from_module
from tests.compress.nets import ConcatNet, HookOnlyNet, MiniMobileNetV2
from tests.workload.nets import MobileLike, TinyResNet

torch.set_num_threads(1)  # tiny convs on a shared 2-core machine run ~15x faster without torch's thread pool


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with random BatchNorm affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return randomized(factory())

    return build


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "tiny_resnet": (_seeded(TinyResNet), (1, 3, 16, 16)),
    "mobile_like": (_seeded(MobileLike), (2, 3, 16, 16)),
    "mini_mobilenet_v2": (_seeded(MiniMobileNetV2), (1, 3, 16, 16)),
    "concat_net": (_seeded(ConcatNet), (1, 3, 8, 8)),
    "hook_only_net": (_seeded(HookOnlyNet), (1, 3, 8, 8)),
    "resnet20": (_seeded(lambda: zoo.build("resnet20", "cifar10")), (1, 3, 32, 32)),
    "mobilenetv2_fmnist": (_seeded(lambda: zoo.build("mobilenetv2_fmnist", "fashion-mnist")), (1, 1, 28, 28)),
    "mobilenet_v2": (_seeded(lambda: zoo.build("mobilenet_v2", "imagenet")), (1, 3, 224, 224)),
}


def model_case(name: str) -> tuple[nn.Module, torch.Tensor, Workload]:
    """A fresh model, a seeded example input and its workload."""
    factory, shape = MODELS[name]
    model = factory()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    return model, x, from_module(model, x, name=name)


def cut_everything(plan: Plan, workload: Workload) -> Plan:
    """Halve every cuttable coupling group."""
    for group in workload.coupling_groups:
        if group.cuttable and group.channels >= 2:
            plan = with_cut(plan, workload, group.layers[0], group.channels // 2)
    return plan


def expand_3x3(plan: Plan, workload: Workload) -> Plan:
    """Grow every 3x3 2-D conv to 5x5."""
    for layer in workload.compute_layers:
        if layer.kind.value == "conv" and layer.kernel_h == 3 and not layer.op.endswith("1d"):
            plan = plan.with_choice(layer.name, expand=1)
    return plan


def prune_patterns(plan: Plan, workload: Workload, model: nn.Module) -> Plan:
    """Prune every conv with a library to its 4 most popular patterns."""
    return with_patterns(plan, workload, "*", model=model)


def quantize_all(plan: Plan, workload: Workload) -> Plan:
    """6-bit weights everywhere, 8-bit activations on the first compute layer."""
    plan = with_quantization(plan, workload, 6)
    return plan.with_choice(workload.compute_layers[0].name, act_bits=8)


def everything(plan: Plan, workload: Workload, model: nn.Module) -> Plan:
    """Cut, expand the first 3x3 conv, pattern-prune every library conv (5x5 ids on it), quantize."""
    plan = cut_everything(plan, workload)
    first = next(l for l in workload.compute_layers if l.kernel_h == 3)
    plan = plan.with_choice(first.name, expand=1)
    for layer in workload.compute_layers:
        if layer.kind.value == "conv" and has_library(layer.kernel_h, layer.kernel_w):
            k = layer.kernel_h + (2 if layer.name == first.name else 0)
            size = library_size(k)
            plan = plan.with_choice(layer.name, patterns=(0, size // 3, size // 2, size - 1))
    return quantize_all(plan, workload)


EXAMPLES: dict[str, Callable[[Plan, Workload, nn.Module], Plan]] = {
    "channel_cut": lambda p, w, m: cut_everything(p, w),
    "kernel_expand": lambda p, w, m: expand_3x3(p, w),
    "kernel_pattern": prune_patterns,
    "quantize": lambda p, w, m: quantize_all(p, w),
}
