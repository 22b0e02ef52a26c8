"""The workload IR: a network as hardware sees it, with no torch in sight.

A ``Workload`` is the ordered list of a network's operations (``Layer`` records, topologically
sorted, each naming its inputs) plus the channel-coupling groups derived from that graph. Cost
models read only this; compression plans rewrite it with ``Workload.with_changes`` so that the
cost of a candidate is known without building it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from functools import cached_property
from typing import Any

from nn2hw.errors import ConfigError, ModelError, PlanError

DEFAULT_BITS = 16
"""Operand width when nothing else is said: 16-bit fixed point, as in the HotNAS and Eyeriss templates."""


class OpKind(str, Enum):
    """What an operation is, as far as cost models and channel propagation care."""

    INPUT = "input"  # a graph input
    CONV = "conv"  # standard, grouped or depthwise convolution (1-D convs have in_h = out_h = 1)
    LINEAR = "linear"  # fully connected / matmul with a weight
    MATMUL = "matmul"  # product of two activations (attention's Q.K^T and scores.V)
    EMBED = "embed"  # embedding lookup: a table row per integer id
    POOL = "pool"  # max / average / adaptive / global pooling
    ELTWISE = "eltwise"  # binary element-wise op between tensors (add, mul)
    ACT = "act"  # unary element-wise op (ReLU, sigmoid, scaling, ...)
    SOFTMAX = "softmax"  # softmax / log-softmax along one axis
    NORM = "norm"  # batch / layer / group normalization
    CONCAT = "concat"  # concatenation along channels, or along positions (a class token)
    RESHAPE = "reshape"  # layout op: view, flatten, permute, transpose, (un)squeeze
    PAD = "pad"  # zero padding, possibly along channels
    SLICE = "slice"  # spatial subsampling, token selection or channel slicing
    OTHER = "other"  # not understood: listed in ``Workload.unsupported``


COMPUTE_KINDS = frozenset({OpKind.CONV, OpKind.LINEAR, OpKind.MATMUL})
CONSTANT_KINDS = frozenset({OpKind.ACT, OpKind.ELTWISE, OpKind.CONCAT})
"""Kinds that may read constant operands (``Layer.constants``): the others' stored values are their weights."""
DEFINING_KINDS = COMPUTE_KINDS | {OpKind.EMBED}
_OFFSET_KINDS = frozenset({OpKind.PAD, OpKind.SLICE})  # out channels = in channels + fixed offset
_FOLLOW_KINDS = frozenset({OpKind.POOL, OpKind.ACT, OpKind.NORM, OpKind.ELTWISE, OpKind.SOFTMAX})
_VECTOR_OPS = {OpKind.ACT: 1, OpKind.SOFTMAX: 5}  # element operations per output element
_BATCH_NORM_OPS = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "batch_norm",
                             "BatchNormalization"})
