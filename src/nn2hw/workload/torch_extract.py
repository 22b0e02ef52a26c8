"""Extract a ``Workload`` from an ``nn.Module`` and example inputs.

torch.fx with shape propagation is tried first (an exact graph, functional adds and concats
included). Models fx cannot trace (data-dependent control flow) fall back to forward hooks on
leaf modules plus a ``TorchFunctionMode`` that sees the functional ops between them, linked by
tensor identity. Both paths hand the same op names, arguments and operands to the classifier
(``_classify``), so they give the same workload. Unknown ops are kept as ``OpKind.OTHER``
layers, never dropped. A matmul of two activations is named after the module that runs it
(``encoder.layer.0.attention.self.matmul``, then ``..._1``), as the ONNX reader names it.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from nn2hw.errors import ConfigError, ModelError
from nn2hw.workload._classify import (
    BROADCAST_OPS,
    CONCAT_OPS,
    MATMUL_OPS,
    AxisMap,
    Operand,
    constant_operands,
    conv_fields,
    dropped,
    embed_fields,
    features_last_inputs,
    function_fields,
    input_axes,
    linear_fields,
    normalize_op_name,
    operands,
    pool_fields,
    shape_fields,
)
from nn2hw.workload.layer import Layer, OpKind, Workload

_ACT_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus)
_SOFTMAX_MODULES = (nn.Softmax, nn.LogSoftmax)
_NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
                 nn.LocalResponseNorm)
_ALIAS_MODULES = (nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
_ADAPTIVE_POOL_MODULES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_PAD_MODULES = (nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)
_FLATTEN_MODULES = (nn.Flatten,)
KNOWN_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.Embedding) + _ACT_MODULES + _SOFTMAX_MODULES + _NORM_MODULES + \
    _ALIAS_MODULES + _POOL_MODULES + _ADAPTIVE_POOL_MODULES + _PAD_MODULES + _FLATTEN_MODULES

_FieldsFn = Callable[[list[Operand], tuple[int, ...]], dict[str, Any] | None]
"""Layer fields from a recorded op's operands and output shape (None: not an op to cost)."""
_OnCall = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], Any], None]
"""Called with each functional op seen outside a leaf module: the function, its args, kwargs and output."""

COMPRESSION_FIELDS_ATTR = "nn2hw_layer_fields"
"""Module attribute where ``nn2hw.compress`` transforms record the Layer fields they set (bit
widths, ``kept_per_kernel``) that the tensor shapes alone cannot show."""
FIXED_POINT_ATTR = "nn2hw_fixed_point"
"""Module attribute where ``nn2hw.compress``'s quantization records the fixed-point grid of a layer's
weights and inputs ({"weight_step": ..., "input_step": ...}): the codes a crossbar holds and its DACs
drive (``nn2hw.evaluate.variation``)."""


