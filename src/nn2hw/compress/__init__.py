"""Compression transforms: channel cut, attention-head removal, kernel expansion, kernel pattern pruning,
quantization, and the crossbar fine-tuning recipes (polarization, variation-aware training).

Each transform is one module that registers itself in ``TRANSFORMS`` and owns its technique
(plan fields and their checks, search dimension, workload side, torch side, report wording; see
``nn2hw.compress.base``). ``apply_plan`` / ``validate_plan`` run the registered transforms in
their order on a workload (no torch) or a model; see ``docs/compression.md``.
"""

from __future__ import annotations

from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, ordered_transforms
from nn2hw.compress.block_prune import with_block_pruning
from nn2hw.compress.channel_cut import with_cut, with_uniform_cut
from nn2hw.compress.crossbar import with_noise_training, with_polarization
from nn2hw.compress.head_prune import with_heads
from nn2hw.compress.kernel_pattern import with_patterns
from nn2hw.compress.layer_drop import with_dropped_blocks
from nn2hw.compress.pipeline import apply_plan, plan_input, plan_problems, transforms_of, validate_plan
from nn2hw.compress.quantize import with_quantization

__all__ = ["TRANSFORMS", "Offer", "SpaceContext", "Transform", "apply_plan", "ordered_transforms", "plan_input",
           "plan_problems", "transforms_of", "validate_plan", "with_block_pruning", "with_cut", "with_dropped_blocks",
           "with_heads", "with_noise_training",
           "with_patterns", "with_polarization", "with_quantization", "with_uniform_cut"]
