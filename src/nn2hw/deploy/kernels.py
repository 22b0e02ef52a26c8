"""Which workload layers each runtime kernel computes: per-layer times from a profiler, fused kernels named.

A kernel name is read as a node name of torch's export (``nn2hw.deploy.names``). A module's kernel
(``/layer1/layer1.0/conv1/Conv``) is the layer of that module path. A functional op's kernel
(``/layer1/layer1.0/Relu_1``) is the layer of the same op that many places into the functional
layers of that module, in workload order (a functional layer belongs to the module of the
module layer before it). Then fusion: layers without a kernel of their own are assigned to the
kernel that computes them: a kernel named after the last op of a fused chain (ONNX Runtime's
NCHWc Conv+BatchNorm+Relu is named after the Relu) takes the conv, norm and activation layers
before it; any other layer without a kernel (never a conv/linear one) goes with the kernel of its
first input (a Conv kernel with its BatchNorm and activation folded in). A kernel that matches
no layer (a layout reorder, a transpose ONNX Runtime inserted) is kept under its own name.
A workload read from the ONNX file (``nn2hw.workload.from_onnx``) names each node's layer after its
scope and node (``layer1.0.Relu``): a kernel named after that node is that layer.
A kernel whose name torch's exporter did not give (ONNX Runtime names the kernels of some fusions
after the pass: 'SkipLayerNormalization_token_7', 'Gelu') is read by the tensor it writes, which
keeps the name of the last node it replaced (``/encoder/layer.0/output/LayerNorm/LayerNormalization_output_0``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nn2hw.deploy.names import parse_node_name
from nn2hw.workload import Layer, OpKind, Workload
from nn2hw.workload._classify import ELTWISE_OPS, onnx_op_name

_COMPUTE = frozenset({OpKind.CONV, OpKind.LINEAR, OpKind.MATMUL})
_CHAIN_ENDS = frozenset({OpKind.NORM, OpKind.ACT, OpKind.ELTWISE})
"""Ops a runtime fuses into the conv/linear kernel before them."""


def _family(op: str) -> str:
    """'iadd' / 'radd' -> 'add': in-place and reflected element-wise ops are the ONNX op's."""
    return op[1:] if op in ELTWISE_OPS and op[:1] in "ir" and op[1:] in ELTWISE_OPS else op


def _is_module(layer: Layer) -> bool:
    """Module layers carry their class name as op ('Conv2d'); functional ones the function's ('relu')."""
    return layer.op[:1].isupper()


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _functional_scopes(workload: Workload) -> dict[str, str]:
    """Each functional layer's module: the parent path of the module layer before it ('' at the top)."""
    scopes, last = {}, ""
    for layer in workload.layers:
        if _is_module(layer):
            last = _parent(layer.name)
        elif layer.kind is not OpKind.INPUT:
            scopes[layer.name] = last
    return scopes


def _match(name: str, workload: Workload, scopes: dict[str, str]) -> str | None:
    parsed = parse_node_name(name)
    if parsed is None:
        return None
    own = f"{parsed.op_type}_{parsed.occurrence}" if parsed.occurrence else parsed.op_type
    direct = f"{parsed.path}.{own}" if parsed.path else own
    if direct in workload:  # a workload read from the ONNX file names a node's layer so ('layer1.0.Relu')
        return direct
    path = parsed.path
    while path:
        if path in workload and _is_module(workload.layer(path)):
            return path
        path = _parent(path)
    family = _family(onnx_op_name(parsed.op_type))
    same = [n for n in scopes if _family(workload.layer(n).op) == family]
    scope: str | None = parsed.path
    while scope is not None:
        candidates = [n for n in same if scopes[n] == scope]
        if candidates:
            return candidates[min(parsed.occurrence, len(candidates) - 1)]
        scope = _parent(scope) if scope else None
    return same[min(parsed.occurrence, len(same) - 1)] if same else None


def kernel_layers(kernel_names: Iterable[str], workload: Workload,
                  outputs: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """Runtime kernel/node name -> the workload layers it computes (in workload order); a kernel that
    matches no layer maps to its own name alone. Several kernels may compute parts of one layer (a
    quantize, the int8 conv and a dequantize of one int8 layer). ``outputs`` gives the tensor a kernel
    writes, read where its own name is not the exporter's."""
    names = list(dict.fromkeys(kernel_names))
    scopes = _functional_scopes(workload)
    written = outputs or {}
    own = {name: _match(name if parse_node_name(name) else written.get(name, name), workload, scopes)
           for name in names}
    kernel_of: dict[str, str] = {}  # layer -> the kernel that computes it (the first one named after it)
    for name, layer in own.items():
        if layer is not None:
            kernel_of.setdefault(layer, name)
    for end, kernel in list(kernel_of.items()):  # a kernel named after the end of a fused chain
        current = workload.layer(end)
        while current.kind in _CHAIN_ENDS and current.inputs and current.inputs[0] not in kernel_of:
            current = workload.layer(current.inputs[0])
            if current.kind not in _CHAIN_ENDS | _COMPUTE:
                break
            kernel_of[current.name] = kernel
    for rest in workload.layers:  # the rest: fused into the kernel of their first input
        if rest.name not in kernel_of and rest.kind not in _COMPUTE | {OpKind.INPUT} and rest.inputs \
                and rest.inputs[0] in kernel_of:
            kernel_of[rest.name] = kernel_of[rest.inputs[0]]
    order = {layer.name: i for i, layer in enumerate(workload.layers)}
    computed: dict[str, set[str]] = {name: set() for name in names}
    for name, matched in own.items():
        if matched is not None:
            computed[name].add(matched)
    for layer, kernel in kernel_of.items():
        computed[kernel].add(layer)
    return {name: tuple(sorted(layers, key=order.__getitem__)) or (name,) for name, layers in computed.items()}
