"""The workload IR: a network as hardware sees it, with no torch in sight.

A ``Workload`` is the ordered list of a network's operations (``Layer`` records, topologically
sorted, each naming its inputs) plus the channel-coupling groups derived from that graph. Cost
models read only this; compression plans rewrite it with ``Workload.with_changes`` so that the
cost of a candidate is known without building it.
"""

from __future__ import annotations

import json
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
    POOL = "pool"  # max / average / adaptive / global pooling
    ELTWISE = "eltwise"  # binary element-wise op between tensors (add, mul)
    ACT = "act"  # unary element-wise op (ReLU, sigmoid, scaling, ...)
    NORM = "norm"  # batch / layer / group normalization
    CONCAT = "concat"  # concatenation along channels
    RESHAPE = "reshape"  # flatten (C, H, W) into features
    PAD = "pad"  # zero padding, possibly along channels
    SLICE = "slice"  # spatial subsampling or channel slicing
    OTHER = "other"  # not understood: listed in ``Workload.unsupported``


COMPUTE_KINDS = frozenset({OpKind.CONV, OpKind.LINEAR})
_OFFSET_KINDS = frozenset({OpKind.PAD, OpKind.SLICE})  # out channels = in channels + fixed offset
_FOLLOW_KINDS = frozenset({OpKind.POOL, OpKind.ACT, OpKind.NORM, OpKind.ELTWISE})


