"""Extract a ``Workload`` from an ONNX file.

The file is loaded, checked (``onnx.checker``) and shape-inferred with static input shapes (a
dynamic batch dimension is read as 1). Every node that carries activations, i.e. is fed directly
or not by a graph input, becomes a ``Layer`` through the classifier the torch extractors use
(``_classify``), so both paths agree on what a layer is. Nodes that compute only on constants or
on shapes (Constant, Shape, Gather of a shape, ConstantOfShape...) carry no activations and are
skipped. Ops nn2hw does not understand stay as ``OpKind.OTHER`` layers with their op type.

Layer names are the producing module's path where the file lets us recover it: from parameter
names (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``), from the torch exporter's scope metadata
or from TorchScript-style node names (``/layer1/layer1.0/conv1/Conv``); else the node name.
"""

from __future__ import annotations

import ast
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nn2hw.errors import ConfigError, ModelError
from nn2hw.workload._classify import (
    ALIAS_OPS,
    conv_fields,
    function_fields,
    layer_inputs,
    linear_fields,
    onnx_op_name,
    pool_fields,
    shape_fields,
)
from nn2hw.workload.layer import Layer, OpKind, Workload

Shape = tuple[int, ...]

INSTALL_FIX = 'Install the ONNX extra: pip install "nn2hw[onnx]".'
REEXPORT_FIX = ("re-export the model with static input shapes, e.g. nn2hw.workload.onnx_export.to_onnx(model, "
                "example_input, path) or torch.onnx.export(model, (x,), path) without dynamic_shapes/dynamic_axes")
SHAPE_OPS = frozenset({"Shape", "Size"})  # read only an activation's shape: their output is not an activation
SPATIAL_REDUCE_OPS = frozenset({"ReduceMean", "ReduceMax"})
PARAM_SUFFIXES = frozenset({"weight", "bias", "running_mean", "running_var"})
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})
_MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit: bigger models are checked from their path
_FOLD_LIMIT = 4096  # largest constant (elements) that shape arithmetic folding evaluates
_MAX_FOLDS = 4  # rounds of folding + shape inference (each round can size what the last one could not)


def _import_onnx() -> Any:
    """The ``onnx`` module, or a ``ModelError`` naming the extra that provides it."""
    try:
        import onnx
    except ImportError:
        raise ModelError("Reading or writing ONNX files needs the 'onnx' package, which is not installed.",
                         INSTALL_FIX) from None
    return onnx


def _first_line(exc: BaseException) -> str:
    """The informative part of an onnx/protobuf error message (they span several lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:400] or type(exc).__name__


def _load(onnx: Any, path: Path) -> Any:
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
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {_first_line(exc)}).",
            "Give a complete ONNX file: re-copy it if it was cut short, keep its external-data file beside it, "
            "or re-export the model (nn2hw.workload.onnx_export.to_onnx).",
        ) from None
    try:
        onnx.checker.check_model(str(path) if model.ByteSize() > _MAX_PROTO_BYTES else model)
    except Exception as exc:  # onnx.checker.ValidationError and protobuf errors
        raise ModelError(f"{path} is not a valid ONNX model: the ONNX checker says: {_first_line(exc)}",
                         f"Repair the file or {REEXPORT_FIX} (if it uses an opset newer than the installed onnx "
                         "package knows, upgrade onnx).") from None
    if not model.graph.node:
        raise ModelError(f"{path} holds an ONNX graph with no operations.", "Export the full model.")
    return model


def _graph_inputs(model: Any) -> list[Any]:
    """The graph inputs that are real inputs (old exporters also list initializers as inputs)."""
    initializers = {t.name for t in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _fix_input_shapes(model: Any, path: Path, input_shape: Sequence[int] | None) -> None:
    """Make every input shape static in place: a dynamic batch becomes 1, ``input_shape`` fills the rest.

    Any other dynamic dimension is an error: MACs and cycles need static sizes.
    """
    inputs = _graph_inputs(model)
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


def _static_shape(type_proto: Any) -> Shape | None:
    """The static shape of a tensor type, ``None`` if any dimension is unknown."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = tuple(d.dim_value for d in type_proto.tensor_type.shape.dim)
    return None if any(d <= 0 for d in dims) else dims


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _scope_path(parts: Sequence[str]) -> str:
    """Module path from TorchScript scope parts: ['layer1', 'layer1.0', 'conv1'] -> 'layer1.0.conv1'.

    A part that extends the previous one (a container's child 'layer1.0' under 'layer1') replaces
    it; any other part is a child attribute appended to the path.
    """
    path: list[str] = []
    for part in parts:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        elif part:
            path.append(part)
    return ".".join(path)


