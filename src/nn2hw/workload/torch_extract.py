"""Extract a ``Workload`` from an ``nn.Module`` and an example input.

torch.fx with shape propagation is tried first (an exact graph, functional adds and concats
included). Models fx cannot trace (data-dependent control flow) fall back to forward hooks on
leaf modules plus a ``TorchFunctionMode`` that sees the functional ops between them, linked by
tensor identity. Either way unknown ops are kept as ``OpKind.OTHER`` layers, never dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.overrides import TorchFunctionMode

from nn2hw.errors import ConfigError, ModelError
from nn2hw.workload._classify import (
    conv_fields,
    function_fields,
    layer_inputs,
    linear_fields,
    normalize_op_name,
    pool_fields,
    shape_fields,
)
from nn2hw.workload.layer import Layer, OpKind, Workload

_ACT_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softmax, nn.LogSoftmax, nn.Mish, nn.Softplus)
_NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
                 nn.LocalResponseNorm)
_ALIAS_MODULES = (nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
_ADAPTIVE_POOL_MODULES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_PAD_MODULES = (nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)
_FLATTEN_MODULES = (nn.Flatten,)
KNOWN_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Linear) + _ACT_MODULES + _NORM_MODULES + _ALIAS_MODULES + _POOL_MODULES + \
    _ADAPTIVE_POOL_MODULES + _PAD_MODULES + _FLATTEN_MODULES


COMPRESSION_FIELDS_ATTR = "nn2hw_layer_fields"
"""Module attribute where ``nn2hw.compress`` transforms record the Layer fields they set (bit
widths, ``kept_per_kernel``) that the tensor shapes alone cannot show."""


def module_fields(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Layer fields of a leaf module (``None`` for aliases such as dropout)."""
    recorded = dict(getattr(module, COMPRESSION_FIELDS_ATTR, {}))
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return {**conv_fields(in_shape, out_shape, tuple(module.weight.shape), module.stride, module.padding,
                              module.dilation, module.groups, module.bias is not None), **recorded}
    if isinstance(module, nn.Linear):
        return {**linear_fields(in_shape, out_shape, module.bias is not None), **recorded}
    if isinstance(module, _ALIAS_MODULES):
        return None
    fields = shape_fields(in_shape, out_shape)
    if isinstance(module, _ACT_MODULES):
        return {**fields, "kind": OpKind.ACT}
    if isinstance(module, _NORM_MODULES):
        return {**fields, "kind": OpKind.NORM}
    if isinstance(module, _POOL_MODULES):
        return pool_fields(in_shape, out_shape, module.kernel_size, module.stride, module.padding)
    if isinstance(module, _ADAPTIVE_POOL_MODULES):
        return pool_fields(in_shape, out_shape)
    if isinstance(module, _PAD_MODULES):
        return {**fields, "kind": OpKind.PAD}
    if isinstance(module, _FLATTEN_MODULES):
        return function_fields("flatten", [in_shape], out_shape)
    return {**fields, "kind": OpKind.OTHER}


class _Builder:
    """Accumulates layers, resolving aliases (ops that are the identity on the graph)."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.alias: dict[str, str] = {}
        self.names: set[str] = set()

    def resolve(self, name: str) -> str:
        return self.alias.get(name, name)

    def add(self, name: str, op: str, inputs: Sequence[str], fields: dict[str, Any] | None) -> str:
        """Record a layer (or an alias when ``fields`` is None); returns the name consumers use."""
        resolved = [self.resolve(i) for i in inputs]
        if fields is None:
            self.alias[name] = resolved[0] if resolved else name
            return self.alias[name]
        unique = name
        for i in itertools.count(1):
            if unique not in self.names:
                break
            unique = f"{name}_{i}"
        self.names.add(unique)
        self.layers.append(Layer(name=unique, op=op, inputs=layer_inputs(OpKind(fields["kind"]), resolved), **fields))
        self.alias[name] = unique
        return unique


def _as_inputs(example: torch.Tensor | Sequence[int] | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, (tuple, list)) and example and all(isinstance(t, torch.Tensor) for t in example):
        return tuple(example)
    if isinstance(example, (tuple, list)) and example and all(isinstance(s, int) and s > 0 for s in example):
        return (torch.zeros(tuple(example)),)
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


def _fx_workload(model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> Workload:
    gm = torch.fx.symbolic_trace(model)
    ShapeProp(gm).propagate(*inputs)
    modules = dict(gm.named_modules())
    b = _Builder()
    active: set[str] = set()  # fx nodes carrying activations (derived from an input)
    outputs: list[str] = []
    for node in gm.graph.nodes:
        meta = _first_meta(node.meta.get("tensor_meta"))
        if node.op == "placeholder":
            shape = tuple(meta.shape) if meta is not None else tuple(inputs[len(active)].shape)
            b.add(node.name, "input", [], {**shape_fields(shape, shape), "kind": OpKind.INPUT})
            active.add(node.name)
            continue
        if node.op == "output":
            outputs = [b.resolve(a.name) for a in node.all_input_nodes if a.name in active]
            continue
        srcs = [a for a in _operands(node) if a.name in active]
        if node.op == "get_attr" or not srcs or meta is None:
            continue  # parameters, constants and non-tensor values (x.size(0)) are not activations
        in_shapes = [tuple(_first_meta(s.meta.get("tensor_meta")).shape) for s in srcs
                     if _first_meta(s.meta.get("tensor_meta")) is not None]
        out_shape = tuple(meta.shape)
        in_shape = in_shapes[0] if in_shapes else out_shape
        if node.op == "call_module":
            module = modules[node.target]
            fields = module_fields(module, in_shape, out_shape)
            layer_name, op = str(node.target), type(module).__name__
        else:
            op = normalize_op_name(getattr(node.target, "__name__", str(node.target)))
            src_meta = srcs[0].meta.get("tensor_meta")
            if op == "getitem" and not isinstance(src_meta, TensorMetadata):
                fields = None  # picking one tensor out of a tuple-returning op
            else:
                fields = _functional_compute_fields(op, node.args, node.kwargs, in_shape, out_shape) or \
                    function_fields(op, in_shapes, out_shape)
            layer_name = node.name
        b.add(layer_name, op, [s.name for s in srcs], fields)
        b.alias[node.name] = b.resolve(layer_name)
        active.add(node.name)
    return Workload(name=name, layers=tuple(b.layers), input_shape=tuple(inputs[0].shape),
                    outputs=tuple(dict.fromkeys(outputs)), source="torch.fx")


def _weight_shape(arg: Any) -> tuple[int, ...] | None:
    if isinstance(arg, torch.Tensor):
        return tuple(arg.shape)
    meta = _first_meta(getattr(arg, "meta", {}).get("tensor_meta")) if hasattr(arg, "meta") else None
    if meta is None and hasattr(arg, "meta") and isinstance(arg.meta.get("val"), torch.Tensor):
        return tuple(arg.meta["val"].shape)
    return tuple(meta.shape) if meta is not None else None


def _functional_compute_fields(op: str, args: Sequence[Any], kwargs: dict[str, Any], in_shape: tuple[int, ...],
                               out_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Fields of ``F.conv1d/conv2d/linear`` called with a weight tensor, else ``None``."""
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
    return None


