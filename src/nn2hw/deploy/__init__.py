"""Deployment: the compressed network as a user runs it, and how it is timed.

- ``export_onnx`` (``nn2hw.api.export_bundle`` for a result bundle): an ONNX file with the plan's
  cuts as smaller tensors, masks baked in and exact int8 operators where the plan quantized to
  <= 8 bits, checked against torch;
- ``TorchRunner``: the ``nn2hw.measure.Runner`` of the ``cpu:torch`` runtime;
- ``kernel_layers``: a runtime's kernel names mapped to the workload's layers (fused kernels too).
"""

from __future__ import annotations

from nn2hw.deploy.export import ExportResult, export_onnx
from nn2hw.deploy.kernels import kernel_layers
from nn2hw.deploy.shapes import plan_input_shape
from nn2hw.deploy.torch_runner import TorchRunner

__all__ = ["ExportResult", "TorchRunner", "export_onnx", "kernel_layers", "plan_input_shape"]