"""Norms whose statistics are fixed at inference: a scale and a shift per element (2 ops, not 5)."""
_AFFINE_FREE_NORM_OPS = frozenset({"LocalResponseNorm", "local_response_norm", "LRN"})

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    """One operation with its shapes. Frozen and hashable.

    The *cost view* follows PyTorch's convolution: ``in_channels``/``out_channels``, input and
    output spatial sizes, kernel, stride, padding, dilation and groups. A linear layer is a 1x1
    convolution on a 1x1 map whose ``batch`` counts the rows it is applied to; a matmul a grouped
    1x1 convolution whose groups are the heads; an embedding reads ``in_channels`` table rows of
    ``out_channels``. Other ops keep their input and output sizes so that channel changes
    propagate through them; a sequence puts its tokens in ``h``.
    Bit widths are per operand, as stored on the accelerator. ``kept_per_kernel`` is the number
    of weights a kernel pattern keeps (PATr); ``None`` means a dense kernel. ``kept_rows`` is the
    number of weight rows (output channels) each column block of a block-pruned layer keeps;
    ``None`` means all.
    ``inputs`` names the layers producing the op's activation operands, in operand order: each
    once, except for a concat and a matmul, which list every operand (``cat([x, x])`` names x
    twice) so that a concat's output channels are the sum over ``inputs``.
    The tensors themselves: ``in_shapes`` (one per entry of ``inputs``), ``out_shape``, the
    output's element type ``dtype`` and its ``channel_axes``, the axes whose product is the
    channels (1 for an image, the last for a sequence, heads and head_dim after a head split,
    none for token ids). Hand-written layers may leave the shapes empty: they are then derived
    from the cost view (``output_shape``, ``operand_shapes``).
    ``constants`` are the shapes, as the op reads them, of the operands of an element-wise op or a
    concat that come from the model's stored values rather than from a layer: a learned position
    embedding added to the tokens, a class token put before the patches, the position rows a BERT
    embedding gathers for fixed ids. Scalars are immediates and not listed. They count as
    parameters and are read at ``weight_bits``.
    """

    name: str
    kind: OpKind
    inputs: tuple[str, ...] = ()
    op: str = ""
    batch: int = 1
    in_channels: int = 1
    out_channels: int = 1
    in_h: int = 1
    in_w: int = 1
    out_h: int = 1
    out_w: int = 1
    kernel_h: int = 1
    kernel_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1
    bias: bool = False
    input_bits: int = DEFAULT_BITS
    weight_bits: int = DEFAULT_BITS
    output_bits: int = DEFAULT_BITS
    kept_per_kernel: int | None = None
    kept_rows: int | None = None
    in_shapes: tuple[Shape, ...] = ()
    out_shape: Shape = ()
    dtype: str = "float32"
    channel_axes: tuple[int, ...] = (1,)
    constants: tuple[Shape, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", OpKind(self.kind))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "in_shapes", tuple(tuple(s) for s in self.in_shapes))
        object.__setattr__(self, "out_shape", tuple(self.out_shape))
        object.__setattr__(self, "channel_axes", tuple(self.channel_axes))
        object.__setattr__(self, "constants", tuple(tuple(s) for s in self.constants))
        positive = ("batch", "in_channels", "out_channels", "in_h", "in_w", "out_h", "out_w", "kernel_h",
                    "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w", "groups", "input_bits",
                    "weight_bits", "output_bits")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"Layer {self.name!r}: {name} must be a positive integer, got {value!r}.",
                    "Describe the layer with positive integer sizes.",
                )
        if self.pad_h < 0 or self.pad_w < 0:
            raise ConfigError(f"Layer {self.name!r}: padding must be >= 0.", "Use non-negative padding.")
        if self.kind in (OpKind.CONV, OpKind.MATMUL) and (self.in_channels % self.groups or
                                                           self.out_channels % self.groups):
            raise ConfigError(
                f"Layer {self.name!r}: groups={self.groups} does not divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}.",
                "Use a group count that divides both channel counts.",
            )
        if self.kept_per_kernel is not None and not 1 <= self.kept_per_kernel <= self.kernel_area:
            raise ConfigError(
                f"Layer {self.name!r}: kept_per_kernel={self.kept_per_kernel} is outside 1..{self.kernel_area}.",
                "A kernel pattern keeps between 1 and kernel_h*kernel_w weights.",
            )
        if self.kept_rows is not None and (not self.is_compute or not 1 <= self.kept_rows <= self.out_channels):
            raise ConfigError(
                f"Layer {self.name!r}: kept_rows={self.kept_rows} is outside 1..{self.out_channels} (or not a "
                f"compute layer).", "A block-pruned layer keeps between 1 and out_channels rows per column block.",
            )
        if self.kind is OpKind.RESHAPE and self.out_channels % self.in_channels:
            raise ConfigError(
                f"Layer {self.name!r}: a reshape's out_channels ({self.out_channels}) must be a multiple of its "
                f"in_channels ({self.in_channels}).",
                "A layout op keeps the channels or merges positions into them; describe any other as 'other'.",
            )
        if self.constants and self.kind not in CONSTANT_KINDS:
            raise ConfigError(
                f"Layer {self.name!r}: a {self.kind.value} layer cannot list constant operands.",
                "List constants only on element-wise ops and concats ('act', 'eltwise', 'concat'); a conv's, "
                "linear's or embedding's stored values are its weights.",
            )
        self._check_shapes()

    def _check_shapes(self) -> None:
        for shape in (*self.in_shapes, *self.constants, self.out_shape):
            if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
                raise ConfigError(f"Layer {self.name!r}: shape {list(shape)} has a size that is not a positive "
                                  "integer.", "Give tensor shapes as positive integers.")
        rank = len(self.output_shape)
        if list(self.channel_axes) != sorted(set(self.channel_axes)) or \
                any(not 0 <= a < rank for a in self.channel_axes):
            raise ConfigError(f"Layer {self.name!r}: channel_axes {list(self.channel_axes)} are not increasing axes "
                              f"of its {rank}-D output.", f"Give distinct axes in 0..{rank - 1}, in order.")

    # --- kind ---------------------------------------------------------------------------------
    @property
    def is_compute(self) -> bool:
        """Conv, linear and matmul: what plans choose and the MAC arrays run."""
        return self.kind in COMPUTE_KINDS

    @property
    def defines_channels(self) -> bool:
        """Compute layers and embeddings: the ops that open a channel space."""
        return self.kind in DEFINING_KINDS

    @property
    def channel_factor(self) -> int:
        """Output over input channels of a layout op: 1 for a head split or a transpose, H*W for a flatten."""
        return self.out_channels // self.in_channels if self.kind is OpKind.RESHAPE else 1

    @property
    def concat_along_channels(self) -> bool:
        """Whether a concat stacks channels (else it stacks positions, e.g. a class token before the patches)."""
        return self.kind is OpKind.CONCAT and self.out_channels != self.in_channels

    @property
    def keeps_channels(self) -> bool:
        """Whether the output channels are the primary input's, index for index.

        Pools, activations, norms, softmax and element-wise ops; slices that keep every channel;
        concats along positions; layout ops that keep the channels and a position axis (a head
        split, a transpose). A flatten to (N, features) opens a feature space of its own.
        """
        if self.kind is OpKind.SLICE:
            return self.in_channels == self.out_channels
        if self.kind is OpKind.RESHAPE:
            return self.channel_factor == 1 and len(self.out_shape) > 2
        if self.kind is OpKind.CONCAT:
            return not self.concat_along_channels
        return self.kind in _FOLLOW_KINDS

    @property
    def conv_type(self) -> str | None:
        """'standard', 'grouped' or 'depthwise' for convolutions, ``None`` otherwise."""
        if self.kind is not OpKind.CONV:
            return None
        if self.groups == 1:
            return "standard"
        return "depthwise" if self.groups == self.in_channels else "grouped"

    @property
    def kernel_area(self) -> int:
        return self.kernel_h * self.kernel_w

    @property
    def kept_weights(self) -> int:
        """Weights each kernel really multiplies: the pattern's kept count, or the full kernel."""
        return self.kernel_area if self.kept_per_kernel is None else self.kept_per_kernel

    @property
    def weights(self) -> int:
        """Weights (dense, without bias) of a compute layer; a matmul's are its second operand. 0 for other ops."""
        if not self.is_compute:
            return 0
        return self.out_channels * (self.in_channels // self.groups) * self.kernel_area

    @property
    def dense_macs(self) -> int:
        """Multiply-accumulates of the dense layer (0 for ops without MACs)."""
        if not self.is_compute:
            return 0
        return self.batch * self.out_h * self.out_w * self.weights

    @property
    def kept_row_share(self) -> tuple[int, int]:
        """(rows kept per column block, rows): the share of weight rows block pruning keeps."""
        return (self.out_channels if self.kept_rows is None else self.kept_rows), self.out_channels

    @property
    def macs(self) -> int:
        """Multiply-accumulates actually performed, counting only the weights a pattern or block pruning keeps."""
        if not self.is_compute:
            return 0
        kept, rows = self.kept_row_share
        return self.dense_macs // self.kernel_area * self.kept_weights // rows * kept

    # --- data ---------------------------------------------------------------------------------
    @property
    def output_shape(self) -> Shape:
        """The output's shape: ``out_shape``, or (batch, out_channels, out_h, out_w) when not recorded."""
        return self.out_shape or (self.batch, self.out_channels, self.out_h, self.out_w)

    @property
    def operand_shapes(self) -> tuple[Shape, ...]:
        """The activation operands' shapes: ``in_shapes``, or derived from the cost view when not recorded
        (a concat is then read as one operand as large as its output)."""
        if self.in_shapes or not self.inputs:
            return self.in_shapes
        if self.kind is OpKind.EMBED:
            return ((self.batch, self.in_h, self.in_w),)
        if self.kind is OpKind.MATMUL:
            k, n = self.in_channels // self.groups, self.out_channels // self.groups
            return (self.batch, self.groups, self.in_h, k), (self.batch, self.groups, k, n)
        if self.kind is OpKind.CONCAT:
            return (self.output_shape,)
        return ((self.batch, self.in_channels, self.in_h, self.in_w),) * len(self.inputs)

    @property
    def elements(self) -> int:
        """Output elements."""
        return math.prod(self.output_shape)

    @property
    def vector_ops(self) -> int:
        """Element operations a vector unit performs (0 for MAC, layout and lookup ops).

        An activation 1 per element, an element-wise op (operands - 1), softmax 5 (max, subtract,
        exp, sum, divide), a norm 5 (mean, variance, subtract, scale, shift; 2 for an inference
        batch norm), a pool its window per output element.
        """
        if self.kind is OpKind.ELTWISE:
            return max(len(self.inputs) + len(self.constants) - 1, 1) * self.elements
        if self.kind is OpKind.NORM:
            return (2 if self.folds_at_inference else 5) * self.elements
        if self.kind is OpKind.POOL:
            return self.kernel_area * self.elements
        return _VECTOR_OPS.get(self.kind, 0) * self.elements

    @property
    def folds_at_inference(self) -> bool:
        """A batch norm: its statistics are fixed at inference, so it folds into the preceding
        convolution's weights and bias (a layer or group norm computes them per input and cannot)."""
        return self.kind is OpKind.NORM and self.op in _BATCH_NORM_OPS

    @property
    def parameters(self) -> int:
        """Trained values: conv/linear weights and bias, an embedding table, a norm's scale and shift, the
        constant operands of an element-wise op or a concat."""
        if self.constants:
            return sum(math.prod(s) for s in self.constants)
        if self.kind in (OpKind.CONV, OpKind.LINEAR):
            return self.weights + (self.out_channels if self.bias else 0)
        if self.kind is OpKind.EMBED:
            return self.in_channels * self.out_channels
        if self.kind is OpKind.NORM and self.op not in _AFFINE_FREE_NORM_OPS:
            return 2 * self.out_channels
        return 0

    @property
    def read_bytes(self) -> int:
        """Bytes read: activation operands at ``input_bits`` (a matmul's second at ``weight_bits``), and
        parameters at ``weight_bits`` (the kept weights and bias, the table rows gathered, a norm's affine,
        the constant operands)."""
        sizes = [math.prod(s) for s in self.operand_shapes]
        if self.kind is OpKind.MATMUL:
            return _bytes(sum(sizes[:-1]), self.input_bits) + _bytes(sizes[-1], self.weight_bits)
        if self.kind in (OpKind.CONV, OpKind.LINEAR):
            kept, rows = self.kept_row_share
            read = self.weights // self.kernel_area * self.kept_weights // rows * kept + \
                (self.out_channels if self.bias else 0)
        else:
            read = self.elements if self.kind is OpKind.EMBED else self.parameters
        return _bytes(sum(sizes), self.input_bits) + _bytes(read, self.weight_bits)

    @property
    def write_bytes(self) -> int:
        """Bytes of the output written at ``output_bits``."""
        return _bytes(self.elements, self.output_bits)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["inputs"] = list(self.inputs)
        if not self.constants:
            del d["constants"]  # most layers have none: keep records as they were
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Layer record has unknown fields {unknown}.", f"Use only: {sorted(known)}.")
        values: dict[str, Any] = {k: tuple(v) if k == "inputs" else v for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class CouplingGroup:
    """Layers whose output channels must change together.

    ``layers`` are the layers that define the channels (convs, linears, embeddings: cut them
    all, by the same indices); ``followers`` are ops whose channels follow (depthwise convs,
    pools, adds, head splits, matmuls...); ``fixed_by`` names what pins the count (the network
    input or output, an option-A shortcut pad, a concat, an unsupported op, an embedding table,
    attention heads): a group with any is not cuttable. ``unit`` is the step the width changes
    by: head_dim for a group that passes a head split (whole heads only), else 1.
    """

    layers: tuple[str, ...]
    followers: tuple[str, ...]
    fixed_by: tuple[str, ...]
    channels: int
    unit: int = 1

    @property
    def cuttable(self) -> bool:
        return bool(self.layers) and not self.fixed_by


@dataclass(frozen=True)
class Workload:
    """A network as an ordered tuple of ``Layer`` records (topological order) plus metadata."""

    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...] = ()
    outputs: tuple[str, ...] = ()
    source: str = "manual"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if not self.outputs and self.layers:
            object.__setattr__(self, "outputs", (self.layers[-1].name,))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        seen: set[str] = set()
        for layer in self.layers:
            if layer.name in seen:
                raise ModelError(f"Workload {self.name!r} has two layers named {layer.name!r}.",
                                 "Give every layer a unique name.")
            missing = [i for i in layer.inputs if i not in seen]
            if missing:
                raise ModelError(
                    f"Layer {layer.name!r} of workload {self.name!r} reads {missing}, which do not come before it.",
                    "List layers in topological order and name only existing inputs.",
                )
            seen.add(layer.name)
        bad_outputs = [o for o in self.outputs if o not in seen]
        if bad_outputs:
            raise ModelError(f"Workload {self.name!r} names unknown outputs {bad_outputs}.",
                             "Name existing layers as outputs.")

    # --- access -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @cached_property
    def _index(self) -> dict[str, Layer]:
        return {layer.name: layer for layer in self.layers}

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def layer(self, name: str) -> Layer:
        """The layer called ``name``; a ``PlanError`` naming close names otherwise."""
        try:
            return self._index[name]
        except KeyError:
            from nn2hw.registry import suggest

            raise PlanError(
                f"Workload {self.name!r} has no layer {name!r}.{suggest(name, list(self._index))}",
                "Use a layer name from `nn2hw analyze` (the 'layer' column).",
            ) from None

    @property
    def compute_layers(self) -> tuple[Layer, ...]:
        """Conv, linear and matmul layers, in order: what the MAC arrays run."""
        return tuple(layer for layer in self.layers if layer.is_compute)

    @property
    def inputs(self) -> tuple[Layer, ...]:
        """The graph inputs (``input`` layers with their shapes and dtypes), in order."""
        return tuple(layer for layer in self.layers if layer.kind is OpKind.INPUT)

    @property
    def unsupported(self) -> tuple[Layer, ...]:
        """Operations the extractor did not understand, kept with their shapes and op names."""
        return tuple(layer for layer in self.layers if layer.kind is OpKind.OTHER)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def dense_macs(self) -> int:
        return sum(layer.dense_macs for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def parameters(self) -> int:
        """Trained values of the network (a matmul's second operand is an activation, not counted)."""
        return sum(layer.parameters for layer in self.layers)

    # --- channel coupling -------------------------------------------------------------------
    @cached_property
    def coupling_groups(self) -> tuple[CouplingGroup, ...]:
        """Groups of layers sharing one channel space, in order of first appearance.

        Union-find over channel spaces: a space opens at a layer that defines channels (conv,
        linear, matmul, embedding) or that the channels cannot follow through; ops that keep
        channels follow their input, element-wise ops and concats along positions join their
        operands, a matmul joins its operands when they share a channel axis (the heads, or
        the contracted head_dim). Spaces are pinned by the network output, an option-A pad, a
        concat, an op nn2hw does not understand, an embedding table, a matmul (attention heads) and
        an op reading a stored constant across the channels (a position embedding).
        """
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: str, b: str) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb, key=order.__getitem__)] = min(ra, rb, key=order.__getitem__)

        order = {layer.name: i for i, layer in enumerate(self.layers)}
        space: dict[str, str] = {}  # layer -> the name of the node that opened its channel space
        pins: dict[str, str] = {}  # space -> why it is pinned (first reason wins)
        for layer in self.layers:
            parent[layer.name] = layer.name
            if layer.inputs and (layer.keeps_channels or layer.conv_type == "depthwise"):
                primary = next((i for i in layer.inputs if self._index[i].out_channels == layer.out_channels),
                               layer.inputs[0])
                space[layer.name] = space[primary]
                if layer.kind in (OpKind.ELTWISE, OpKind.CONCAT):
                    for other in layer.inputs:
                        if self._index[other].out_channels == layer.out_channels:
                            union(space[primary], space[other])
                if layer.kind is OpKind.CONCAT and len(layer.in_shapes) == len(layer.inputs) and \
                        sum(math.prod(s) for s in layer.in_shapes) < layer.elements:
                    pins.setdefault(space[primary], f"{layer.name} (concat of a constant)")
                if _constant_spans_channels(layer):  # nn2hw's channel cut leaves stored constants whole
                    pins.setdefault(space[primary], f"{layer.name} (a stored constant across the channels)")
            elif layer.kind is OpKind.MATMUL and layer.inputs:
                a, b = layer.inputs[0], layer.inputs[-1]
                shared = self._shares_channel_axis(layer)
                if shared:
                    union(space[a], space[b])
                space[layer.name] = space[a] if shared else layer.name
                reason = "attention heads" if layer.groups > 1 else "matmul"
                for pinned in dict.fromkeys((space[layer.name],) if shared else (space[a], space[b], layer.name)):
                    pins.setdefault(pinned, f"{layer.name} ({reason})")
            else:
                space[layer.name] = layer.name
                if not layer.defines_channels:
                    pins[layer.name] = f"{layer.name} ({layer.kind.value})"
                elif layer.kind is OpKind.EMBED:
                    pins[layer.name] = f"{layer.name} (embedding table)"
                if layer.kind in _OFFSET_KINDS and layer.inputs:  # its input's width fixes its output's
                    pins.setdefault(space[layer.inputs[0]], f"{layer.name} ({layer.kind.value})")
        for out in self.outputs:
            pins.setdefault(space[out], f"{out} (network output)")

        members: dict[str, list[str]] = {}
        for layer in self.layers:
            members.setdefault(find(space[layer.name]), []).append(layer.name)
        groups = []
        for root, names in members.items():
            defining = tuple(n for n in names if space[n] == n and self._index[n].defines_channels)
            if not defining:
                continue  # only inputs, flattens or concats: nothing to cut here
            followers = tuple(n for n in names if n not in defining)
            fixed = tuple(sorted(reason for s, reason in pins.items() if find(s) == root))
            channels = self._index[names[0]].out_channels
            groups.append(CouplingGroup(defining, followers, fixed, channels, self._head_dim(names, channels)))
        return tuple(groups)

    def _shares_channel_axis(self, matmul: Layer) -> bool:
        """Whether a matmul's operands share a channel axis: the contracted one (head_dim in Q.K^T) or
        a batch axis both carry channels on (the heads)."""
        operands = matmul.operand_shapes
        a, b = operands[0], operands[-1]
        a_axes = self._index[matmul.inputs[0]].channel_axes
        b_axes = self._index[matmul.inputs[-1]].channel_axes
        if len(a) < 2 or len(b) < 2:
            return False
        if len(a) - 1 in a_axes and len(b) - 2 in b_axes:
            return True
        return any(len(a) - 2 - i in a_axes and len(b) - 2 - i in b_axes for i in range(1, min(len(a), len(b)) - 1))

    def _head_dim(self, names: list[str], channels: int) -> int:
        """Channels per head of a group that passes a head split (1 when none does)."""
        for name in names:
            layer = self._index[name]
            if len(layer.channel_axes) > 1 and layer.out_shape:
                heads = layer.out_shape[layer.channel_axes[0]]
                if channels % heads == 0:
                    return channels // heads
        return 1

    def group_of(self, name: str) -> CouplingGroup | None:
        """The coupling group whose channels ``name`` defines or follows (None for e.g. the input)."""
        self.layer(name)
        return next((g for g in self.coupling_groups if name in g.layers or name in g.followers), None)

    # --- rewriting ----------------------------------------------------------------------------
    def with_changes(self, changes: Mapping[str, Mapping[str, Any]]) -> Workload:
        """A new workload with fields of named layers replaced and channels re-propagated.

        ``changes`` maps layer names to field updates (``out_channels``, ``kernel_h``/``kernel_w``
        with ``pad_h``/``pad_w``, ``weight_bits``, ``kept_per_kernel`` ...). Input channels of
        every consumer follow through pass-through ops, layout ops and concats, and the recorded
        shapes follow, head-aware: past a head split the number of heads changes and head_dim
        stays, and a matmul's heads follow its operands'. A change that would make an add's or a
        matmul's operands disagree, split into partial heads, alter a spatial size or feed an
        unsupported op raises a ``PlanError`` naming the layer.
        """
        for name in changes:
            self.layer(name)
        new: dict[str, Layer] = {}
        for layer in self.layers:
            srcs = [new[i] for i in layer.inputs]
            if layer.name not in changes and all(s is self._index[s.name] for s in srcs):
                new[layer.name] = layer  # nothing it reads changed
                continue
            update = dict(changes[layer.name]) if layer.name in changes else {}
            update.update(_propagated_fields(layer, srcs, update))
            changed = replace(layer, **update) if update else layer
            if changed is not layer and layer.kind is not OpKind.MATMUL:
                changed = _reshaped(layer, changed, [self._index[i] for i in layer.inputs], srcs)
            _check_spatial(layer, changed)
            new[layer.name] = layer if changed == layer else changed  # unchanged: its consumers can be skipped
        return replace(self, layers=tuple(new[layer.name] for layer in self.layers))

    # --- serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "outputs": list(self.outputs),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workload:
        try:
            return cls(
                name=data["name"],
                layers=tuple(Layer.from_dict(d) for d in data["layers"]),
                input_shape=tuple(data.get("input_shape", ())),
                outputs=tuple(data.get("outputs", ())),
                source=data.get("source", "manual"),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"Malformed workload description: {exc!r}.",
                              "Give 'name' and 'layers' (a list of layer records).") from None

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls.from_dict(json.loads(text))


