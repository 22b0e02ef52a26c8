"""Loading an ONNX file for extraction: import, load and check, static input shapes, shape inference.

Also the graph helpers the folding and reading steps share. Every failure becomes a
``ModelError`` (or a ``ConfigError`` for a bad ``input_shape``) with the cause and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nn2hw.errors import ConfigError, ModelError

Shape = tuple[int, ...]

INSTALL_FIX = 'Install the ONNX extra: pip install "nn2hw[onnx]".'
REEXPORT_FIX = ("re-export the model with static input shapes, e.g. nn2hw.workload.onnx_export.to_onnx(model, "
                "example_input, path) or torch.onnx.export(model, (x,), path) without dynamic_shapes/dynamic_axes")
SHAPE_OPS = frozenset({"Shape", "Size"})  # read only an activation's shape: their output is not an activation
_MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit: bigger models are checked from their path


def import_onnx() -> Any:
    """The ``onnx`` module, or a ``ModelError`` naming the extra that provides it."""
    try:
        import onnx
    except ImportError:
        raise ModelError("Reading or writing ONNX files needs the 'onnx' package, which is not installed.",
                         INSTALL_FIX) from None
    return onnx


def first_line(exc: BaseException) -> str:
    """The informative part of an onnx/protobuf error message (they span several lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:400] or type(exc).__name__


def load(onnx: Any, path: Path) -> Any:
    """Load and check the model; every failure becomes a ``ModelError`` with the cause and the fix."""
    if not path.exists():
        raise ModelError(f"ONNX file {path} does not exist.",
                         "Check the path, or export the model first with nn2hw.workload.onnx_export.to_onnx.")
    if not path.is_file():
        raise ModelError(f"{path} is a folder, not an ONNX file.", "Give the path of the .onnx file itself.")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, missing external-data file, permissions...
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {first_line(exc)}).",
            "Give a complete ONNX file: re-copy it if it was cut short, keep its external-data file beside it, "
            "or re-export the model (nn2hw.workload.onnx_export.to_onnx).",
        ) from None
    try:
        onnx.checker.check_model(str(path) if model.ByteSize() > _MAX_PROTO_BYTES else model)
    except Exception as exc:  # onnx.checker.ValidationError and protobuf errors
        raise ModelError(f"{path} is not a valid ONNX model: the ONNX checker says: {first_line(exc)}",
                         f"Repair the file or {REEXPORT_FIX} (if it uses an opset newer than the installed onnx "
                         "package knows, upgrade onnx).") from None
    if not model.graph.node:
        raise ModelError(f"{path} holds an ONNX graph with no operations.", "Export the full model.")
    return model


def graph_inputs(model: Any) -> list[Any]:
    """The graph inputs that are real inputs (old exporters also list initializers as inputs)."""
    initializers = {t.name for t in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def fix_input_shapes(model: Any, path: Path, input_shape: Sequence[int] | None) -> None:
    """Make every input shape static in place: a dynamic batch becomes 1, ``input_shape`` fills the rest.

    Any other dynamic dimension is an error: MACs and cycles need static sizes.
    """
    inputs = graph_inputs(model)
    if not inputs:
        raise ModelError(f"{path} has no graph inputs, so no layer carries activations.",
                         "Export the model with its input as a graph input.")
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(inputs) != 1 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise ConfigError(f"input_shape={input_shape!r} does not fit {path}, which has {len(inputs)} input(s).",
                              "Give input_shape only for a single-input model, as positive integers, e.g. "
                              "(1, 3, 224, 224).")
    for value in inputs:
        if not value.type.HasField("tensor_type"):
            raise ModelError(f"Input {value.name!r} of {path} is not a tensor.", "Export a model with tensor inputs.")
        tensor_type = value.type.tensor_type
        if input_shape is not None:
            dims = tensor_type.shape.dim
            if tensor_type.HasField("shape") and len(dims) != len(input_shape):
                raise ConfigError(f"input_shape={tuple(input_shape)} has {len(input_shape)} dimensions; input "
                                  f"{value.name!r} of {path} has {len(dims)}.", "Give one size per dimension.")
            clash = [(i, d.dim_value, s) for i, (d, s) in enumerate(zip(dims, input_shape))
                     if d.dim_value > 0 and d.dim_value != s]
            if clash:
                raise ConfigError(f"input_shape={tuple(input_shape)} contradicts the static sizes of input "
                                  f"{value.name!r} of {path} (dimension, file, given): {clash}.",
                                  "Give the sizes the file fixes, changing only its dynamic dimensions.")
            tensor_type.shape.ClearField("dim")
            for size in input_shape:
                tensor_type.shape.dim.add().dim_value = int(size)
            continue
        if not tensor_type.HasField("shape"):
            raise ModelError(f"Input {value.name!r} of {path} has no shape (not even a rank).",
                             f"Either {REEXPORT_FIX}, or pass input_shape=(N, C, H, W) to from_onnx.")
        dims = tensor_type.shape.dim
        if dims and dims[0].dim_value <= 0:
            dims[0].dim_value = 1  # a dynamic batch: cost one sample, as from_module does for a batch of 1
        dynamic = [(i, d.dim_param or "?") for i, d in enumerate(dims) if d.dim_value <= 0]
        if dynamic:
            shown = [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in dims]
            raise ModelError(
                f"Input {value.name!r} of {path} has dynamic dimension(s) {[name for _, name in dynamic]} at "
                f"position(s) {[i for i, _ in dynamic]} (shape {shown}); nn2hw needs static sizes to count MACs "
                "and cycles (only the batch may be dynamic).",
                f"Either {REEXPORT_FIX}, or pass input_shape=(N, C, H, W) to from_onnx to fix the sizes.",
            )


def infer_shapes(onnx: Any, model: Any, path: Path) -> Any:
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx.shape_inference.InferenceError and friends
        raise ModelError(f"ONNX shape inference fails on {path}: {first_line(exc)}",
                         f"The model's operations do not fit their inputs: {REEXPORT_FIX}.") from None


def static_shape(type_proto: Any) -> Shape | None:
    """The static shape of a tensor type, ``None`` if any dimension is unknown."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = tuple(d.dim_value for d in type_proto.tensor_type.shape.dim)
    return None if any(d <= 0 for d in dims) else dims


def attrs(onnx: Any, node: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def reads(node: Any) -> Iterator[str]:
    """Tensor names a node reads, including outer names used inside its subgraphs (If, Loop)."""
    yield from (name for name in node.input if name)
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            defined = {name for n in sub.node for name in n.output} | {v.name for v in sub.input} | \
                {t.name for t in sub.initializer}
            for inner in sub.node:
                yield from (name for name in reads(inner) if name not in defined)
