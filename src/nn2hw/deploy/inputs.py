"""The inputs a deployed network is checked and timed on: seeded standard-normal floats for images,
seeded integer ids in ``[0, ID_RANGE)`` for token ids (valid for any embedding table of that size,
as ``nn2hw.measure``'s ONNX Runtime runner draws them). The element type comes from the workload's
input layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from nn2hw.measure.onnxrt import ID_RANGE
from nn2hw.workload import OpKind

if TYPE_CHECKING:
    from nn2hw.workload import Workload


def input_dtype(workload: Workload | None) -> torch.dtype:
    """The element type of the workload's (first) input: float32 unless it records another."""
    first = next((layer for layer in workload.layers if layer.kind is OpKind.INPUT), None) if workload else None
    if first is None or not first.dtype:
        return torch.float32
    return getattr(torch, first.dtype, torch.float32)


def example_input(shape: Sequence[int], dtype: torch.dtype, generator: torch.Generator | None = None) -> torch.Tensor:
    """One seeded input of ``shape``: standard normal for a float type, ids in [0, ID_RANGE) otherwise."""
    if dtype.is_floating_point:
        return torch.randn(tuple(shape), generator=generator, dtype=dtype)
    return torch.randint(0, ID_RANGE, tuple(shape), generator=generator, dtype=dtype)