class _FunctionRecorder(TorchFunctionMode):
    """Sees functional ops outside hooked leaf modules and hands them to the hook tracer."""

    def __init__(self, on_call: Callable[[Callable, tuple, dict, Any], None]) -> None:
        super().__init__()
        self.on_call = on_call
        self.depth = 0  # > 0 while inside a recorded leaf module

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            self.on_call(func, args, kwargs, out)
        return out


def _hook_workload(model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> Workload:
    b = _Builder()
    producer: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keep tensors alive so their ids stay unique during the trace
    counts: dict[str, int] = {}

    def tensors(obj: Any) -> list[torch.Tensor]:
        if isinstance(obj, torch.Tensor):
            return [obj]
        if isinstance(obj, (tuple, list)):
            return [t for o in obj for t in tensors(o)]
        if isinstance(obj, dict):
            return [t for o in obj.values() for t in tensors(o)]
        return []

    def record(layer_name: str, op: str, args: Any, out: Any, fields_fn: Callable) -> None:
        srcs = [t for t in tensors(args) if id(t) in producer]
        outs = tensors(out)
        if not srcs or not outs:
            return
        fields = fields_fn([tuple(t.shape) for t in srcs], tuple(outs[0].shape))
        used = b.add(layer_name, op, [producer[id(t)] for t in srcs], fields)
        for t in outs:
            producer[id(t)] = used
            keep.append(t)

    def unique(op: str) -> str:
        counts[op] = counts.get(op, -1) + 1
        return op if counts[op] == 0 else f"{op}_{counts[op]}"

    def on_function(func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
        op = normalize_op_name(getattr(func, "__name__", str(func)))
        if op in ("size", "dim", "numel", "shape", "get", "__get__") or not tensors(out):
            return
        record(unique(op), op, (args, kwargs), out,
               lambda ins, o: _functional_compute_fields(op, args, kwargs, ins[0], o) or function_fields(op, ins, o))

    recorder = _FunctionRecorder(on_function)
    handles = []
    for mod_name, module in model.named_modules():
        parametrized = torch.nn.utils.parametrize.is_parametrized(module)  # its only children: parametrizations
        if (len(list(module.children())) and not parametrized) or \
                not (isinstance(module, KNOWN_LEAVES) or list(module.parameters(False))):
            continue

        def pre(mod, args, _n=mod_name):
            recorder.depth += 1

        def post(mod, args, out, _n=mod_name):
            try:  # still inside the module: reading a parametrized weight's shape runs ops not to record
                record(_n, type(mod).__name__, args, out, lambda ins, o, m=mod: module_fields(m, ins[0], o))
            finally:
                recorder.depth -= 1

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    for i, x in enumerate(inputs):
        in_name = "x" if i == 0 else f"x_{i}"
        b.add(in_name, "input", [], {**shape_fields(tuple(x.shape), tuple(x.shape)), "kind": OpKind.INPUT})
        producer[id(x)] = in_name
    try:
        with recorder:
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    outputs = [producer[id(t)] for t in tensors(out) if id(t) in producer]
    return Workload(name=name, layers=tuple(b.layers), input_shape=tuple(inputs[0].shape),
                    outputs=tuple(dict.fromkeys(outputs)), source="hooks")


def from_module(model: nn.Module, example_input: torch.Tensor | Sequence[int] | tuple[torch.Tensor, ...],
                name: str | None = None, method: str = "auto") -> Workload:
    """The workload of ``model`` on ``example_input`` (a tensor, tensors or an input shape).

    ``method`` is 'fx', 'hooks' or 'auto' (fx, then hooks if fx cannot trace the model). The
    model runs once in eval mode under ``torch.no_grad``; its training flag is restored.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"Expected a torch.nn.Module, got {type(model).__name__}.", "Pass the model object itself.")
    if method not in ("auto", "fx", "hooks"):
        raise ConfigError(f"Unknown extraction method {method!r}.", "Use 'auto', 'fx' or 'hooks'.")
    inputs = _as_inputs(example_input)
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

