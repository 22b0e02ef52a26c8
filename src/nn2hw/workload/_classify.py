"""Shared op classification for the extractors: op name + operands -> Layer fields.

The torch.fx path, the hook fallback and the ONNX reader all reduce an operation to a name,
its activation operands (shape and channel axes), its output shape and, for modules, ONNX nodes
and layout ops, a few attributes (a weight shape, a permutation, a concat axis). Keeping the
mapping here makes the three extractors agree on what a layer is, which axes of its output are
the channels, and what its cost view (batch, channels, h, w) is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from nn2hw.workload.layer import CONSTANT_KINDS, Layer, OpKind, Shape, matmul_view

Axes = tuple[int, ...]
AxisMap = Sequence[int | None]
"""For each output axis of a layout or selection op, the input axis it comes from (None: a new axis)."""

ELTWISE_OPS = frozenset({"add", "iadd", "radd", "sub", "isub", "rsub", "mul", "imul", "rmul", "truediv", "div",
                         "itruediv", "rtruediv", "maximum", "minimum", "sum", "where"})
ACT_OPS = frozenset({"relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "gelu", "silu",
                     "leaky_relu", "elu", "selu", "mish", "clamp", "clip", "neg", "exp", "sqrt", "rsqrt", "pow", "abs",
                     "softplus", "prelu", "erf", "reciprocal", "celu", "hardshrink",
                     "ne", "eq", "equal", "not", "logical_not"})  # comparisons: an attention mask from token ids
SOFTMAX_OPS = frozenset({"softmax", "log_softmax"})
ALIAS_OPS = frozenset({"contiguous", "clone", "detach", "dropout", "dropout2d", "alpha_dropout", "to", "float",
                       "type_as", "identity"})
RESHAPE_OPS = frozenset({"flatten", "unflatten", "view", "reshape", "squeeze", "unsqueeze", "permute", "transpose",
                         "t", "swapaxes", "swapdims"})
MATMUL_OPS = frozenset({"matmul", "bmm", "mm"})
POOL_OPS = frozenset({"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool1d",
                      "avg_pool2d", "max_pool1d", "max_pool2d", "mean", "amax", "max_pool2d_with_indices"})
CONCAT_OPS = frozenset({"cat", "concat", "concatenate"})
BROADCAST_OPS = frozenset({"expand", "expand_as", "broadcast_to"})
"""Views that repeat values without copying them: a constant read through one is its source (a class
token expanded over the batch reads its one stored row)."""
PAD_OPS = frozenset({"pad", "constant_pad_nd"})
SLICE_OPS = frozenset({"getitem", "narrow", "select"})
NORM_OPS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm",
                      "normalize"})  # F.normalize: an L2 norm over the channels

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


class Operand(NamedTuple):
    """An activation an op reads: its shape and the axes whose product is its channels."""

    shape: Shape
    axes: Axes


def default_axes(rank: int) -> Axes:
    """Channel axes of a tensor nothing else is known about: axis 1 (an image, a feature vector)."""
    return (1,) if rank >= 2 else (0,) if rank == 1 else ()


def input_axes(shape: Shape, dtype: str) -> Axes:
    """Channel axes of a graph input: none for integer or boolean data (token ids, masks)."""
    return () if dtype.startswith(("int", "uint", "bool")) else default_axes(len(shape))


def features_last_inputs(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    """``layers`` with each float graph input of rank >= 3 that only linear layers read holding its
    channels on the last axis (tokens x features, as those layers read it) instead of axis 1, an
    image's: what such an input holds is known only from its readers."""
    readers: dict[str, set[OpKind]] = {}
    for layer in layers:
        for name in layer.inputs:
            readers.setdefault(name, set()).add(layer.kind)

    def placed(layer: Layer) -> Layer:
        shape = tuple(layer.out_shape)
        if layer.kind is OpKind.INPUT and len(shape) >= 3 and layer.channel_axes and \
                readers.get(layer.name) == {OpKind.LINEAR}:
            return dataclasses.replace(layer, **shape_fields(shape, shape, features_last=True))
        return layer

    return tuple(placed(layer) for layer in layers)


