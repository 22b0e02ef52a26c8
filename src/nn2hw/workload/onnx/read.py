"""Reading a shape-inferred ONNX graph into layers.

Every node that carries activations, i.e. is fed directly or not by a graph input, becomes a
``Layer`` through the classifier the torch extractors use (``_classify``), so both paths agree
on what a layer is and on its channel axes. Nodes that compute only on constants or on shapes
(Constant, Shape, Gather of a shape, ConstantOfShape...) carry no activations and are skipped.
Ops nn2hw does not understand stay as ``OpKind.OTHER`` layers with their op type.

Layer names are the producing module's path where the file lets us recover it: from parameter
names (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``), from the torch exporter's scope metadata
or from TorchScript-style node names (``/layer1/layer1.0/conv1/Conv``); else the node name. A
matmul of two activations is named after its module, as the torch extractors name it
(``encoder.layer.0.attention.self.matmul``).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nn2hw.errors import ConfigError, ModelError
from nn2hw.workload._classify import (
    ALIAS_OPS,
    BROADCAST_OPS,
    AxisMap,
    Operand,
    constant_operands,
    conv_fields,
    dropped,
    embed_fields,
    function_fields,
    input_axes,
    linear_fields,
    onnx_op_name,
    operands,
    pool_fields,
    shape_fields,
)
from nn2hw.workload.layer import DEFINING_KINDS, Layer, OpKind
from nn2hw.workload.onnx.load import REEXPORT_FIX, SHAPE_OPS, Shape, attrs, reads, static_shape

SPATIAL_REDUCE_OPS = frozenset({"ReduceMean", "ReduceMax"})
PARAM_SUFFIXES = frozenset({"weight", "bias", "running_mean", "running_var"})
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})
_CHAINS = frozenset({"Slice", "Unsqueeze", "Squeeze"})
"""Ops an exporter writes once per axis where torch records one op (``x[:, :, ::2, ::2]``,
``mask[:, None, None, :]``): a chain of them is read as one layer."""


def scope_path(parts: Sequence[str]) -> str:
    """Module path from TorchScript scope parts: ['layer1', 'layer1.0', 'conv1'] -> 'layer1.0.conv1',
    ['features', 'features.1', 'conv', 'conv.0', 'conv.0.0'] -> 'features.1.conv.0.0'.

    A part that extends the previous one (a container's child: 'layer1.0' under 'layer1', 'conv.0'
    under 'conv') replaces it; any other part is a child attribute appended to the path.
    """
    path: list[str] = []
    for part in parts:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        elif part:
            path.append(part)
    return ".".join(path)


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


def _dtype(onnx: Any, elem_type: int) -> str:
    """'float32', 'int64'...: NumPy's name for an ONNX element type, as the torch extractors spell it."""
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type).name)
    except (KeyError, ValueError, TypeError):  # a type NumPy lacks: onnx's own name, 'float8e4m3fn'
        return str(onnx.helper.tensor_dtype_to_string(elem_type)).removeprefix("TensorProto.").lower()


