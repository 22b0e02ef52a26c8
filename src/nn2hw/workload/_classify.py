"""Shared op classification for the extractors: op name + shapes -> Layer fields.

The torch.fx path, the hook fallback and the ONNX reader all reduce an operation to a name,
the shapes of its activation inputs and output, and (for modules or ONNX nodes) attributes.
Keeping the mapping here makes the three extractors agree on what a layer is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nn2hw.workload.layer import OpKind

Shape = tuple[int, ...]

ELTWISE_OPS = frozenset({"add", "iadd", "radd", "sub", "isub", "rsub", "mul", "imul", "rmul", "truediv", "div",
                         "itruediv", "rtruediv", "maximum", "minimum", "sum", "where"})
ACT_OPS = frozenset({"relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "gelu", "silu",
                     "leaky_relu", "elu", "selu", "softmax", "log_softmax", "mish", "clamp", "clip", "neg", "exp",
                     "sqrt", "rsqrt", "pow", "abs", "softplus", "prelu", "erf", "reciprocal", "celu", "hardshrink"})
ALIAS_OPS = frozenset({"contiguous", "clone", "detach", "dropout", "dropout2d", "alpha_dropout", "to", "float",
                       "type_as", "identity"})
RESHAPE_OPS = frozenset({"flatten", "view", "reshape"})
POOL_OPS = frozenset({"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool1d",
                      "avg_pool2d", "max_pool1d", "max_pool2d", "mean", "amax", "max_pool2d_with_indices"})
CONCAT_OPS = frozenset({"cat", "concat", "concatenate"})
PAD_OPS = frozenset({"pad", "constant_pad_nd"})
SLICE_OPS = frozenset({"getitem", "narrow", "select"})
NORM_OPS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"})

ONNX_OP_NAMES = {
    "LeakyRelu": "leaky_relu", "LogSoftmax": "log_softmax", "Max": "maximum", "Min": "minimum",
    "Slice": "getitem", "Gather": "getitem", "BatchNormalization": "batch_norm", "LayerNormalization": "layer_norm",
    "GroupNormalization": "group_norm", "InstanceNormalization": "instance_norm",
    "GlobalAveragePool": "adaptive_avg_pool2d", "GlobalMaxPool": "adaptive_max_pool2d", "ReduceMean": "mean",
    "ReduceMax": "amax", "AveragePool": "avg_pool2d", "MaxPool": "max_pool2d", "Concat": "cat", "Cast": "to",
    "CastLike": "type_as", "QuantizeLinear": "to", "DequantizeLinear": "to", "Mean": "sum",
    "LRN": "local_response_norm",
}
"""ONNX op types whose torch-side name differs from ``normalize_op_name(op_type)``: lets the ONNX
reader classify a node exactly as the torch extractors classify the same operation. ONNX 'Mean' is
the element-wise mean of its inputs (like a sum), not a reduction; pools take their attributes in
the reader."""


def layer_inputs(kind: OpKind, producers: Sequence[str]) -> tuple[str, ...]:
    """``Layer.inputs`` from the producers of an op's activation operands, in operand order.

    A concat keeps every operand, repeats included: its channels are the sum over its inputs, so
    ``torch.cat([x, x], 1)`` must list x twice. Any other op lists each producer once (``x + x``
    reads one channel space).
    """
    return tuple(producers) if kind is OpKind.CONCAT else tuple(dict.fromkeys(producers))


def onnx_op_name(op_type: str) -> str:
    """The classifier's name for an ONNX op type: 'LeakyRelu' -> 'leaky_relu', 'Relu' -> 'relu'."""
    return ONNX_OP_NAMES.get(op_type) or normalize_op_name(op_type)


def normalize_op_name(raw: str) -> str:
    """'__iadd__' -> 'iadd', 'relu_' -> 'relu', 'torch.flatten' -> 'flatten'."""
    name = raw.rsplit(".", 1)[-1]
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    return name.rstrip("_").lower()


def nchw(shape: Sequence[int], features_last: bool = False) -> tuple[int, int, int, int]:
    """(batch, channels, h, w) of a tensor shape; 1-D convs map to h = 1, vectors to 1x1 maps.

    ``features_last`` reads a linear layer's input: features are the last dim, every other dim
    counts as batch rows.
    """
    shape = tuple(int(s) for s in shape)
    if features_last:
        return (math.prod(shape[:-1]) if len(shape) > 1 else 1, shape[-1] if shape else 1, 1, 1)
    if len(shape) == 4:
        return shape  # type: ignore[return-value]
    if len(shape) == 3:
        return (shape[0], shape[1], 1, shape[2])
    if len(shape) == 2:
        return (shape[0], shape[1], 1, 1)
    if len(shape) == 1:
        return (1, shape[0], 1, 1)
    if len(shape) == 0:
        return (1, 1, 1, 1)
    return (shape[0], shape[1], math.prod(shape[2:-1]), shape[-1])


