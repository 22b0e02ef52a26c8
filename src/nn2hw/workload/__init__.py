"""The workload IR (no torch) and its extractors (torch / ONNX, imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nn2hw.workload.layer import DEFAULT_BITS, CouplingGroup, Layer, OpKind, Workload

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["DEFAULT_BITS", "CouplingGroup", "Layer", "OpKind", "Workload", "from_module", "from_onnx"]


def from_module(model: nn.Module, example_input: torch.Tensor | Sequence[int] | tuple[torch.Tensor, ...],
                name: str | None = None, method: str = "auto", dtype: torch.dtype | None = None) -> Workload:
    """Extract the workload of a torch module (see ``nn2hw.workload.torch_extract.from_module``)."""
    from nn2hw.workload.torch_extract import from_module as _from_module

    return _from_module(model, example_input, name=name, method=method, dtype=dtype)


def from_onnx(path: str | Path, name: str | None = None, input_shape: Sequence[int] | None = None) -> Workload:
    """Extract the workload of an ONNX file (see ``nn2hw.workload.onnx.from_onnx``)."""
    from nn2hw.workload.onnx import from_onnx as _from_onnx

    return _from_onnx(path, name=name, input_shape=input_shape)