@dataclass(frozen=True)
class Layer:
    """One operation with its shapes. Frozen and hashable.

    Convolutions follow PyTorch's convention: ``in_channels``/``out_channels``, input and output
    spatial sizes, kernel, stride, padding, dilation and groups. A linear layer is a 1x1
    convolution on a 1x1 map whose ``batch`` counts the rows it is applied to. Non-compute ops
    keep their input and output shapes so that channel changes propagate through them.
    Bit widths are per operand, as stored on the accelerator. ``kept_per_kernel`` is the number
    of weights a kernel pattern keeps (PATr); ``None`` means a dense kernel.
    ``inputs`` names the layers producing the op's activation operands, in operand order: each
    once, except for a concat, which lists every operand (``cat([x, x])`` names x twice) so that
    its output channels are the sum over ``inputs``.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", OpKind(self.kind))
        object.__setattr__(self, "inputs", tuple(self.inputs))
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
        if self.kind is OpKind.CONV and (self.in_channels % self.groups or self.out_channels % self.groups):
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

    @property
    def is_compute(self) -> bool:
        return self.kind in COMPUTE_KINDS

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
        """Number of weights (dense, without bias) of a compute layer; 0 for other ops."""
        if not self.is_compute:
            return 0
        return self.out_channels * (self.in_channels // self.groups) * self.kernel_area

    @property
    def dense_macs(self) -> int:
        """Multiply-accumulates of the dense layer (0 for non-compute ops)."""
        if not self.is_compute:
            return 0
        return self.batch * self.out_h * self.out_w * self.weights

    @property
    def macs(self) -> int:
        """Multiply-accumulates actually performed, counting only the weights a pattern keeps."""
        if not self.is_compute:
            return 0
        return self.dense_macs // self.kernel_area * self.kept_weights

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["inputs"] = list(self.inputs)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Layer record has unknown fields {unknown}.", f"Use only: {sorted(known)}.")
        return cls(**{k: tuple(v) if k == "inputs" else v for k, v in data.items()})


@dataclass(frozen=True)
class CouplingGroup:
    """Layers whose output channels must change together.

    ``layers`` are the conv/linear layers that define the channels (cut them all, by the same
    indices); ``followers`` are ops whose channels follow (depthwise convs, pools, adds...);
    ``fixed_by`` names what pins the count (the network input or output, an option-A shortcut
    pad, a concat, an unsupported op): a group with any is not cuttable.
    """

    layers: tuple[str, ...]
    followers: tuple[str, ...]
    fixed_by: tuple[str, ...]
    channels: int

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
        """Conv and linear layers, in order: what the cost models cost."""
        return tuple(layer for layer in self.layers if layer.is_compute)

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

    # --- channel coupling -------------------------------------------------------------------
    @cached_property
    def coupling_groups(self) -> tuple[CouplingGroup, ...]:
        """Groups of conv/linear layers sharing one channel space, in order of first appearance."""
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
            follows = (
                layer.kind in _FOLLOW_KINDS
                or (layer.kind is OpKind.SLICE and layer.in_channels == layer.out_channels)
                or layer.conv_type == "depthwise"
            ) and layer.inputs
            if follows:
                primary = next((i for i in layer.inputs if self._index[i].out_channels == layer.out_channels),
                               layer.inputs[0])
                space[layer.name] = space[primary]
                if layer.kind is OpKind.ELTWISE:
                    for other in layer.inputs:
                        if self._index[other].out_channels == layer.out_channels:
                            union(space[primary], space[other])
            else:
                space[layer.name] = layer.name
                if not layer.is_compute:
                    pins[layer.name] = f"{layer.name} ({layer.kind.value})"
                if layer.kind in _OFFSET_KINDS and layer.inputs:  # its input's width fixes its output's
                    pins.setdefault(space[layer.inputs[0]], f"{layer.name} ({layer.kind.value})")
        for out in self.outputs:
            pins.setdefault(space[out], f"{out} (network output)")

        members: dict[str, list[str]] = {}
        for layer in self.layers:
            members.setdefault(find(space[layer.name]), []).append(layer.name)
        groups = []
        for root, names in members.items():
            defining = tuple(n for n in names if space[n] == n and self._index[n].is_compute)
            if not defining:
                continue  # only inputs, flattens or concats: nothing to cut here
            followers = tuple(n for n in names if n not in defining)
            fixed = tuple(sorted(reason for s, reason in pins.items() if find(s) == root))
            groups.append(CouplingGroup(defining, followers, fixed, self._index[names[0]].out_channels))
        return tuple(groups)

    def group_of(self, name: str) -> CouplingGroup | None:
        """The coupling group whose channels ``name`` defines or follows (None for e.g. the input)."""
        self.layer(name)
        return next((g for g in self.coupling_groups if name in g.layers or name in g.followers), None)

    # --- rewriting ----------------------------------------------------------------------------
    def with_changes(self, changes: Mapping[str, Mapping[str, Any]]) -> Workload:
        """A new workload with fields of named layers replaced and channels re-propagated.

        ``changes`` maps layer names to field updates (``out_channels``, ``kernel_h``/``kernel_w``
        with ``pad_h``/``pad_w``, ``weight_bits``, ``kept_per_kernel`` ...). Input channels of
        every consumer follow through pass-through ops, flattens and concats; a change that
        would make an add's inputs disagree, alter a spatial size or feed an unsupported op
        raises a ``PlanError`` naming the layer.
        """
        for name in changes:
            self.layer(name)
        new: dict[str, Layer] = {}
        for layer in self.layers:
            update = dict(changes.get(layer.name, {}))
            srcs = [new[i] for i in layer.inputs]
            update.update(_propagated_fields(layer, srcs, update))
            changed = replace(layer, **update) if update else layer
            _check_spatial(layer, changed)
            new[layer.name] = changed
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


def _propagated_fields(layer: Layer, srcs: list[Layer], update: dict[str, Any]) -> dict[str, Any]:
    """Channel fields of ``layer`` implied by its (possibly changed) inputs."""
    if not srcs or layer.kind is OpKind.INPUT:
        return {}
    in_c = srcs[0].out_channels
    if layer.kind is OpKind.RESHAPE:
        return {"in_channels": in_c, "out_channels": in_c * layer.in_h * layer.in_w}
    if layer.kind is OpKind.CONCAT:
        total = sum(s.out_channels for s in srcs)
        return {"in_channels": in_c, "out_channels": total}
    if layer.kind in _OFFSET_KINDS:
        return {"in_channels": in_c, "out_channels": in_c + layer.out_channels - layer.in_channels}
    if layer.kind is OpKind.ELTWISE:
        widths = {s.out_channels for s in srcs} - {1}
        if len(widths) > 1:
            raise PlanError(
                f"The change makes the inputs of {layer.name!r} ({layer.op or 'eltwise'}) disagree: "
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