def shape_fields(in_shape: Shape, out_shape: Shape, features_last: bool = False) -> dict[str, int]:
    """Layer shape fields from an input and an output tensor shape."""
    n, c, h, w = nchw(in_shape, features_last)
    _, k, p, q = nchw(out_shape, features_last)
    return {"batch": max(n, 1), "in_channels": max(c, 1), "in_h": max(h, 1), "in_w": max(w, 1),
            "out_channels": max(k, 1), "out_h": max(p, 1), "out_w": max(q, 1)}


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) else (1, 1)
    return (int(value), int(value))


def conv_fields(in_shape: Shape, out_shape: Shape, weight_shape: Shape, stride: Any, padding: Any,
                dilation: Any, groups: int, bias: bool) -> dict[str, Any]:
    """Fields of a (1-D or 2-D) convolution given its weight shape and hyper-parameters."""
    fields = shape_fields(in_shape, out_shape)
    one_d = len(weight_shape) == 3
    kh, kw = (1, int(weight_shape[2])) if one_d else (int(weight_shape[2]), int(weight_shape[3]))
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    if isinstance(padding, str):  # 'same' / 'valid'
        ph = (dh * (kh - 1)) // 2 if padding == "same" else 0
        pw = (dw * (kw - 1)) // 2 if padding == "same" else 0
    else:
        ph, pw = _pair(padding)
    if one_d:
        sh, dh, ph = 1, 1, 0
        sw, dw, pw = _pair(stride)[0], _pair(dilation)[0], (pw if isinstance(padding, str) else _pair(padding)[0])
    return {**fields, "kind": OpKind.CONV, "kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw,
            "pad_h": ph, "pad_w": pw, "dilation_h": dh, "dilation_w": dw, "groups": int(groups), "bias": bool(bias)}


def linear_fields(in_shape: Shape, out_shape: Shape, bias: bool) -> dict[str, Any]:
    return {**shape_fields(in_shape, out_shape, features_last=True), "kind": OpKind.LINEAR, "bias": bool(bias)}


def pool_fields(in_shape: Shape, out_shape: Shape, kernel: Any = None, stride: Any = None,
                padding: Any = 0) -> dict[str, Any]:
    """Pooling fields; kernel and stride are inferred from the shapes when not given (adaptive pools)."""
    fields = shape_fields(in_shape, out_shape)
    if kernel is None:
        kernel = (max(fields["in_h"] // fields["out_h"], 1), max(fields["in_w"] // fields["out_w"], 1))
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride if stride is not None else (kh, kw))
    ph, pw = _pair(padding)
    return {**fields, "kind": OpKind.POOL, "kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw,
            "pad_h": ph, "pad_w": pw}


def function_fields(name: str, in_shapes: Sequence[Shape], out_shape: Shape) -> dict[str, Any] | None:
    """Fields of a weightless function op from its name and shapes.

    Returns ``None`` for pure aliases (dropout, contiguous, a view that keeps the shape), and
    ``kind=OTHER`` for anything not understood, so that it is listed, never dropped.
    """
    in_shape = in_shapes[0] if in_shapes else out_shape
    fields = shape_fields(in_shape, out_shape)
    same = tuple(in_shape) == tuple(out_shape)
    if name in ALIAS_OPS or (name in RESHAPE_OPS and same):
        return None
    if name in ELTWISE_OPS:  # one tensor input: scaling (same shape) or a reduction such as x.sum()
        kind = OpKind.ELTWISE if len(in_shapes) > 1 else OpKind.ACT if same else OpKind.OTHER
        return {**fields, "kind": kind}
    if name in ACT_OPS and same:
        return {**fields, "kind": OpKind.ACT}
    if name in NORM_OPS and same:
        return {**fields, "kind": OpKind.NORM}
    if name in RESHAPE_OPS or name == "squeeze":
        flat = len(out_shape) == 2 and out_shape[1] == math.prod(in_shape[1:]) and out_shape[0] == in_shape[0]
        return {**fields, "kind": OpKind.RESHAPE if flat else OpKind.OTHER}
    if name in POOL_OPS:
        keeps_channels = fields["out_channels"] == fields["in_channels"] and len(in_shape) >= 3
        return pool_fields(in_shape, out_shape) if keeps_channels else {**fields, "kind": OpKind.OTHER}
    if name in CONCAT_OPS:
        ch = [nchw(s)[1] for s in in_shapes]
        along_channels = sum(ch) == fields["out_channels"] and all(
            tuple(s[2:]) == tuple(out_shape[2:]) for s in in_shapes)
        return {**fields, "kind": OpKind.CONCAT if along_channels else OpKind.OTHER}
    if name in PAD_OPS:
        return {**fields, "kind": OpKind.PAD}
    if name in SLICE_OPS:
        return {**fields, "kind": OpKind.SLICE if len(in_shape) == len(out_shape) else OpKind.OTHER}
    return {**fields, "kind": OpKind.OTHER}