def operands(kind: OpKind, producers: Sequence[str],
             shapes: Sequence[Shape]) -> tuple[tuple[str, ...], tuple[Shape, ...]]:
    """``Layer.inputs`` and ``Layer.in_shapes`` from the producers of an op's operands, in order.

    A concat and a matmul keep every operand, repeats included: a concat's channels are the sum
    over its inputs, so ``torch.cat([x, x], 1)`` lists x twice, and ``x @ x`` has two operands.
    Any other op lists each producer once (``x + x`` reads one channel space).
    """
    if kind in (OpKind.CONCAT, OpKind.MATMUL):
        return tuple(producers), tuple(tuple(s) for s in shapes)
    first = dict(zip(reversed(producers), reversed(shapes)))  # the first operand's shape per producer
    unique = tuple(dict.fromkeys(producers))
    return unique, tuple(tuple(first[p]) for p in unique)


def constant_operands(kind: OpKind, shapes: Sequence[Shape]) -> tuple[Shape, ...]:
    """``Layer.constants`` from the shapes of the stored float tensors an op reads besides its
    activations: kept for element-wise ops and concats, scalars (immediates) left out."""
    if kind not in CONSTANT_KINDS:
        return ()
    return tuple(tuple(int(d) for d in s) for s in shapes if math.prod(s) > 1)


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
    """(batch, channels, h, w) of a tensor with its channels on axis 1; 1-D convs map to h = 1,
    vectors to 1x1 maps.

    ``features_last`` reads a linear layer's input: features are the last dim, every other dim
    counts as batch rows.
    """
    shape = tuple(int(s) for s in shape)
    if features_last:
        return (math.prod(shape[:-1]) if len(shape) > 1 else 1, shape[-1] if shape else 1, 1, 1)
    if len(shape) == 4:
        return shape
    if len(shape) == 3:
        return (shape[0], shape[1], 1, shape[2])
    if len(shape) == 2:
        return (shape[0], shape[1], 1, 1)
    if len(shape) == 1:
        return (1, shape[0], 1, 1)
    if len(shape) == 0:
        return (1, 1, 1, 1)
    return (shape[0], shape[1], math.prod(shape[2:-1]), shape[-1])


def cost_view(shape: Sequence[int], axes: Axes | None = None) -> tuple[int, int, int, int]:
    """(batch, channels, h, w) of a tensor: batch its first axis, channels the product of its channel
    axes, positions the rest. Channels on axis 1 keep the image convention (``nchw``); any other
    layout (a sequence, a head split) puts every position in h, with w = 1."""
    shape = tuple(int(s) for s in shape)
    if axes is None or tuple(axes) == default_axes(len(shape)):
        return nchw(shape)
    start = 1 if shape and 0 not in axes else 0
    positions = math.prod(shape[i] for i in range(start, len(shape)) if i not in axes)
    return (shape[0] if start else 1, math.prod(shape[a] for a in axes), positions, 1)


def shape_fields(in_shape: Shape, out_shape: Shape, in_axes: Axes | None = None, out_axes: Axes | None = None,
                 features_last: bool = False) -> dict[str, Any]:
    """Layer cost-view fields (and the output's ``channel_axes``) from an input and an output tensor."""
    if features_last:
        (n, c, h, w), (_, k, p, q) = nchw(in_shape, True), nchw(out_shape, True)
        out_axes = (len(out_shape) - 1,) if out_shape else ()
    else:
        (n, c, h, w), (_, k, p, q) = cost_view(in_shape, in_axes), cost_view(out_shape, out_axes)
    axes = default_axes(len(out_shape)) if out_axes is None else tuple(out_axes)
    return {"batch": max(n, 1), "in_channels": max(c, 1), "in_h": max(h, 1), "in_w": max(w, 1),
            "out_channels": max(k, 1), "out_h": max(p, 1), "out_w": max(q, 1), "channel_axes": axes}


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
    """A linear layer: a 1x1 conv on a 1x1 map over every row; features on the last axis."""
    return {**shape_fields(in_shape, out_shape, features_last=True), "kind": OpKind.LINEAR, "bias": bool(bias)}


def embed_fields(ids: Shape, out_shape: Shape, rows: int) -> dict[str, Any]:
    """An embedding lookup of ``rows``-row table: ids ``(batch, ...)`` -> ``(batch, ..., width)``."""
    looked_up = math.prod(ids[1:])
    return {"kind": OpKind.EMBED, "batch": ids[0] if ids else 1, "in_channels": rows, "out_channels": out_shape[-1],
            "in_h": looked_up, "out_h": looked_up, "channel_axes": (len(out_shape) - 1,)}


