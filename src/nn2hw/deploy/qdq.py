"""Exact int8 operators in an exported ONNX graph: QuantizeLinear/DequantizeLinear with power-of-two scales.

A plan's fixed-point value with ``frac`` fraction bits is an integer times 2^-frac, so with
scale = 2^-frac and zero point 0, QuantizeLinear (round half to even, saturate to int8) computes
what the fake quantizer computes (``torch.round`` also rounds half to even), and an 8-bit value's
range is int8's. Narrower values get a Clip at their fixed-point bounds: before the input's
QuantizeLinear, after the output's DequantizeLinear, where it leaves ONNX Runtime's patterns intact.
Per layer the graph becomes::

    x -[Clip]- Q - DQ -> Conv/Gemm <- DQ(int8 weight), DQ(int32 bias: scale s_x*s_w) -> Q - DQ -[Clip]- y

which ONNX Runtime's QDQ fusion turns into QLinearConv / QGemm (an int8 kernel, int32 accumulation);
a linear layer on a sequence, exported as ``MatMul`` + bias ``Add``, becomes QGemm too (ONNX
Runtime's MatMulAddFusion makes it a Gemm on the rows first, and then rounds the float bias to int32
at s_x*s_w itself). The bias is exact either way: the fake-quantized layer already adds it on that
grid (``compress._torch.accumulator_bias``). A bias off the grid is refused: the int8 kernel would add
a different one, and every sum that close to a rounding boundary would round the other way (this
was MiniLM's 0.8 % of FFN outputs one step off, grown to 1.25 at the logits). The TorchScript exporter
writes its weight as ``Transpose(W)`` and shares equal constants through ``Identity`` nodes: the Transpose is
folded into the int8 weight (and removed) and the Identity followed, so the weight is a constant.

The integers are stored as ``storage`` says (``nn2hw.measure.int8``: int8 with zero point 0, or
uint8 with zero point 128 where ONNX Runtime's u8 x s8 kernels saturate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn2hw.deploy.freeze import LayerQuant
from nn2hw.deploy.names import parse_node_name
from nn2hw.errors import ModelError
from nn2hw.measure.int8 import INT8_STORAGES

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
"""ONNX ops of a conv/linear layer that nn2hw quantizes."""
INT32_RANGE = (-(2 ** 31), 2 ** 31 - 1)
"""The integers the int32 bias of an int8 kernel holds."""


@dataclass(frozen=True)
class Rewrite:
    """What ``quantize_graph`` did: the layers left in float, each with the reason, and per int8 layer
    the tensors around it (its float input before any Clip/QuantizeLinear, its output after the last
    DequantizeLinear/Clip), which the export's check reads to compare the layer with torch's."""

    left: dict[str, str] = field(default_factory=dict)
    taps: dict[str, tuple[str, str]] = field(default_factory=dict)


def quantize_graph(model: Any, layers: Mapping[str, LayerQuant], storage: str = "s8s8") -> Rewrite:
    """Rewrite ``model`` (an onnx ModelProto, in place) so each int8 layer of ``layers`` runs int8, its
    integers stored as ``storage`` (one of ``INT8_STORAGES``)."""
    from onnx import helper, numpy_helper

    stored = INT8_STORAGES[storage]
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inits.update({n.output[0]: inits[n.input[0]] for n in graph.node  # the exporter shares equal constants
                  if n.op_type == "Identity" and n.input and n.input[0] in inits})
    by_path: dict[str, list[Any]] = {}
    for node in graph.node:
        parsed = parse_node_name(node.name)
        if parsed is not None:
            by_path.setdefault(parsed.path, []).append(node)
    before: dict[int, list[Any]] = {}  # id(node) -> nodes to insert before it
    after: dict[int, list[Any]] = {}
    left: dict[str, str] = {}
    taps: dict[str, tuple[str, str]] = {}
    dead: set[int] = set()  # id(node) of weight Transposes folded into an int8 weight
    for name, quant in layers.items():
        nodes = by_path.get(name, [])
        compute = [n for n in nodes if n.op_type in COMPUTE_OPS]
        found = _constant_weight(compute[0], nodes, inits) if len(compute) == 1 else None
        if found is None:
            ops = ", ".join(n.op_type for n in nodes) or "no node"
            left[name] = (f"exported as {ops}; the int8 export rewrites one Conv / Gemm / MatMul with constant "
                          "weights per layer, so it runs in fp32 with the fixed-point values held in float")
            continue
        node, last = compute[0], nodes[-1]
        tag = node.name  # inserted nodes keep the layer's scope: /conv1/Conv_x_quant
        new_before, new_after = [], []

        def const(suffix: str, value: np.ndarray, _tag: str = tag) -> str:
            tensor = numpy_helper.from_array(value, f"{_tag}_{suffix}")
            graph.initializer.append(tensor)
            return tensor.name

        s_x, s_w = np.float32(quant.act_step), np.float32(quant.weight_step)
        zero = const("zp", np.array(stored.zero_point, dtype=stored.dtype))
        x_scale, w_scale = const("x_scale", np.array(s_x)), const("w_scale", np.array(s_w))
        y_scale = const("y_scale", np.array(np.float32(quant.out_step)))
        narrow = quant.act_bits is not None and quant.act_bits < 8
        lo, hi, y_lo, y_hi = (const(k, np.array(v, dtype=np.float32)) for k, v in
                              zip(("lo", "hi", "y_lo", "y_hi"), (*quant.act_range, *quant.out_range))) \
            if narrow else ("", "", "", "")
        # input: [Clip] -> Q -> DQ, for this node only (other readers of x see it unquantized, as in torch)
        src = node.input[0]
        taps[name] = (src, last.output[0])
        if narrow:
            new_before.append(helper.make_node("Clip", [src, lo, hi], [f"{tag}_x_clip"], name=f"{tag}_x_clip"))
            src = f"{tag}_x_clip"
        new_before += [helper.make_node("QuantizeLinear", [src, x_scale, zero], [f"{tag}_x_q"], name=f"{tag}_x_q"),
                       helper.make_node("DequantizeLinear", [f"{tag}_x_q", x_scale, zero], [f"{tag}_x_dq"],
                                        name=f"{tag}_x_dq")]
        node.input[0] = f"{tag}_x_dq"
        # weight: int8 initializer -> DQ (its values are exact multiples of the step)
        weight, folded = found
        dead |= {id(n) for n in folded}
        w_int = _integers(weight, float(s_w), name, -128, 127, "weights")
        new_before.append(helper.make_node("DequantizeLinear", [const("w_int8", stored.encode(w_int)), w_scale,
                                                                zero], [f"{tag}_w_dq"], name=f"{tag}_w_dq"))
        node.input[1] = f"{tag}_w_dq"
        # bias: int32 at scale s_x * s_w, as QLinearConv / QGemm take it
        b_step, (b_low, b_high) = float(s_x * s_w), INT32_RANGE
        if len(node.input) > 2 and node.input[2] in inits and node.op_type in ("Conv", "Gemm"):
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            b_scale = const("b_scale", np.array(s_x * s_w, dtype=np.float32))
            b_int = _integers(bias, b_step, name, b_low, b_high, "biases").astype(np.int32)
            new_before.append(helper.make_node("DequantizeLinear", [const("b_int32", b_int), b_scale],
                                               [f"{tag}_b_dq"], name=f"{tag}_b_dq"))
            node.input[2] = f"{tag}_b_dq"
        elif node.op_type == "MatMul" and (added := _added_bias(node, nodes, inits)) is not None:
            _integers(added, b_step, name, b_low, b_high, "biases")  # ONNX Runtime rounds it to int32 at b_step
        # output: Q -> DQ [-> Clip], read by every consumer (the module returns the quantized value)
        out = last.output[0]
        last.output[0] = f"{tag}_y"
        tail = [helper.make_node("QuantizeLinear", [f"{tag}_y", y_scale, zero], [f"{tag}_y_q"], name=f"{tag}_y_q"),
                helper.make_node("DequantizeLinear", [f"{tag}_y_q", y_scale, zero],
                                 [f"{tag}_y_dq" if narrow else out], name=f"{tag}_y_dq")]
        if narrow:
            tail.append(helper.make_node("Clip", [f"{tag}_y_dq", y_lo, y_hi], [out], name=f"{tag}_y_clip"))
        new_after += tail
        before.setdefault(id(node), []).extend(new_before)
        after.setdefault(id(last), []).extend(new_after)
    ordered = []
    for node in graph.node:
        if id(node) not in dead:
            ordered += [*before.get(id(node), []), node, *after.get(id(node), [])]
    del graph.node[:]
    graph.node.extend(ordered)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]  # the float weights the int8 ones replace go
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return Rewrite(left, taps)


def _constant_weight(node: Any, nodes: list[Any], inits: Mapping[str, Any]) -> tuple[np.ndarray, list[Any]] | None:
    """The constant weight a compute node multiplies by (float64), with the layer's nodes that only
    compute it: an initializer, or a Transpose of one (the TorchScript exporter's ``nn.Linear`` on a
    sequence is ``Transpose(W)``, ``MatMul``, ``Add``); None when the weight is not a constant."""
    from onnx import numpy_helper

    source = node.input[1] if len(node.input) > 1 else ""
    if source in inits:
        return numpy_helper.to_array(inits[source]).astype(np.float64), []
    transpose = next((n for n in nodes if n.op_type == "Transpose" and source in n.output), None)
    if transpose is None or transpose.input[0] not in inits:
        return None
    perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
    return np.transpose(numpy_helper.to_array(inits[transpose.input[0]]).astype(np.float64), perm), [transpose]


def _added_bias(node: Any, nodes: list[Any], inits: Mapping[str, Any]) -> np.ndarray | None:
    """The constant a layer's ``Add`` adds to ``node``'s output (the bias of a linear layer exported as
    ``MatMul`` + ``Add``), float64; None when the layer has none."""
    from onnx import numpy_helper

    for add in nodes:
        if add.op_type == "Add" and node.output[0] in add.input:
            other = [i for i in add.input if i != node.output[0]]
            if len(other) == 1 and other[0] in inits:
                return numpy_helper.to_array(inits[other[0]]).astype(np.float64)
    return None


def _integers(values: np.ndarray, step: float, layer: str, low: int, high: int, what: str) -> np.ndarray:
    """``values`` / ``step`` as integers in [low, high]; a ModelError when they are not on that grid."""
    scaled = values / step
    ints = np.rint(scaled)
    off = float(np.abs(scaled - ints).max()) if ints.size else 0.0
    if off > 1e-3 or (ints.size and (ints.min() < low or ints.max() > high)):
        raise ModelError(f"The {what} of layer {layer!r} are not {step:g}-step fixed-point values in "
                         f"[{low}, {high}] steps (off by up to {off:.3g} steps).",
                         "Export the model apply_plan returned (its quantizers set the grid), not a changed copy.")
    return ints