def _reads(node: Any) -> Iterator[str]:
    """Tensor names a node reads, including outer names used inside its subgraphs (If, Loop)."""
    yield from (name for name in node.input if name)
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            defined = {name for n in sub.node for name in n.output} | {v.name for v in sub.input} | \
                {t.name for t in sub.initializer}
            for inner in sub.node:
                yield from (name for name in _reads(inner) if name not in defined)


def _torch_scopes(node: Any) -> tuple[str, bool, str] | None:
    """(module path, whether that module is a torch.nn leaf, op name) from torch.export metadata."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (KeyError, ValueError, SyntaxError):
        return None
    if not isinstance(scopes, list) or not scopes:
        return None
    path = str(scopes[-2]) if len(scopes) > 1 else ""
    leaf = len(classes) > 1 and len(scopes) > 2 and str(classes[-2]).startswith("torch.nn.modules.")
    return path, leaf, str(scopes[-1])


class _Reader:
    """Walks one shape-inferred ONNX graph in topological order and builds its layers."""

    def __init__(self, onnx: Any, model: Any, path: Path) -> None:
        self.onnx, self.path, self.graph = onnx, path, model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.constant_nodes = {n.output[0]: n for n in self.graph.node if n.op_type == "Constant" and n.output}
        self.shapes: dict[str, Shape | None] = {t.name: tuple(int(d) for d in t.dims) for t in self.graph.initializer}
        for value in (*self.graph.input, *self.graph.value_info, *self.graph.output):
            self.shapes[value.name] = _static_shape(value.type) or self.shapes.get(value.name)
        self.consumers = Counter(name for node in self.graph.node for name in _reads(node))
        self.consumers.update(o.name for o in self.graph.output)
        self.layers: list[Layer] = []
        self.position: dict[str, int] = {}
        self.in_shape: dict[str, Shape] = {}  # a layer's first activation input shape (for merges)
        self.made_by: dict[str, str] = {}  # layer name -> op type of the node that made it
        self.producer: dict[str, str] = {}  # activation tensor name -> layer name

    # --- graph helpers ------------------------------------------------------------------------
    def _data_inputs(self, node: Any) -> list[str]:
        """The activations a node reads, in input order with repeats (``Concat(x, x)`` reads x twice);
        CastLike reads only the type of its second input."""
        names = node.input[:1] if node.op_type == "CastLike" else _reads(node)
        return [name for name in names if name in self.producer]

    def _const(self, name: str) -> Any:
        """The value of a constant tensor as a NumPy array, ``None`` if it is not a constant."""
        if name in self.initializers:
            return self.onnx.numpy_helper.to_array(self.initializers[name])
        node = self.constant_nodes.get(name)
        if node is not None:
            attrs = _attrs(self.onnx, node)
            if "value" in attrs:
                return self.onnx.numpy_helper.to_array(attrs["value"])
            for key in ("value_ints", "value_floats", "value_int", "value_float"):
                if key in attrs:
                    return np.asarray(attrs[key])
        return None

    def _has_bias(self, node: Any, index: int) -> bool:
        """Whether input ``index`` is a bias that adds something (an all-zero constant adds nothing)."""
        if len(node.input) <= index or not node.input[index]:
            return False
        value = self._const(node.input[index])
        return value is None or bool(value.any())

    def _shape(self, name: str, node: Any, compute: bool) -> Shape | None:
        shape = self.shapes.get(name)
        if shape is None and compute:
            raise ModelError(
                f"ONNX shape inference cannot size tensor {name!r} of node {node.name or node.op_type!r} "
                f"({node.op_type}) in {self.path}; nn2hw needs static shapes to count its MACs.",
                f"Simplify data-dependent reshapes, give custom ops output shapes, or {REEXPORT_FIX}.",
            )
        return shape

    # --- naming -------------------------------------------------------------------------------
    def _name(self, node: Any, compute: bool) -> str:
        """The producing module's path when the file tells it, else the node name."""
        for name in node.input[1:]:
            stem, _, suffix = name.rpartition(".")
            if stem and suffix in PARAM_SUFFIXES and name not in self.producer and not name.startswith("onnx::"):
                return stem
        scopes = _torch_scopes(node)
        if scopes is not None:
            path, leaf, op = scopes
            return path if path and (compute or leaf) else ".".join(p for p in (path, op) if p)
        if node.name.startswith("/") and len(node.name) > 1:  # TorchScript: '/layer1/layer1.0/conv1/Conv'
            parts = node.name.strip("/").split("/")
            path = _scope_path(parts[:-1])
            return path if path and compute else ".".join(p for p in (path, parts[-1]) if p)
        return node.name or node.output[0]

    def _unique(self, name: str) -> str:
        unique, i = name, 0
        while unique in self.position:
            i += 1
            unique = f"{name}_{i}"
        return unique

    # --- building -------------------------------------------------------------------------------
    def add_input(self, value: Any) -> None:
        shape = self.shapes[value.name]
        assert shape is not None  # made static by _fix_input_shapes
        self._append(Layer(name=self._unique(value.name), kind=OpKind.INPUT, op="input",
                           **shape_fields(shape, shape)), shape, "input", [value.name])

    def _append(self, layer: Layer, in_shape: Shape, op_type: str, outputs: Sequence[str]) -> None:
        self.position[layer.name] = len(self.layers)
        self.layers.append(layer)
        self.in_shape[layer.name] = in_shape
        self.made_by[layer.name] = op_type
        for out in outputs:
            if out:
                self.producer[out] = layer.name

    def _replace(self, name: str, node: Any, **fields: Any) -> None:
        """Fold ``node`` into the layer ``name`` (a slice chain, a MatMul's bias add)."""
        self.layers[self.position[name]] = replace(self.layers[self.position[name]], **fields)
        for out in node.output:
            if out:
                self.producer[out] = name

    def _merged(self, node: Any, data: list[str]) -> bool:
        """Fold a node into the layer feeding it when torch records both as one op; True if folded."""
        if len(data) != 1 or self.consumers[data[0]] != 1:
            return False
        prev = self.producer[data[0]]
        layer = self.layers[self.position[prev]]
        if node.op_type == "Slice" and self.made_by[prev] == "Slice":  # x[:, :, ::2, ::2] -> one slice per axis
            out_shape = self._shape(node.output[0], node, compute=False)
            if out_shape is None:
                return False
            fields = function_fields("getitem", [self.in_shape[prev]], out_shape) or {}
            self._replace(prev, node, **fields)
            return True
        if node.op_type == "Add" and self.made_by[prev] == "MatMul" and layer.kind is OpKind.LINEAR \
                and not layer.bias:  # Linear on a 3-D input: MatMul + Add(bias)
            other = next((n for n in node.input if n != data[0]), "")
            value = self._const(other)
            if value is not None and value.size == layer.out_channels and value.shape[-1:] == (layer.out_channels,):
                self._replace(prev, node, bias=True)
                return True
        return False

    def read(self, node: Any) -> None:
        """Turn one node into a layer, an alias, a fold into its producer, or nothing."""
        if node.op_type in SHAPE_OPS:
            return
        data = self._data_inputs(node)
        if not data or self._merged(node, data):
            return
        compute = node.op_type in ("Conv", "Gemm", "MatMul") and node.domain in DEFAULT_DOMAINS
        in_shapes = [self._shape(name, node, compute) for name in data]
        out_shape = self._shape(node.output[0], node, compute) if node.output else None
        if out_shape is None or any(s is None for s in in_shapes):  # e.g. a custom op: listed with a guessed shape
            known = next((s for s in (*in_shapes, out_shape) if s is not None), (1,))
            shapes = [s or known for s in in_shapes]
            fields: dict[str, Any] | None = None if onnx_op_name(node.op_type) in ALIAS_OPS else \
                {**shape_fields(shapes[0], out_shape or shapes[0]), "kind": OpKind.OTHER}
        else:
            shapes = [s for s in in_shapes if s is not None]
            fields = self._fields(node, data, shapes, out_shape)
        if fields is None:  # an alias: identity, dropout, cast...
            for out in node.output:
                if out:
                    self.producer[out] = self.producer[data[0]]
            return
        is_compute = fields["kind"] in (OpKind.CONV, OpKind.LINEAR)
        op = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        name = self._unique(self._name(node, is_compute))
        try:
            inputs = layer_inputs(OpKind(fields["kind"]), [self.producer[d] for d in data])
            layer = Layer(name=name, op=op, inputs=inputs, **fields)
        except ConfigError as exc:
            raise ModelError(f"Node {node.name or op!r} ({op}) of {self.path} describes an impossible layer: "
                             f"{exc.cause}", f"The file is malformed: {REEXPORT_FIX}.") from None
        self._append(layer, shapes[0], node.op_type, node.output)

    def _fields(self, node: Any, data: list[str], in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any] | None:
        """Layer fields of a node whose activation shapes are all known (``None`` for an alias)."""
        op = node.op_type
        other = {**shape_fields(in_shapes[0], out_shape), "kind": OpKind.OTHER}
        if node.domain not in DEFAULT_DOMAINS:
            return other
        attrs = _attrs(self.onnx, node)
        if op == "Conv":
            return self._conv(node, data, attrs, in_shapes[0], out_shape) or other
        if op in ("Gemm", "MatMul"):
            return self._linear(node, data, attrs, in_shapes[0], out_shape) or other
        if op in ("MaxPool", "AveragePool"):
            kernel = list(attrs.get("kernel_shape", []))
            if len(kernel) not in (1, 2):
                return other
            strides = list(attrs.get("strides", [1] * len(kernel)))
            pads = self._pads(attrs, in_shapes[0], out_shape, kernel, strides, [1] * len(kernel))
            return pool_fields(in_shapes[0], out_shape, kernel, strides, pads)
        if op in SPATIAL_REDUCE_OPS:
            axes = self._axes(node, attrs, len(in_shapes[0]))
            if axes is None or not axes or min(axes) < 2:
                return other  # reducing the batch or channels is not a pool
        if op == "Concat" and attrs.get("axis", 0) % max(len(out_shape), 1) != 1:
            return other
        return function_fields(onnx_op_name(op), in_shapes, out_shape)

    def _conv(self, node: Any, data: list[str], attrs: dict[str, Any], in_shape: Shape,
              out_shape: Shape) -> dict[str, Any] | None:
        """Fields of a Conv with a constant weight (``None``: a conv on a computed weight, kept as OTHER)."""
        if node.input[0] != data[0] or len(node.input) < 2 or node.input[1] in self.producer:
            return None
        weight = self._shape(node.input[1], node, compute=True)
        assert weight is not None
        kernel = list(weight[2:])
        if len(kernel) not in (1, 2) or len(in_shape) != len(weight):
            return None  # 3-D convs have no place in the IR: listed as unsupported
        group = int(attrs.get("group", 1))
        if in_shape[1] != weight[1] * group:
            raise ModelError(
                f"Conv node {node.name or node.output[0]!r} of {self.path} reads {in_shape[1]} channels but its "
                f"weight {node.input[1]!r} {list(weight)} with group={group} expects {weight[1] * group}.",
                f"The file is malformed: {REEXPORT_FIX}.",
            )
        strides = list(attrs.get("strides", [1] * len(kernel)))
        dilations = list(attrs.get("dilations", [1] * len(kernel)))
        pads = self._pads(attrs, in_shape, out_shape, kernel, strides, dilations)
        return conv_fields(in_shape, out_shape, weight, strides, pads, dilations, group, self._has_bias(node, 2))

    def _linear(self, node: Any, data: list[str], attrs: dict[str, Any], in_shape: Shape,
                out_shape: Shape) -> dict[str, Any] | None:
        """Fields of Gemm/MatMul with a constant 2-D weight (``None``: a product of two activations)."""
        if node.input[0] != data[0] or node.input[1] in self.producer:
            return None
        weight = self._shape(node.input[1], node, compute=True)
        assert weight is not None
        if len(weight) != 2:
            return None
        if node.op_type == "Gemm" and attrs.get("transA", 0):
            in_shape = in_shape[::-1]
        features = weight[1] if node.op_type == "Gemm" and attrs.get("transB", 0) else weight[0]
        if in_shape[-1] != features:
            raise ModelError(
                f"{node.op_type} node {node.name or node.output[0]!r} of {self.path} reads {in_shape[-1]} features but "
                f"its weight {node.input[1]!r} {list(weight)} expects {features}.",
                f"The file is malformed: {REEXPORT_FIX}.",
            )
        return linear_fields(in_shape, out_shape, node.op_type == "Gemm" and self._has_bias(node, 2))

    def _pads(self, attrs: dict[str, Any], in_shape: Shape, out_shape: Shape, kernel: list[int],
              strides: list[int], dilations: list[int]) -> list[int]:
        """One pad per spatial axis (as the IR keeps it) from ``pads`` or ``auto_pad``.

        Where the two sides differ (SAME padding with stride 2, TF-converted files), the side
        that reproduces the output size through the symmetric formula is kept, so that the layer
        stays consistent with ``Workload.with_changes``'s spatial check.
        """
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        n = len(kernel)
        sides = [0] * 2 * n if auto in ("SAME_UPPER", "SAME_LOWER", "VALID") else list(attrs.get("pads", [0] * 2 * n))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            for i, (size, k, s, d) in enumerate(zip(in_shape[2:], kernel, strides, dilations)):
                total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
                small, large = total // 2, total - total // 2
                sides[i], sides[n + i] = (small, large) if auto == "SAME_UPPER" else (large, small)
        pads = []
        for i, (size, out, k, s, d) in enumerate(zip(in_shape[2:], out_shape[2:], kernel, strides, dilations)):
            fits = [p for p in (sides[i], sides[n + i]) if (size + 2 * p - d * (k - 1) - 1) // s + 1 == out]
            pads.append(fits[0] if fits else max(sides[i], sides[n + i]))
        return pads

    def _axes(self, node: Any, attrs: dict[str, Any], rank: int) -> list[int] | None:
        """Normalized reduction axes (attribute before opset 18, input after); ``None`` if computed."""
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif len(node.input) > 1 and node.input[1]:
            value = self._const(node.input[1])
            if value is None:
                return None
            axes = [int(a) for a in value.reshape(-1)]
        else:
            axes = [] if attrs.get("noop_with_empty_axes", 0) else list(range(rank))
        return sorted(a % rank for a in axes)


def _infer_shapes(onnx: Any, model: Any, path: Path) -> Any:
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx.shape_inference.InferenceError and friends
        raise ModelError(f"ONNX shape inference fails on {path}: {_first_line(exc)}",
                         f"The model's operations do not fit their inputs: {REEXPORT_FIX}.") from None


def _fold_shape_arithmetic(onnx: Any, model: Any) -> bool:
    """Evaluate small constant subgraphs and store their results as initializers, in place.

    Exporters compute slice bounds, pads and reshape targets with chains of Constant, Shape,
    Gather, Unsqueeze, Concat... that ONNX shape inference does not evaluate, leaving the
    activations they shape unsized. With static inputs these chains are constants: the reference
    evaluator computes them once (output names kept, so parameter names survive). Runs only when
    an activation is unsized; returns whether anything was folded.
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    shapes: dict[str, Shape] = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        shape = _static_shape(value.type)
        if shape is not None:
            shapes[value.name] = shape
    active = {value.name for value in _graph_inputs(model)}
    known: dict[str, Any] = {}  # Shape/Size of a sized activation: a constant
    foldable: set[str] = set()  # outputs of constant nodes being folded
    fold, unsized = [], False
    for node in graph.node:
        names = [n for n in node.input if n]
        if any(n in active for n in names) or any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            if node.op_type in SHAPE_OPS and node.input[0] in shapes:
                dims = shapes[node.input[0]]
                attrs = _attrs(onnx, node)
                value = np.array(dims[attrs.get("start", 0):attrs.get("end", len(dims))] if node.op_type == "Shape"
                                 else int(np.prod(dims)), dtype=np.int64)
                known[node.output[0]] = value
                fold.append(node)
                continue
            produced = [o for o in node.output if o]
            active.update(produced)
            unsized = unsized or any(o not in shapes for o in produced)
        elif all(n in foldable or n in known or math.prod(shapes.get(n, (_FOLD_LIMIT + 1,))) <= _FOLD_LIMIT
                 for n in names):
            fold.append(node)
            foldable.update(o for o in node.output if o)
    if not unsized or not fold:
        return False
    folded = {id(node) for node in fold}
    needed = {n for node in graph.node if id(node) not in folded for n in _reads(node)} | \
        {o.name for o in graph.output}
    nodes = [node for node in fold if node.op_type not in SHAPE_OPS or node.output[0] not in known]
    wanted = sorted(needed & foldable)
    values = dict(known)
    if wanted:
        feeds = {n for node in nodes for n in node.input if n} - foldable
        sub = onnx.helper.make_model(
            onnx.helper.make_graph(nodes, "shape_arithmetic", [], [onnx.helper.make_empty_tensor_value_info(n)
                                                                  for n in wanted],
                                   [t for t in graph.initializer if t.name in feeds] +
                                   [onnx.numpy_helper.from_array(v, n) for n, v in known.items() if n in feeds]),
            opset_imports=model.opset_import, ir_version=model.ir_version)
        try:
            values.update(zip(wanted, ReferenceEvaluator(sub).run(None, {})))
        except Exception:  # an op the reference evaluator lacks: leave the graph as it is
            return False
    kept = [node for node in graph.node if id(node) not in folded]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(values[n]), n)
                             for n in sorted(needed & set(values)) if n not in {t.name for t in graph.initializer})
    return True


def from_onnx(path: str | Path, name: str | None = None, input_shape: Sequence[int] | None = None) -> Workload:
    """The workload of the ONNX model in ``path``.

    ``name`` defaults to the file's stem. Input shapes must be static except for the batch, read
    as 1; ``input_shape`` (single-input models) fixes dynamic sizes instead. Raises
    ``ModelError`` with the cause and a fix for a missing, unreadable, invalid or dynamic file.
    """
    onnx = _import_onnx()
    path = Path(path)
    model = _load(onnx, path)
    _fix_input_shapes(model, path, input_shape)
    model = _infer_shapes(onnx, model, path)
    for _ in range(_MAX_FOLDS):
        if not _fold_shape_arithmetic(onnx, model):
            break
        model = _infer_shapes(onnx, model, path)
    reader = _Reader(onnx, model, path)
    inputs = _graph_inputs(model)
    for value in inputs:
        reader.add_input(value)
    for node in model.graph.node:
        reader.read(node)
    if len(reader.layers) == len(inputs):
        raise ModelError(f"No operation of {path} reads its inputs {[v.name for v in inputs]}.",
                         "Export the model's computation, not only its constants.")
    outputs = tuple(dict.fromkeys(reader.producer[o.name] for o in model.graph.output if o.name in reader.producer))
    return Workload(name=name or path.stem, layers=tuple(reader.layers), input_shape=reader.shapes[inputs[0].name],
                    outputs=outputs, source="onnx")