class Reader:
    """Walks one shape-inferred ONNX graph in topological order and builds its layers."""

    def __init__(self, onnx: Any, model: Any, path: Path) -> None:
        self.onnx, self.path, self.graph = onnx, path, model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.constant_nodes = {n.output[0]: n for n in self.graph.node if n.op_type == "Constant" and n.output}
        self.source_node = {out: n for n in self.graph.node for out in n.output if out}  # tensor -> node writing it
        self.shapes: dict[str, Shape | None] = {t.name: tuple(int(d) for d in t.dims) for t in self.graph.initializer}
        self.dtypes: dict[str, str] = {}
        for value in (*self.graph.input, *self.graph.value_info, *self.graph.output):
            self.shapes[value.name] = static_shape(value.type) or self.shapes.get(value.name)
            elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
            if elem:
                self.dtypes[value.name] = _dtype(onnx, elem)
        self.consumers = Counter(name for node in self.graph.node for name in reads(node))
        self.consumers.update(o.name for o in self.graph.output)
        self.layers: list[Layer] = []
        self.position: dict[str, int] = {}
        self.first: dict[str, Operand] = {}  # a layer's first operand (to re-read a chain it absorbs)
        self.made_by: dict[str, str] = {}  # layer name -> op type of the node that made it
        self.producer: dict[str, str] = {}  # activation tensor name -> layer name

    # --- graph helpers ------------------------------------------------------------------------
    def _data_inputs(self, node: Any) -> list[str]:
        """The activations a node reads, in input order with repeats (``Concat(x, x)`` reads x twice);
        CastLike reads only the type of its second input."""
        names = node.input[:1] if node.op_type == "CastLike" else reads(node)
        return [name for name in names if name in self.producer]

    def _const(self, name: str) -> Any:
        """The value of a constant tensor as a NumPy array, ``None`` if it is not a constant."""
        if name in self.initializers:
            return self.onnx.numpy_helper.to_array(self.initializers[name])
        node = self.constant_nodes.get(name)
        if node is not None:
            found = attrs(self.onnx, node)
            if "value" in found:
                return self.onnx.numpy_helper.to_array(found["value"])
            for key in ("value_ints", "value_floats", "value_int", "value_float"):
                if key in found:
                    return np.asarray(found[key])
        return None

    def _stored_floats(self, node: Any) -> list[Shape]:
        """Shapes of the float tensors a node reads that no activation feeds: initializers, Constant
        nodes and values computed from them alone (a position embedding, gathered rows)."""
        found = []
        for name in reads(node):
            if name in self.producer:
                continue
            while (source := self.source_node.get(name)) is not None and source.input and \
                    onnx_op_name(source.op_type) in BROADCAST_OPS:
                name = source.input[0]  # an Expand of a constant reads its source's values
            shape, dtype = self._tensor_type(name)
            if shape is not None and dtype is not None and "float" in dtype:
                found.append(shape)
        return found

    def _tensor_type(self, name: str) -> tuple[Shape | None, str | None]:
        """(shape, dtype) of a tensor, read from an initializer's header (its values are not decoded:
        weights can be large), a Constant node's value, or shape inference."""
        if name in self.initializers:
            tensor = self.initializers[name]
            return tuple(int(d) for d in tensor.dims), _dtype(self.onnx, tensor.data_type)
        value = self._const(name)
        if value is not None:
            return tuple(int(d) for d in value.shape), str(value.dtype)
        return self.shapes.get(name), self.dtypes.get(name)

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

    def _operand(self, name: str, shape: Shape) -> Operand:
        return Operand(shape, self.layers[self.position[self.producer[name]]].channel_axes)

    # --- naming -------------------------------------------------------------------------------
    def _name(self, node: Any, kind: OpKind) -> str:
        """The producing module's path when the file tells it, else the node name.

        A matmul of two activations is ``<module>.matmul``: it has no parameter to be named by.
        """
        if kind is not OpKind.MATMUL:
            # an embedding's table comes first
            params: Sequence[str] = node.input if node.op_type == "Gather" else node.input[1:]
            for name in params:
                stem, _, suffix = name.rpartition(".")
                if stem and suffix in PARAM_SUFFIXES and name not in self.producer and not name.startswith("onnx::"):
                    return stem
        scopes = _torch_scopes(node)
        if scopes is not None:
            path, leaf, op = scopes
        elif node.name.startswith("/") and len(node.name) > 1:  # TorchScript: '/layer1/layer1.0/conv1/Conv'
            parts = node.name.strip("/").split("/")
            path, leaf, op = scope_path(parts[:-1]), False, parts[-1]
        else:
            return str(node.name or node.output[0])
        if kind is OpKind.MATMUL:
            return f"{path}.matmul" if path else "matmul"
        return path if path and (kind in DEFINING_KINDS or leaf) else ".".join(p for p in (path, op) if p)

    def _unique(self, name: str) -> str:
        unique, i = name, 0
        while unique in self.position:
            i += 1
            unique = f"{name}_{i}"
        return unique

    # --- building -------------------------------------------------------------------------------
    def add_input(self, value: Any) -> None:
        shape = self.shapes[value.name]
        assert shape is not None  # made static by fix_input_shapes
        dtype = self.dtypes.get(value.name, "float32")
        fields = shape_fields(shape, shape, out_axes=input_axes(shape, dtype))
        self._append(Layer(name=self._unique(value.name), kind=OpKind.INPUT, op="input", out_shape=shape, dtype=dtype,
                           **fields), Operand(shape, ()), "input", [value.name])

    def _append(self, layer: Layer, first: Operand, op_type: str, outputs: Sequence[str]) -> None:
        self.position[layer.name] = len(self.layers)
        self.layers.append(layer)
        self.first[layer.name] = first
        self.made_by[layer.name] = op_type
        for out in outputs:
            if out:
                self.producer[out] = layer.name

    def _replace(self, name: str, node: Any, **fields: Any) -> None:
        """Fold ``node`` into the layer ``name`` (a chain of per-axis ops, a MatMul's bias add)."""
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
        if node.op_type in _CHAINS and self.made_by[prev] == node.op_type:
            out_shape = self._shape(node.output[0], node, compute=False)
            if out_shape is None:
                return False
            fields = function_fields(onnx_op_name(node.op_type), [self.first[prev]], out_shape) or {}
            self._replace(prev, node, **fields, out_shape=out_shape)
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
            out_shape = out_shape or shapes[0]
            fields: dict[str, Any] | None = None if onnx_op_name(node.op_type) in ALIAS_OPS else \
                {**shape_fields(shapes[0], out_shape), "kind": OpKind.OTHER}
        else:
            shapes = [s for s in in_shapes if s is not None]
            fields = self._fields(node, data, [self._operand(d, s) for d, s in zip(data, shapes)], out_shape)
        if fields is None:  # an alias: identity, dropout, cast...
            for out in node.output:
                if out:
                    self.producer[out] = self.producer[data[0]]
            return
        kind = OpKind(fields["kind"])
        op = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        name = self._unique(self._name(node, kind))
        inputs, operand_shapes = operands(kind, [self.producer[d] for d in data], shapes)
        try:
            layer = Layer(name=name, op=op, inputs=inputs, in_shapes=operand_shapes, out_shape=out_shape,
                          dtype=self.dtypes.get(node.output[0], "float32"),
                          constants=constant_operands(kind, self._stored_floats(node)), **fields)
        except ConfigError as exc:
            raise ModelError(f"Node {node.name or op!r} ({op}) of {self.path} describes an impossible layer: "
                             f"{exc.cause}", f"The file is malformed: {REEXPORT_FIX}.") from None
        self._append(layer, self._operand(data[0], shapes[0]), node.op_type, node.output)

    def _fields(self, node: Any, data: list[str], ins: list[Operand], out_shape: Shape) -> dict[str, Any] | None:
        """Layer fields of a node whose activation shapes are all known (``None`` for an alias)."""
        op = node.op_type
        other = {**shape_fields(ins[0].shape, out_shape, ins[0].axes), "kind": OpKind.OTHER}
        if node.domain not in DEFAULT_DOMAINS:
            return other
        found = attrs(self.onnx, node)
        rank = len(ins[0].shape)
        axis_map: AxisMap | None = None
        if op == "Conv":
            return self._conv(node, data, found, ins[0].shape, out_shape) or other
        if op in ("Gemm", "MatMul") and node.input[1] not in self.producer:
            return self._linear(node, data, found, ins[0].shape, out_shape) or other
        if op in ("MaxPool", "AveragePool"):
            kernel = list(found.get("kernel_shape", []))
            if len(kernel) not in (1, 2):
                return other
            strides = list(found.get("strides", [1] * len(kernel)))
            pads = self._pads(found, ins[0].shape, out_shape, kernel, strides, [1] * len(kernel))
            return pool_fields(ins[0].shape, out_shape, kernel, strides, pads)
        if op in SPATIAL_REDUCE_OPS:
            axes = self._axes(node, found, rank)
            if axes is None or not axes or 0 in axes:
                return other  # reducing the batch is not a pool
            axis_map = None if found.get("keepdims", 1) else dropped(rank, axes)
        if op == "Gather":
            return self._gather(node, found, ins, out_shape) or other
        if op == "Transpose":
            axis_map = tuple(found.get("perm", range(rank - 1, -1, -1)))
        return function_fields(onnx_op_name(op), ins, out_shape, axis_map,
                               found.get("axis", 0) if op == "Concat" else None)

    def _gather(self, node: Any, found: dict[str, Any], ins: list[Operand], out_shape: Shape) -> dict[str, Any] | None:
        """An embedding (a constant 2-D table gathered by integer ids) or a selection along one axis."""
        axis = found.get("axis", 0)
        if node.input[0] not in self.producer:
            table = self.shapes.get(node.input[0])
            return embed_fields(ins[0].shape, out_shape, table[0]) if table and len(table) == 2 and axis == 0 else None
        indices = self._const(node.input[1])
        if indices is None:
            return None
        rank = len(ins[0].shape)
        return function_fields("getitem", ins, out_shape, dropped(rank, [axis]) if indices.ndim == 0 else None)

    def _conv(self, node: Any, data: list[str], found: dict[str, Any], in_shape: Shape,
              out_shape: Shape) -> dict[str, Any] | None:
        """Fields of a Conv with a constant weight (``None``: a conv on a computed weight, kept as OTHER)."""
        if node.input[0] != data[0] or len(node.input) < 2 or node.input[1] in self.producer:
            return None
        weight = self._shape(node.input[1], node, compute=True)
        assert weight is not None
        kernel = list(weight[2:])
        if len(kernel) not in (1, 2) or len(in_shape) != len(weight):
            return None  # 3-D convs have no place in the IR: listed as unsupported
        group = int(found.get("group", 1))
        if in_shape[1] != weight[1] * group:
            raise ModelError(
                f"Conv node {node.name or node.output[0]!r} of {self.path} reads {in_shape[1]} channels but its "
                f"weight {node.input[1]!r} {list(weight)} with group={group} expects {weight[1] * group}.",
                f"The file is malformed: {REEXPORT_FIX}.",
            )
        strides = list(found.get("strides", [1] * len(kernel)))
        dilations = list(found.get("dilations", [1] * len(kernel)))
        pads = self._pads(found, in_shape, out_shape, kernel, strides, dilations)
        return conv_fields(in_shape, out_shape, weight, strides, pads, dilations, group, self._has_bias(node, 2))

    def _linear(self, node: Any, data: list[str], found: dict[str, Any], in_shape: Shape,
                out_shape: Shape) -> dict[str, Any] | None:
        """Fields of Gemm/MatMul with a constant 2-D weight (``None``: kept as OTHER)."""
        if node.input[0] != data[0]:
            return None
        weight = self._shape(node.input[1], node, compute=True)
        assert weight is not None
        if len(weight) != 2:
            return None
        if node.op_type == "Gemm" and found.get("transA", 0):
            in_shape = in_shape[::-1]
        features = weight[1] if node.op_type == "Gemm" and found.get("transB", 0) else weight[0]
        if in_shape[-1] != features:
            raise ModelError(
                f"{node.op_type} node {node.name or node.output[0]!r} of {self.path} reads {in_shape[-1]} features but "
                f"its weight {node.input[1]!r} {list(weight)} expects {features}.",
                f"The file is malformed: {REEXPORT_FIX}.",
            )
        return linear_fields(in_shape, out_shape, node.op_type == "Gemm" and self._has_bias(node, 2))

    def _pads(self, found: dict[str, Any], in_shape: Shape, out_shape: Shape, kernel: list[int],
              strides: list[int], dilations: list[int]) -> list[int]:
        """One pad per spatial axis (as the IR keeps it) from ``pads`` or ``auto_pad``.

        Where the two sides differ (SAME padding with stride 2, TF-converted files), the side
        that reproduces the output size through the symmetric formula is kept, so that the layer
        stays consistent with ``Workload.with_changes``'s spatial check.
        """
        auto = found.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        n = len(kernel)
        sides = [0] * 2 * n if auto in ("SAME_UPPER", "SAME_LOWER", "VALID") else list(found.get("pads", [0] * 2 * n))
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

    def _axes(self, node: Any, found: dict[str, Any], rank: int) -> list[int] | None:
        """Normalized reduction axes (attribute before opset 18, input after); ``None`` if computed."""
        if "axes" in found:
            axes = list(found["axes"])
        elif len(node.input) > 1 and node.input[1]:
            value = self._const(node.input[1])
            if value is None:
                return None
            axes = [int(a) for a in value.reshape(-1)]
        else:
            axes = [] if found.get("noop_with_empty_axes", 0) else list(range(rank))
        return sorted(a % rank for a in axes)
