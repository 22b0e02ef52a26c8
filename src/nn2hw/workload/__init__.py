"""The workload IR (no torch) and its extractors (torch / ONNX, imported lazily)."""

from nn2hw.workload.layer import DEFAULT_BITS, CouplingGroup, Layer, OpKind, Workload

__all__ = ["DEFAULT_BITS", "CouplingGroup", "Layer", "OpKind", "Workload", "from_module", "from_onnx"]


def from_module(model, example_input, name=None, method="auto", dtype=None):
    """Extract the workload of a torch module (see ``nn2hw.workload.torch_extract.from_module``)."""
    from nn2hw.workload.torch_extract import from_module as _from_module

    return _from_module(model, example_input, name=name, method=method, dtype=dtype)


def from_onnx(path, name=None, input_shape=None):
    """Extract the workload of an ONNX file (see ``nn2hw.workload.onnx.from_onnx``)."""
    from nn2hw.workload.onnx import from_onnx as _from_onnx

    return _from_onnx(path, name=name, input_shape=input_shape)