def module_fields(module: nn.Module, ins: Sequence[Operand], out_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Layer fields of a leaf module (``None`` for aliases such as dropout)."""
    recorded = dict(getattr(module, COMPRESSION_FIELDS_ATTR, {}))
    in_shape = tuple(ins[0].shape)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return {**conv_fields(in_shape, out_shape, tuple(module.weight.shape), module.stride, module.padding,
                              module.dilation, module.groups, module.bias is not None), **recorded}
    if isinstance(module, nn.Linear):
        return {**linear_fields(in_shape, out_shape, module.bias is not None), **recorded}
    if isinstance(module, nn.Embedding):
        return embed_fields(in_shape, out_shape, module.num_embeddings)
    if isinstance(module, _ALIAS_MODULES):
        return None
    for modules, kind in ((_ACT_MODULES, OpKind.ACT), (_SOFTMAX_MODULES, OpKind.SOFTMAX),
                          (_NORM_MODULES, OpKind.NORM), (_PAD_MODULES, OpKind.PAD)):
        if isinstance(module, modules):
            return {**shape_fields(in_shape, out_shape, ins[0].axes, ins[0].axes), "kind": kind}
    if isinstance(module, _POOL_MODULES):
        return pool_fields(in_shape, out_shape, module.kernel_size, module.stride, module.padding)
    if isinstance(module, _ADAPTIVE_POOL_MODULES):
        return pool_fields(in_shape, out_shape)
    if isinstance(module, _FLATTEN_MODULES):
        return function_fields("flatten", ins, out_shape)
    return {**shape_fields(in_shape, out_shape, ins[0].axes), "kind": OpKind.OTHER}


def _dtype(dtype: torch.dtype) -> str:
    """'float32', 'int64'...: the element type's name as the IR (and NumPy, for ONNX) spells it."""
    return str(dtype).removeprefix("torch.")


def _matmul_name(scope: str) -> str:
    """A matmul of two activations is named after the module that runs it."""
    return f"{scope}.matmul" if scope else "matmul"


class _Builder:
    """Accumulates layers, resolving aliases (ops that are the identity on the graph)."""

    def __init__(self) -> None:
        self.layers: dict[str, Layer] = {}
        self.alias: dict[str, str] = {}

    def resolve(self, name: str) -> str:
        return self.alias.get(name, name)

    def operand(self, name: str, shape: tuple[int, ...]) -> Operand:
        """The operand ``name`` (a node or an alias of one) as the classifier reads it."""
        return Operand(tuple(shape), self.layers[self.resolve(name)].channel_axes)

    def add(self, name: str, op: str, ins: Sequence[tuple[str, tuple[int, ...]]], out_shape: tuple[int, ...],
            dtype: str, fields: dict[str, Any] | None, constants: Sequence[tuple[int, ...]] = ()) -> str:
        """Record a layer (or an alias when ``fields`` is None); returns the name consumers use.

        ``ins`` are the (producer, shape) pairs of the op's activation operands, in order;
        ``constants`` the shapes of the stored float tensors it also reads.
        """
        resolved = [self.resolve(i) for i, _ in ins]
        if fields is None:
            self.alias[name] = resolved[0] if resolved else name
            return self.alias[name]
        unique = name
        for i in itertools.count(1):
            if unique not in self.layers:
                break
            unique = f"{name}_{i}"
        inputs, in_shapes = operands(OpKind(fields["kind"]), resolved, [shape for _, shape in ins])
        self.layers[unique] = Layer(name=unique, op=op, inputs=inputs, in_shapes=in_shapes, out_shape=out_shape,
                                    dtype=dtype, constants=constant_operands(OpKind(fields["kind"]), constants),
                                    **fields)
        self.alias[name] = unique
        return unique

    def add_input(self, name: str, tensor_shape: tuple[int, ...], dtype: str) -> str:
        fields = shape_fields(tensor_shape, tensor_shape, out_axes=input_axes(tensor_shape, dtype))
        return self.add(name, "input", [], tensor_shape, dtype, {**fields, "kind": OpKind.INPUT})


def _as_inputs(example: torch.Tensor | Sequence[int] | tuple[torch.Tensor, ...],
               dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
    """The example inputs as tensors: a tensor, tensors, or a shape filled with zeros of ``dtype``
    (float32 by default; an integer dtype for token ids)."""
    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, (tuple, list)) and example and all(isinstance(t, torch.Tensor) for t in example):
        return tuple(example)
    if isinstance(example, (tuple, list)) and example and all(isinstance(s, int) and s > 0 for s in example):
        return (torch.zeros(tuple(int(s) for s in example), dtype=dtype or torch.float32),)
    raise ConfigError(f"Cannot use {example!r} as an example input.",
                      "Pass a tensor, a tuple of tensors or an input shape such as (1, 3, 224, 224).")


def _first_meta(meta: Any) -> TensorMetadata | None:
    if isinstance(meta, TensorMetadata):
        return meta
    if isinstance(meta, (tuple, list)):
        for m in meta:
            found = _first_meta(m)
            if found is not None:
                return found
    return None


def _operands(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The nodes ``node`` reads, in argument order with repeats (``all_input_nodes`` lists each
    once, which would make ``torch.cat([x, x], 1)`` look like a 1-input op)."""
    found: list[torch.fx.Node] = []
    torch.fx.node.map_arg((node.args, node.kwargs), found.append)
    return found


def _stored_float(value: Any) -> bool:
    """Whether an op argument that no input feeds is a float tensor (a parameter, a buffer or a value
    computed from them alone): a constant operand."""
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _is_tensor(value: Any) -> bool:
    """Whether an op argument is a tensor (an fx node carrying one, or the tensor itself)."""
    if isinstance(value, torch.fx.Node):
        return isinstance(_first_meta(value.meta.get("tensor_meta")), TensorMetadata)
    return isinstance(value, torch.Tensor)


def _ints(values: Any) -> tuple[int, ...] | None:
    """A dims argument (an int, ints, or one sequence of ints) as a tuple; None if any is computed."""
    if isinstance(values, (tuple, list)) and len(values) == 1 and isinstance(values[0], (tuple, list)):
        values = values[0]
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    return values if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else None


def _index_map(index: Any, rank: int) -> tuple[str, AxisMap | None]:
    """The classifier's name and axis map of ``x[index]``: 'unsqueeze' when it only adds axes."""
    items = index if isinstance(index, tuple) else (index,)
    if any(_is_tensor(i) or isinstance(i, (list, bool)) for i in items):
        return "getitem", None  # advanced indexing
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    axis_map: list[int | None] = []
    axis, layout = 0, True
    for item in items:
        if item is Ellipsis:
            axis_map += range(axis, axis + rank - consumed)
            axis += rank - consumed
        elif item is None:
            axis_map.append(None)
        elif isinstance(item, slice):
            axis_map.append(axis)
            layout = layout and item == slice(None)
            axis += 1
        else:  # an integer, possibly computed: the axis goes
            axis, layout = axis + 1, False
    return ("unsqueeze" if layout else "getitem"), (*axis_map, *range(axis, rank))


def _op_params(op: str, args: Sequence[Any], kwargs: dict[str, Any],
               rank: int) -> tuple[str, AxisMap | None, int | None]:
    """The classifier's name, axis map and axis (a concat's) of a torch op, from its arguments."""
    rest = tuple(args[1:])
    if op in ("permute", "transpose", "swapaxes", "swapdims", "t") and not rank:
        return op, None, None
    if op == "permute":
        dims = _ints(kwargs.get("dims", rest))
        return op, (tuple(d % rank for d in dims) if dims else None), None
    if op in ("transpose", "swapaxes", "swapdims", "t"):
        pair = _ints(rest[:2]) if op != "t" else (0, rank - 1)
        if pair is None or len(pair) != 2:
            return op, None, None
        perm = list(range(rank))
        a, b = (p % rank for p in pair)
        perm[a], perm[b] = perm[b], perm[a]
        return op, tuple(perm), None
    if op == "getitem" and rest:
        name, axis_map = _index_map(rest[0], rank)
        return name, axis_map, None
    if op == "select":
        dim = _ints(kwargs.get("dim", rest[:1]))
        return op, (dropped(rank, dim) if dim else None), None
    if op in ("mean", "amax"):
        dims = _ints(kwargs.get("dim", rest[:1] or (None,)))
        keep = kwargs.get("keepdim", rest[1] if len(rest) > 1 else False)
        return op, (None if dims is None or keep else dropped(rank, dims)), None
    if op in CONCAT_OPS:
        dim = kwargs.get("dim", rest[0] if rest else 0)
        return op, None, dim if isinstance(dim, int) else None
    return op, None, None


def _op_fields(op: str, args: Sequence[Any], kwargs: dict[str, Any], ins: Sequence[Operand],
               out_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Fields of a functional op (``F.conv2d``, ``torch.matmul``, ``x.view``...) from its arguments."""
    compute = _functional_compute_fields(op, args, kwargs, ins, out_shape)
    if compute is not None:
        return compute
    name, axis_map, dim = _op_params(op, args, kwargs, len(ins[0].shape) if ins else 0)
    return function_fields(name, ins, out_shape, axis_map, dim)


def _scope(node: torch.fx.Node) -> str:
    """The path of the innermost module whose forward made an fx node ('' at the top)."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(next(reversed(stack.values()))[0]) if stack else ""


def _fx_workload(model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> Workload:
    gm = torch.fx.symbolic_trace(model)
    ShapeProp(gm).propagate(*inputs)
    modules = dict(gm.named_modules())
    b = _Builder()
    active: dict[str, tuple[int, ...]] = {}  # fx nodes carrying activations (derived from an input): their shapes
    stored: dict[str, tuple[int, ...]] = {}  # fx nodes carrying float constants (parameters, buffers): their shapes
    outputs: list[str] = []
    for node in gm.graph.nodes:
        meta = _first_meta(node.meta.get("tensor_meta"))
        if node.op == "placeholder":
            if meta is not None:  # else an optional argument left at its default
                active[node.name] = tuple(meta.shape)
                b.add_input(node.name, active[node.name], _dtype(meta.dtype))
            continue
        if node.op == "output":
            outputs = [b.resolve(a.name) for a in node.all_input_nodes if a.name in active]
            continue
        srcs = [a for a in _operands(node) if a.name in active]
        if node.op == "get_attr" or not srcs or meta is None:  # not activations: parameters, constants, sizes
            if meta is not None and meta.dtype.is_floating_point:
                stored[node.name] = _stored_shape(node, tuple(meta.shape), stored)
            continue
        shapes = [active[s.name] for s in srcs]
        ins = [b.operand(s.name, shape) for s, shape in zip(srcs, shapes)]
        out_shape = tuple(meta.shape)
        if node.op == "call_module":
            module = modules[node.target]
            fields = module_fields(module, ins, out_shape)
            layer_name, op = str(node.target), type(module).__name__
        else:
            op = normalize_op_name(getattr(node.target, "__name__", str(node.target)))
            src_meta = srcs[0].meta.get("tensor_meta")
            if op == "getitem" and not isinstance(src_meta, TensorMetadata):
                fields = None  # picking one tensor out of a tuple-returning op
            else:
                fields = _op_fields(op, node.args, node.kwargs, ins, out_shape)
            matmul = fields is not None and fields["kind"] is OpKind.MATMUL
            layer_name = _matmul_name(_scope(node)) if matmul else node.name
        b.add(layer_name, op, [(s.name, shape) for s, shape in zip(srcs, shapes)], out_shape, _dtype(meta.dtype),
              fields, [stored[a.name] for a in _operands(node) if a.name in stored])
        b.alias[node.name] = b.resolve(layer_name)
        active[node.name] = out_shape
    return Workload(name=name, layers=features_last_inputs(tuple(b.layers.values())),
                    input_shape=tuple(inputs[0].shape),
                    outputs=tuple(dict.fromkeys(outputs)), source="torch.fx")


def _stored_shape(node: torch.fx.Node, shape: tuple[int, ...],
                  stored: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape of the stored values a constant fx node holds: its own, or its source's where it only
    broadcasts one (``cls_token.expand(batch, -1, -1)``)."""
    op = normalize_op_name(getattr(node.target, "__name__", str(node.target)))
    source = _operands(node)[:1]
    return stored[source[0].name] if op in BROADCAST_OPS and source and source[0].name in stored else shape


def _weight_shape(arg: Any) -> tuple[int, ...] | None:
    if isinstance(arg, torch.Tensor):
        return tuple(arg.shape)
    meta = _first_meta(getattr(arg, "meta", {}).get("tensor_meta")) if hasattr(arg, "meta") else None
    if meta is None and hasattr(arg, "meta") and isinstance(arg.meta.get("val"), torch.Tensor):
        return tuple(arg.meta["val"].shape)
    return tuple(meta.shape) if meta is not None else None


def _functional_compute_fields(op: str, args: Sequence[Any], kwargs: dict[str, Any], ins: Sequence[Operand],
                               out_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Fields of ``F.conv1d/conv2d/linear/embedding`` called with a weight tensor, or of a matmul by
    a 2-D weight (a linear layer, as ONNX reads it), else ``None``."""
    in_shape = tuple(ins[0].shape) if ins else out_shape
    if op in ("conv1d", "conv2d"):
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        bound = {**defaults, **dict(zip(names, args)), **kwargs}
        weight = _weight_shape(bound["weight"])
        if weight is None:
            return None
        return conv_fields(in_shape, out_shape, weight, bound["stride"], bound["padding"], bound["dilation"],
                           int(bound["groups"]), bound["bias"] is not None)
    if op == "linear":
        bound = {"bias": None, **dict(zip(("input", "weight", "bias"), args)), **kwargs}
        return linear_fields(in_shape, out_shape, bound["bias"] is not None)
    if op == "embedding":
        table = _weight_shape(args[1] if len(args) > 1 else kwargs.get("weight"))
        return embed_fields(in_shape, out_shape, table[0]) if table else None
    if op in MATMUL_OPS and len(ins) == 1 and len(args) == 2:  # x @ W, the activation first
        weight = _weight_shape(args[1])
        if weight is not None and len(weight) == 2 and in_shape[-1] == weight[0] and \
                out_shape == (*in_shape[:-1], weight[1]):
            return linear_fields(in_shape, out_shape, False)
    return None


class _FunctionRecorder(TorchFunctionMode):
    """Sees functional ops outside hooked leaf modules and hands them to the hook tracer."""

    def __init__(self, on_call: _OnCall) -> None:
        super().__init__()
        self.on_call = on_call
        self.depth = 0  # > 0 while inside a recorded leaf module

    def __torch_function__(self, func: Callable[..., Any], types: Collection[type], args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            self.on_call(func, args, kwargs, out)
        return out


def _input_names(model: nn.Module, count: int) -> list[str]:
    """The forward's parameter names for its inputs (as torch.fx names them), else x, x_1..."""
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[:count] if len(params) >= count else ["x" if i == 0 else f"x_{i}" for i in range(count)]


def _hook_workload(model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> Workload:
    b = _Builder()
    producer: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keep tensors alive so their ids stay unique during the trace
    counts: dict[str, int] = {}
    scopes: list[str] = []  # paths of the modules running now, innermost last
    broadcast_of: dict[int, tuple[int, ...]] = {}  # a constant that only broadcasts another: the stored shape

    def tensors(obj: Any) -> list[torch.Tensor]:
        if isinstance(obj, torch.Tensor):
            return [obj]
        if isinstance(obj, (tuple, list)):
            return [t for o in obj for t in tensors(o)]
        if isinstance(obj, dict):
            return [t for o in obj.values() for t in tensors(o)]
        return []

    def record(layer_name: str, op: str, args: Any, out: Any, fields_fn: _FieldsFn) -> None:
        srcs = [t for t in tensors(args) if id(t) in producer]
        outs = tensors(out)
        if not srcs or not outs:
            return
        ins = [(producer[id(t)], tuple(t.shape)) for t in srcs]
        fields = fields_fn([b.operand(p, shape) for p, shape in ins], tuple(outs[0].shape))
        if fields is not None and fields["kind"] is OpKind.MATMUL:
            layer_name = _matmul_name(scopes[-1] if scopes else "")
        constants = [broadcast_of.get(id(t), tuple(t.shape)) for t in tensors(args)
                     if id(t) not in producer and _stored_float(t)]
        used = b.add(layer_name, op, ins, tuple(outs[0].shape), _dtype(outs[0].dtype), fields, constants)
        for t in outs:
            producer[id(t)] = used
            keep.append(t)

    def unique(op: str) -> str:
        counts[op] = counts.get(op, -1) + 1
        return op if counts[op] == 0 else f"{op}_{counts[op]}"

    def on_function(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        op = normalize_op_name(getattr(func, "__name__", str(func)))
        if op in ("size", "dim", "numel", "shape", "get", "__get__") or not tensors(out):
            return
        source = tensors(args)[:1]
        if op in BROADCAST_OPS and source and id(source[0]) not in producer and isinstance(out, torch.Tensor):
            broadcast_of[id(out)] = broadcast_of.get(id(source[0]), tuple(source[0].shape))
            keep.append(out)
            return
        record(unique(op), op, (args, kwargs), out, lambda ins, o: _op_fields(op, args, kwargs, ins, o))

    recorder = _FunctionRecorder(on_function)
    handles: list[RemovableHandle] = []
    for mod_name, module in model.named_modules():
        parametrized = torch.nn.utils.parametrize.is_parametrized(module)  # its only children: parametrizations
        leaf = not (len(list(module.children())) and not parametrized) and \
            (isinstance(module, KNOWN_LEAVES) or bool(list(module.parameters(False))))

        def pre(mod: nn.Module, args: tuple[Any, ...], _n: str = mod_name, _leaf: bool = leaf) -> None:
            scopes.append(_n)
            recorder.depth += _leaf

        def post(mod: nn.Module, args: tuple[Any, ...], out: Any, _n: str = mod_name, _leaf: bool = leaf) -> None:
            scopes.pop()
            if not _leaf:
                return
            try:  # still inside the module: reading a parametrized weight's shape runs ops not to record
                record(_n, type(mod).__name__, args, out, lambda ins, o: module_fields(mod, ins, o))
            finally:
                recorder.depth -= 1

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    for in_name, x in zip(_input_names(model, len(inputs)), inputs):
        producer[id(x)] = b.add_input(in_name, tuple(x.shape), _dtype(x.dtype))
    try:
        with recorder:
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    outputs = [producer[id(t)] for t in tensors(out) if id(t) in producer]
    return Workload(name=name, layers=features_last_inputs(tuple(b.layers.values())),
                    input_shape=tuple(inputs[0].shape),
                    outputs=tuple(dict.fromkeys(outputs)), source="hooks")


def from_module(model: nn.Module, example_input: torch.Tensor | Sequence[int] | tuple[torch.Tensor, ...],
                name: str | None = None, method: str = "auto", dtype: torch.dtype | None = None) -> Workload:
    """The workload of ``model`` on ``example_input`` (a tensor, tensors or an input shape).

    ``method`` is 'fx', 'hooks' or 'auto' (fx, then hooks if fx cannot trace the model); an
    input shape is filled with zeros of ``dtype`` (float32 unless told, e.g. ``torch.int64`` for
    token ids). The model runs once in eval mode under ``torch.no_grad``; its training flag is
    restored.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"Expected a torch.nn.Module, got {type(model).__name__}.", "Pass the model object itself.")
    if method not in ("auto", "fx", "hooks"):
        raise ConfigError(f"Unknown extraction method {method!r}.", "Use 'auto', 'fx' or 'hooks'.")
    inputs = _as_inputs(example_input, dtype)
    name = name or type(model).__name__
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if method in ("auto", "fx"):
                try:
                    return _fx_workload(model, inputs, name)
                except Exception as exc:  # fx raises many kinds on untraceable code
                    if method == "fx":
                        raise ModelError(f"torch.fx cannot trace {name}: {type(exc).__name__}: {exc}.",
                                         "Use method='hooks', or make the forward free of data-dependent "
                                         "control flow.") from None
            try:
                return _hook_workload(model, inputs, name)
            except RuntimeError as exc:
                raise ModelError(f"{name} fails on an input of shape {tuple(inputs[0].shape)}: {exc}.",
                                 "Give the input shape the model expects (see its zoo entry or docs).") from None
    finally:
        model.train(was_training)
