"""Compression transforms: channel cut, kernel pattern pruning, kernel expansion, quantization.

Each transform is registered in ``TRANSFORMS`` and has a pure workload side (how its choice
changes ``Layer`` fields, no torch) and a torch side (how it rewrites a model, torch imported
only then). ``nn2hw.plan.Plan`` applies them in their ``order``; see ``docs/compression.md``.
"""

from __future__ import annotations

from nn2hw.compress.base import Problem, Transform
from nn2hw.compress.channel_cut import ChannelCut
from nn2hw.compress.kernel_expand import KernelExpand
from nn2hw.compress.kernel_pattern import KernelPattern
from nn2hw.compress.quantize import Quantize
from nn2hw.registry import Registry

TRANSFORMS: Registry[Transform] = Registry("transform")
for _transform in (ChannelCut(), KernelExpand(), KernelPattern(), Quantize()):
    TRANSFORMS.register(_transform.name, _transform)


def ordered_transforms() -> list[Transform]:
    """The registered transforms in application order."""
    return sorted((t for _, t in TRANSFORMS.items()), key=lambda t: t.order)


__all__ = ["TRANSFORMS", "Problem", "Transform", "ordered_transforms"]