def _bytes(count: int, bits: int) -> int:
    """Bytes that ``count`` values of ``bits`` bits take, packed."""
    return -(-count * bits // 8)


def _broadcast(a: Shape, b: Shape) -> Shape:
    """NumPy/torch broadcast of two shapes (ValueError if they do not broadcast)."""
    width = max(len(a), len(b))
    a, b = (1,) * (width - len(a)) + tuple(a), (1,) * (width - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise ValueError(f"{list(a)} and {list(b)} do not broadcast")
    return tuple(max(x, y) for x, y in zip(a, b))


def matmul_view(a: Shape, b: Shape) -> tuple[Shape, dict[str, int]]:
    """Output shape and cost view of ``a @ b`` (torch.matmul / ONNX MatMul, batch dims broadcast).

    ``(..., M, K) x (..., K, N)``: ``batch`` is the first batch dim, the heads (``groups``) the
    product of the others, ``in_channels`` heads x K, ``out_channels`` heads x N, ``out_h`` M.
    Raises ValueError when the operands do not fit.
    """
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    if len(a2) < 2 or len(b2) < 2 or a2[-1] != b2[-2]:
        raise ValueError(f"{list(a)} x {list(b)}: the contracted sizes differ")
    dims = _broadcast(a2[:-2], b2[:-2])
    m, k, n = a2[-2], a2[-1], b2[-1]
    out = (*dims, *((m,) if len(a) > 1 else ()), *((n,) if len(b) > 1 else ()))
    heads = math.prod(dims[1:])
    return out, {"batch": dims[0] if dims else 1, "groups": heads, "in_channels": heads * k, "out_channels": heads * n,
                 "in_h": m, "out_h": m, "in_w": 1, "out_w": 1}


def _propagated_fields(layer: Layer, srcs: list[Layer], update: dict[str, Any]) -> dict[str, Any]:
    """Channel fields of ``layer`` implied by its (possibly changed) inputs."""
    if not srcs or layer.kind in (OpKind.INPUT, OpKind.EMBED):
        return {}
    if layer.kind is OpKind.MATMUL:
        return _matmul_fields(layer, srcs)
    in_c = srcs[0].out_channels
    if layer.kind is OpKind.RESHAPE:
        return {"in_channels": in_c, "out_channels": in_c * layer.channel_factor}
    if layer.concat_along_channels:
        total = sum(s.out_channels for s in srcs) + _constant_channels(layer)
        return {"in_channels": in_c, "out_channels": total}
    if layer.kind in _OFFSET_KINDS:
        return {"in_channels": in_c, "out_channels": in_c + layer.out_channels - layer.in_channels}
    if layer.kind in (OpKind.ELTWISE, OpKind.CONCAT):
        widths = {s.out_channels for s in srcs} - {1}
        if len(widths) > 1:
            raise PlanError(
                f"The change makes the inputs of {layer.name!r} ({layer.op or layer.kind.value}) disagree: "
                f"{', '.join(f'{s.name}={s.out_channels}' for s in srcs)} channels.",
                "Cut every layer of a coupling group to the same width (see Workload.coupling_groups).",
            )
        width = widths.pop() if widths else 1
        return {"in_channels": width, "out_channels": width}
    if layer.kind is OpKind.OTHER:
        if in_c != layer.in_channels:
            raise PlanError(
                f"The change alters the input channels of {layer.name!r} ({layer.op}), an op nn2hw does not "
                f"understand.",
                "Leave the layers feeding it unchanged.",
            )
        return {}
    if layer.kind in _FOLLOW_KINDS:
        return {"in_channels": in_c, "out_channels": in_c}
    if layer.conv_type == "depthwise":
        multiplier = layer.out_channels // layer.in_channels
        return {"in_channels": in_c, "out_channels": in_c * multiplier, "groups": in_c}
    if layer.kind is OpKind.CONV and layer.groups > 1 and in_c % layer.groups:
        raise PlanError(
            f"Grouped conv {layer.name!r} (groups={layer.groups}) cannot take {in_c} input channels.",
            f"Cut its input to a multiple of {layer.groups} channels.",
        )
    if layer.kind is OpKind.LINEAR or layer.kind is OpKind.CONV:
        return {"in_channels": in_c}
    return {}


def _constant_spans_channels(layer: Layer) -> bool:
    """Whether a constant operand of ``layer`` has more than one value along a channel axis."""
    rank = len(layer.output_shape)
    return any(c[a - rank] > 1 for c in layer.constants for a in layer.channel_axes if rank - a <= len(c))


def _constant_channels(concat: Layer) -> int:
    """Channels the constant operands of a concat along channels add (a fixed coordinate map)."""
    if not concat.constants or not concat.channel_axes:
        return 0
    axis = concat.channel_axes[0] - len(concat.output_shape)  # from the right, as the constants align
    return sum(c[axis] for c in concat.constants if -axis <= len(c))


def _matmul_fields(layer: Layer, srcs: list[Layer]) -> dict[str, Any]:
    """A matmul's shapes and cost view from its operands' (possibly changed) shapes: its heads follow."""
    operands = (srcs[0].output_shape, srcs[-1].output_shape)
    if len(layer.in_shapes) != 2 or operands == layer.in_shapes or not all(s.out_shape for s in srcs):
        return {}
    try:
        out, view = matmul_view(*operands)
    except ValueError:
        raise PlanError(
            f"The change makes the operands of {layer.name!r} ({layer.op or 'matmul'}) disagree: "
            f"{srcs[0].name} {list(operands[0])} x {srcs[-1].name} {list(operands[1])}.",
            "Change the layers feeding both operands together, by whole heads (see Workload.coupling_groups: "
            "Q, K and V of one attention block form one group).",
        ) from None
    return {**view, "in_shapes": operands, "out_shape": out}


def _reshaped(old: Layer, new: Layer, old_srcs: list[Layer], new_srcs: list[Layer]) -> Layer:
    """``new`` with its recorded shapes following its changed channels.

    Each operand shape becomes its producer's new output shape; the output's first channel axis
    absorbs the change (past a head split: the heads), the others stay, so a width that is not
    a whole number of heads raises a ``PlanError``.
    """
    if not old.out_shape:
        return new
    in_shapes = old.in_shapes
    if len(in_shapes) == len(old_srcs):
        in_shapes = tuple(n.output_shape if shape == o.output_shape else shape
                          for shape, o, n in zip(in_shapes, old_srcs, new_srcs))
    out_shape = old.out_shape
    if new.out_channels != old.out_channels and old.channel_axes:
        first, *rest = old.channel_axes
        per = math.prod(out_shape[a] for a in rest)
        if new.out_channels % per:
            raise PlanError(
                f"The change gives {old.name!r} ({old.op or old.kind.value}) {new.out_channels} channels, which do "
                f"not split into whole heads of {per}.",
                f"Change attention widths by whole heads: multiples of {per} (the coupling group's unit).",
            )
        out_shape = tuple(new.out_channels // per if i == first else d for i, d in enumerate(out_shape))
    constants = tuple(_following(c, old.out_shape, out_shape) for c in old.constants)
    if (in_shapes, out_shape, constants) == (old.in_shapes, old.out_shape, old.constants):
        return new
    return replace(new, in_shapes=in_shapes, out_shape=out_shape, constants=constants)


def _following(constant: Shape, old_out: Shape, new_out: Shape) -> Shape:
    """A constant operand's shape after its op's output changed from ``old_out`` to ``new_out``:
    aligned from the right (as it broadcasts), each axis that spanned the old output size takes the
    new one, and broadcast axes (size 1) stay."""
    offset = len(old_out) - len(constant)
    return tuple(new_out[i + offset] if 0 <= i + offset < len(old_out) and d == old_out[i + offset] != 1 else d
                 for i, d in enumerate(constant))


def _check_spatial(old: Layer, new: Layer) -> None:
    """Refuse changes that alter a conv's output size (e.g. a kernel grown without padding)."""
    if new.kind is not OpKind.CONV:
        return
    for axis in ("h", "w"):
        size_in = getattr(new, f"in_{axis}")
        k, s, p, d = (getattr(new, f"{f}_{axis}") for f in ("kernel", "stride", "pad", "dilation"))
        out = (size_in + 2 * p - d * (k - 1) - 1) // s + 1
        if out != getattr(old, f"out_{axis}"):
            raise PlanError(
                f"The change gives {new.name!r} a {axis}-output of {out} instead of {getattr(old, f'out_{axis}')} "
                f"(kernel {k}, stride {s}, padding {p}).",
                "Grow the padding with the kernel: kernel K -> K+2 needs padding P -> P+1.",
            )
