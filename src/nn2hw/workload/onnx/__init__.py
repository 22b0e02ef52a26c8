"""Extract a ``Workload`` from an ONNX file.

Three steps, one module each: ``load`` (load, ``onnx.checker``, static input shapes with a
dynamic batch read as 1, ``onnx.shape_inference``), ``fold`` (evaluate the shape arithmetic
exporters leave, when an activation is still unsized) and ``read`` (one layer per node that
carries activations, through the classifier the torch extractors use).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nn2hw.errors import ModelError
from nn2hw.workload._classify import features_last_inputs
from nn2hw.workload.layer import Workload
from nn2hw.workload.onnx.fold import MAX_FOLDS, fold_shape_arithmetic
from nn2hw.workload.onnx.load import fix_input_shapes, graph_inputs, import_onnx, infer_shapes, load
from nn2hw.workload.onnx.read import Reader

__all__ = ["from_onnx"]


def from_onnx(path: str | Path, name: str | None = None, input_shape: Sequence[int] | None = None) -> Workload:
    """The workload of the ONNX model in ``path``.

    ``name`` defaults to the file's stem. Input shapes must be static except for the batch, read
    as 1; ``input_shape`` (single-input models) fixes dynamic sizes instead. Raises
    ``ModelError`` with the cause and a fix for a missing, unreadable, invalid or dynamic file.
    """
    onnx = import_onnx()
    path = Path(path)
    model = load(onnx, path)
    fix_input_shapes(model, path, input_shape)
    model = infer_shapes(onnx, model, path)
    for _ in range(MAX_FOLDS):
        if not fold_shape_arithmetic(onnx, model):
            break
        model = infer_shapes(onnx, model, path)
    reader = Reader(onnx, model, path)
    inputs = graph_inputs(model)
    for value in inputs:
        reader.add_input(value)
    for node in model.graph.node:
        reader.read(node)
    if len(reader.layers) == len(inputs):
        raise ModelError(f"No operation of {path} reads its inputs {[v.name for v in inputs]}.",
                         "Export the model's computation, not only its constants.")
    outputs = tuple(dict.fromkeys(reader.producer[o.name] for o in model.graph.output if o.name in reader.producer))
    return Workload(name=name or path.stem, layers=features_last_inputs(reader.layers),
                    input_shape=reader.layers[0].out_shape, outputs=outputs, source="onnx")
