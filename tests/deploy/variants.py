"""Compressed variants of a zoo model shared by the deploy tests and benchmarks/cpu_compression.py."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nn2hw import zoo
from nn2hw.compress import with_patterns, with_quantization, with_uniform_cut
from nn2hw.plan import Plan
from nn2hw.workload import Workload, from_module


def zoo_case(name: str, dataset: str, shape: tuple[int, ...], pretrained: bool) -> tuple[nn.Module, Workload, Plan]:
    """A zoo model (eval), its workload at ``shape`` and an empty plan for it."""
    torch.manual_seed(0)
    model = zoo.build(name, dataset, pretrained=pretrained).eval()
    workload = from_module(model, torch.zeros(shape), name=name)
    return model, workload, Plan.for_workload(workload, name, dataset)


def cut(keep: float) -> Callable[[Plan, Workload, nn.Module], Plan]:
    """Keep ``keep`` of the channels of every cuttable coupling group."""
    def build(plan: Plan, workload: Workload, model: nn.Module) -> Plan:
        return with_uniform_cut(plan, workload, keep)

    return build


def patterns(plan: Plan, workload: Workload, model: nn.Module) -> Plan:
    """HotNAS kernel patterns (4 per layer, 3 of 9 weights zeroed) on every 3x3 conv: same shapes."""
    return with_patterns(plan, workload, "*", model=model)


def int8(plan: Plan, workload: Workload, model: nn.Module) -> Plan:
    """8-bit weights and activations (calibrated on a seeded batch) on every conv/linear layer."""
    batch = torch.randn((8, *workload.input_shape[1:]), generator=torch.Generator().manual_seed(5))
    return with_quantization(plan, workload, 8, act_bits=8, model=model, calibration=batch)


def base(plan: Plan, workload: Workload, model: nn.Module) -> Plan:
    return plan


VARIANTS: dict[str, Callable[[Plan, Workload, nn.Module], Plan]] = {
    "base fp32": base, "cut 50%": cut(0.5), "cut 25%": cut(0.75), "kernel patterns": patterns, "int8 w8a8": int8,
}