def matmul_fields(a: Operand, b: Operand, out_shape: Shape) -> dict[str, Any]:
    """The product of two activations (``matmul_view``), or ``other`` when the shapes do not fit it.

    The output's channel axes are the first operand's batch-dim channel axes (the heads) and
    its own last axis.
    """
    try:
        out, view = matmul_view(a.shape, b.shape)
    except ValueError:
        out, view = (), {}
    if out != tuple(out_shape):
        return {**shape_fields(a.shape, out_shape, a.axes), "kind": OpKind.OTHER}
    rank, offset = len(out), len(out) - len(a.shape)
    heads = {axis + offset for axis in a.axes if axis < len(a.shape) - 2 and axis + offset >= 0}
    return {**view, "kind": OpKind.MATMUL, "channel_axes": tuple(sorted(heads | {rank - 1}))}


def pool_fields(in_shape: Shape, out_shape: Shape, kernel: Any = None, stride: Any = None, padding: Any = 0,
                in_axes: Axes | None = None, out_axes: Axes | None = None) -> dict[str, Any]:
    """Pooling fields; kernel and stride are inferred from the shapes when not given (adaptive pools)."""
    fields = shape_fields(in_shape, out_shape, in_axes, out_axes)
    if kernel is None:
        kernel = (max(fields["in_h"] // fields["out_h"], 1), max(fields["in_w"] // fields["out_w"], 1))
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride if stride is not None else (kh, kw))
    ph, pw = _pair(padding)
    return {**fields, "kind": OpKind.POOL, "kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw,
            "pad_h": ph, "pad_w": pw}


def dropped(rank: int, axes: Sequence[int]) -> tuple[int, ...]:
    """The axis map of an op that removes ``axes`` (a reduction without keepdim, an integer index)."""
    gone = {a % rank for a in axes} if rank else set()
    return tuple(a for a in range(rank) if a not in gone)


def _groups(src: Shape, out: Shape) -> list[tuple[list[int], list[int]]] | None:
    """Row-major reshape as groups of input and output axes of equal size products (None: no reshape)."""
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(out):
        ins, outs, size_in, size_out = [], [], 1, 1
        if i < len(src):
            ins.append(i)
            size_in, i = src[i], i + 1
        if j < len(out):
            outs.append(j)
            size_out, j = out[j], j + 1
        while size_in != size_out:
            if size_in < size_out and i < len(src):
                ins.append(i)
                size_in, i = size_in * src[i], i + 1
            elif size_out < size_in and j < len(out):
                outs.append(j)
                size_out, j = size_out * out[j], j + 1
            else:
                return None
        groups.append((ins, outs))
    return groups


def layout_axes(src: Operand, out_shape: Shape, axis_map: AxisMap | None = None) -> Axes | None:
    """The output channel axes of a layout op, or None when channels get mixed with positions.

    With an ``axis_map`` (permute, transpose, indexing) the channel axes move with it and must
    keep their order. Without one (view, reshape, flatten, squeeze) the row-major groups decide:
    channel axes split or merged among themselves stay channels (a head split or merge), channel
    axes merged with positions after them become one channel axis (a flatten of (C, H, W)).
    """
    if axis_map is not None:
        moved = [i for i, a in enumerate(axis_map) if a is not None and a in src.axes]
        order = [a for a in axis_map if a is not None and a in src.axes]
        lost = set(src.axes) - set(order)
        if order != sorted(order) or any(src.shape[a] != 1 for a in lost):
            return None
        return tuple(moved)
    groups = _groups(tuple(src.shape), tuple(out_shape))
    if groups is None:
        return None
    axes: list[int] = []
    for ins, outs in groups:
        channels = [a for a in ins if a in src.axes]
        if not channels:
            continue
        real = [a for a in ins if src.shape[a] > 1 or a in src.axes]
        if real == channels:
            axes += [o for o in outs if out_shape[o] > 1] or outs[:1]
        elif len(outs) == 1 and real[: len(channels)] == channels:
            axes += outs
        else:
            return None
    return tuple(sorted(axes))


def function_fields(name: str, ins: Sequence[Operand], out_shape: Shape, axis_map: AxisMap | None = None,
                    dim: int | None = None) -> dict[str, Any] | None:
    """Fields of a weightless op from its name, operands and output shape.

    ``axis_map`` describes a permute or an indexing op, ``dim`` a concat's axis. Returns
    ``None`` for pure aliases (dropout, contiguous, a view that keeps the shape), and
    ``kind=OTHER`` for anything not understood, so that it is listed, never dropped.
    """
    out_shape = tuple(out_shape)
    first = ins[0] if ins else Operand(out_shape, default_axes(len(out_shape)))
    same = tuple(first.shape) == out_shape

    def described(kind: OpKind, axes: Axes | None) -> dict[str, Any]:
        return {**shape_fields(first.shape, out_shape, first.axes, axes), "kind": kind}

    unmoved = axis_map is None or list(axis_map) == list(range(len(out_shape)))
    if name in ALIAS_OPS or (name in RESHAPE_OPS and same and unmoved):
        return None
    if name in ELTWISE_OPS:  # one tensor input: scaling (same shape) or a reduction such as x.sum()
        if len(ins) > 1:
            primary = next((o for o in ins if tuple(o.shape) == out_shape), first)
            shift = len(out_shape) - len(primary.shape)
            return described(OpKind.ELTWISE, tuple(a + shift for a in primary.axes))
        return described(OpKind.ACT if same else OpKind.OTHER, first.axes if same else None)
    for ops, kind in ((ACT_OPS, OpKind.ACT), (SOFTMAX_OPS, OpKind.SOFTMAX), (NORM_OPS, OpKind.NORM)):
        if name in ops and same:
            return described(kind, first.axes)
    if name in MATMUL_OPS and len(ins) == 2:
        return matmul_fields(ins[0], ins[1], out_shape)
    if name in RESHAPE_OPS:
        axes = layout_axes(first, out_shape, axis_map)
        return described(OpKind.RESHAPE, axes) if axes is not None else described(OpKind.OTHER, None)
    if name in POOL_OPS:
        if len(first.shape) == len(out_shape):
            axes = first.axes
        elif axis_map is not None:
            axes = layout_axes(first, out_shape, axis_map)  # None: a channel axis is reduced, no pool
        else:
            axes = default_axes(len(out_shape))  # the reduced dims are unknown: the image convention
        fields = described(OpKind.OTHER, axes)
        if axes is not None and fields["out_channels"] == fields["in_channels"] and len(first.shape) >= 3:
            return pool_fields(first.shape, out_shape, in_axes=first.axes, out_axes=axes)
        return fields
    if name in CONCAT_OPS:
        return _concat_fields(ins, out_shape, dim)
    if name in PAD_OPS:
        return described(OpKind.PAD, first.axes)
    if name in SLICE_OPS:
        if len(first.shape) == len(out_shape):
            return described(OpKind.SLICE, first.axes)
        axes = layout_axes(first, out_shape, axis_map) if axis_map is not None else None
        return described(OpKind.SLICE, axes) if axes is not None else described(OpKind.OTHER, None)
    return described(OpKind.OTHER, None)


def _concat_fields(ins: Sequence[Operand], out_shape: Shape, dim: int | None) -> dict[str, Any]:
    """A concat along the channel axis (channels add up) or along a position axis (channels agree)."""
    first = ins[0]
    fields = {**shape_fields(first.shape, out_shape, first.axes, first.axes), "kind": OpKind.CONCAT}
    channels = [cost_view(o.shape, o.axes)[1] for o in ins]
    rank = len(out_shape)
    axis = dim % rank if dim is not None and rank else None
    if axis is None:  # the axis is unknown: the channel concat of images, as the IR always knew it
        axis = 1 if sum(channels) == fields["out_channels"] and \
            all(tuple(o.shape[2:]) == tuple(out_shape[2:]) for o in ins) else -1
    if axis in first.axes and len(first.axes) == 1 and sum(channels) == fields["out_channels"]:
        return fields
    if axis >= 0 and axis not in first.axes and all(c == fields["out_channels"] for c in channels):
        return fields
    return {**fields, "kind": OpKind.OTHER, "channel_axes": default_axes(rank)}
