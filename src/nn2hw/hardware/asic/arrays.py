"""What every ASIC dataflow template computes: per-op columns in, (designs x ops) arrays out.

``LayerTable`` holds the layers an array runs (conv, linear, matmul; an Eyeriss average pool) as
NumPy columns per group; each template's ``evaluate`` turns it into ``CostArrays`` for D designs
and L layers at once: compute cycles (no memory stalls) split into MAC time, mapping loss and
pipeline fill/drain; the cycles the on-chip buffers and DRAM need at their bandwidth; and word
accesses and energy per memory level. ``VectorTable`` holds the element-wise ops (pooling, adds,
softmax, layer norm, embedding gathers) that a vector unit runs; ``vector_costs`` costs them the
same way (element operations over the unit's lanes, or the DRAM round trip of their operands,
whichever is longer). ``join_columns`` puts both into one table in network order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from nn2hw.hardware._types import Floats, Ints, Mask
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.records import Execution, Uncosted
from nn2hw.workload import Layer, OpKind, Workload

BITS_PER_KIB = 8192
BOTTLENECK_MEANINGS = {"compute": "ideal MAC time", "mapping": "PEs left idle by the mapping",
                       "fill-drain": "pipeline fill and drain", "sram-bandwidth": "stalled on buffer bandwidth",
                       "dram": "stalled on DRAM bandwidth"}
"""The ASIC templates' bottleneck vocabulary: the largest share of a layer's cycles."""
BOTTLENECKS = tuple(BOTTLENECK_MEANINGS)


@dataclass(frozen=True, eq=False)
class LayerTable:
    """The conv/linear layers of a workload as NumPy columns, per group.

    ``C``/``K`` are the input/output channels of one group (a depthwise conv has C = 1), ``G``
    the group count, ``P`` the output pixels N*E*F, ``T`` the window C*R*S of one group. ``Hp``,
    ``Wp`` are the input rows/columns the convolution spans, padding included (up to the last
    output's window), ``touched`` the input pixels its windows read (a stride longer than the window
    skips some); ``H``/``W`` are the unpadded input. Linear layers
    are 1x1 convolutions on a 1x1 map with N = the rows they are applied to.
    """

    names: tuple[str, ...]
    ops: tuple[str, ...]
    conv_types: tuple[str, ...]
    N: Ints
    G: Ints
    C: Ints
    K: Ints
    E: Ints
    F: Ints
    R: Ints
    S: Ints
    stride_h: Ints
    stride_w: Ints
    H: Ints
    W: Ints
    Hp: Ints
    Wp: Ints
    touched: Ints
    is_linear: Mask
    macs: Ints
    in_bits: Ints
    w_bits: Ints
    out_bits: Ints

    @classmethod
    def from_workload(cls, workload: Workload) -> LayerTable:
        """The workload's conv, linear and matmul layers."""
        return _table(workload)

    @classmethod
    def from_layers(cls, layers: Sequence[Layer]) -> LayerTable:
        """Columns of ``layers`` (conv, linear or matmul). A matmul is a grouped 1x1 convolution with
        one group per (batch, head) product: its second operand differs from one to the next."""
        def col(fn: Callable[[Layer], int]) -> Ints:
            return np.array([fn(layer) for layer in layers], dtype=np.int64)

        def matmul(x: Layer) -> bool:
            return x.kind is OpKind.MATMUL

        return cls(
            names=tuple(layer.name for layer in layers),
            ops=tuple(layer.op or layer.kind.value for layer in layers),
            conv_types=tuple(layer.conv_type or layer.kind.value for layer in layers),
            N=col(lambda x: 1 if matmul(x) else x.batch), G=col(lambda x: x.groups * (x.batch if matmul(x) else 1)),
            C=col(lambda x: x.in_channels // x.groups), K=col(lambda x: x.out_channels // x.groups),
            E=col(lambda x: x.out_h), F=col(lambda x: x.out_w), R=col(lambda x: x.kernel_h),
            S=col(lambda x: x.kernel_w), stride_h=col(lambda x: x.stride_h), stride_w=col(lambda x: x.stride_w),
            H=col(lambda x: x.in_h), W=col(lambda x: x.in_w),
            Hp=col(lambda x: _extent(x.in_h, x.pad_h, x.out_h, x.stride_h, x.dilation_h, x.kernel_h)),
            Wp=col(lambda x: _extent(x.in_w, x.pad_w, x.out_w, x.stride_w, x.dilation_w, x.kernel_w)),
            touched=col(lambda x: _touched(x.in_h, x.pad_h, x.out_h, x.stride_h, x.dilation_h, x.kernel_h)
                        * _touched(x.in_w, x.pad_w, x.out_w, x.stride_w, x.dilation_w, x.kernel_w)),
            is_linear=np.array([layer.kind is OpKind.LINEAR for layer in layers], dtype=bool),
            macs=col(lambda x: x.macs), in_bits=col(lambda x: x.input_bits), w_bits=col(lambda x: x.weight_bits),
            out_bits=col(lambda x: x.output_bits),
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def P(self) -> Ints:
        return self.N * self.E * self.F

    @property
    def T(self) -> Ints:
        return self.C * self.R * self.S

    @property
    def dense_macs(self) -> Ints:
        """MACs the hardware performs: every weight of the dense kernel (patterns are not skipped)."""
        return self.G * self.P * self.K * self.T

    @property
    def ifmap(self) -> Ints:
        """Distinct input words read (padded maps, touched pixels only, all groups)."""
        return self.N * self.G * self.C * self.touched

    @property
    def weights(self) -> Ints:
        return self.G * self.K * self.T

    @property
    def ofmap(self) -> Ints:
        return self.G * self.P * self.K


def _extent(size: int, pad: int, out: int, stride: int, dilation: int, kernel: int) -> int:
    """Input rows (or columns) a convolution spans, padding included: up to what the last output needs."""
    return min(size + 2 * pad, (out - 1) * stride + dilation * (kernel - 1) + 1)


def _touched(size: int, pad: int, out: int, stride: int, dilation: int, kernel: int) -> int:
    """Input rows (or columns) its windows actually touch: the span, less the rows a stride longer
    than the window skips (a 1x1 stride-2 conv reads every other row), as SCALE-Sim and ZigZag count."""
    if stride > dilation * (kernel - 1) + 1:
        return out * kernel
    return _extent(size, pad, out, stride, dilation, kernel)


@lru_cache(maxsize=64)
def _table(workload: Workload) -> LayerTable:
    return LayerTable.from_layers(workload.compute_layers)


def words(elements: Floats | Ints, bits: Floats | Ints, word_bits: int) -> Floats:
    """Elements of ``bits`` each, in technology words (packed)."""
    return elements * (bits / word_bits)


def capacity(kib: Floats, bits: Floats | Ints) -> Floats:
    """How many elements of ``bits`` bits a buffer of ``kib`` KiB holds: (D, 1) x (L,) -> (D, L)."""
    return np.floor(np.asarray(kib, dtype=np.float64)[:, None] * BITS_PER_KIB / bits[None, :])


def refetch(unique: Floats | Ints, fits: Mask, sweeps: Floats | Ints) -> Floats:
    """DRAM elements of an operand: loaded once if its reuse set fits its buffer, else once per sweep."""
    loads: Floats = np.where(fits, 1.0, sweeps)
    return loads * unique


def cdiv(a: Floats | Ints, b: Floats | Ints) -> Floats | Ints:
    return -(-a // b)


def full(values: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` broadcast to ``shape`` as a float array (a copy, safe to store)."""
    return np.array(np.broadcast_to(values, shape), dtype=float)


@dataclass(frozen=True, eq=False)
class CostArrays:
    """What a template computes for D designs x L layers.

    ``compute`` = ``mac`` + mapping loss + ``fill_drain`` (cycles, no memory stall); ``sram`` and
    ``dram`` are the cycles the buffers and DRAM need at their bandwidth (overlapped with compute
    by double buffering); ``traffic`` holds word counts per access kind; ``energy_pj`` per level.
    ``mapping`` optionally describes each layer's mapping (tiling, folds) per design.
    """

    compute: Floats
    mac: Floats
    fill_drain: Floats
    sram: Floats
    dram: Floats
    energy_pj: Mapping[str, Floats]
    traffic: Mapping[str, Floats]
    area_mm2: Floats
    pes: Floats
    sram_kib: Floats
    area_parts_mm2: Mapping[str, Floats] = field(default_factory=dict)
    mapping: Callable[[int, int], str] | None = None
    valid: Mask | None = None
    """(D, L) False where the design cannot map the layer (None: every layer maps)."""

    def mappable(self) -> Mask:
        """(D, L) bool: which layers each design can run."""
        return np.ones(self.compute.shape, dtype=bool) if self.valid is None else self.valid

    @property
    def total(self) -> Floats:
        """Cycles with stalls: the slowest of compute, buffer and DRAM time (double-buffered)."""
        return np.maximum(self.compute, np.maximum(self.sram, self.dram))

    @property
    def energy_total_pj(self) -> Floats:
        return sum(self.energy_pj.values())  # type: ignore[return-value]  # 0 only for no levels: never

    def components(self) -> dict[str, Floats]:
        """Cycle shares per bottleneck label; they add up to ``total``."""
        sram_stall = np.maximum(self.sram - self.compute, 0.0)
        dram_stall = np.maximum(self.dram - np.maximum(self.compute, self.sram), 0.0)
        return {"compute": self.mac, "mapping": np.maximum(self.compute - self.fill_drain - self.mac, 0.0),
                "fill-drain": self.fill_drain, "sram-bandwidth": sram_stall, "dram": dram_stall}

    def bottleneck_index(self) -> Ints:
        parts = self.components()
        index: Ints = np.argmax(np.stack([parts[k] for k in BOTTLENECKS]), axis=0)
        return index


def energy_levels(tech: Technology, table: LayerTable, *, rf: np.ndarray, noc: np.ndarray | float,
                  buffers: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  dram: np.ndarray) -> dict[str, np.ndarray]:
    """Energy per level (pJ, shape (D, L)) from word counts.

    ``buffers`` yields (accesses in words, words written from DRAM, buffer KiB per design) for
    each buffer; a word filled from DRAM costs ``tech.sram_fill_pj`` when the table names one and
    a normal access otherwise. MAC energy scales with (input bits x weight bits) / 256.
    """
    mac = (table.dense_macs * (table.in_bits * table.w_bits / 256.0) * tech.mac_pj)[None, :]
    sram: Floats | float = 0.0
    for accesses, fills, kib in buffers:
        per_word = tech.sram_word_pj(kib)[:, None]
        fill_pj = per_word if tech.sram_fill_pj is None else tech.sram_fill_pj
        sram = sram + accesses * per_word + fills * fill_pj
    shape = np.broadcast_shapes(np.shape(dram), mac.shape)
    return {"mac": np.broadcast_to(mac, shape), "rf": np.broadcast_to(rf * tech.rf_pj, shape),
            "noc": np.broadcast_to(noc * tech.noc_pj, shape), "sram": np.broadcast_to(sram, shape),
            "dram": dram * tech.dram_pj}


def totals(arrays: CostArrays, clock_mhz: float) -> dict[str, np.ndarray]:
    """Per-design totals (D,): latency_ms, energy_mj, edp (mJ x ms), area_mm2, compute cycles."""
    latency = arrays.total.sum(axis=1) / (clock_mhz * 1e3)
    energy = arrays.energy_total_pj.sum(axis=1) * 1e-9
    return {"latency_ms": latency, "energy_mj": energy, "edp": latency * energy, "area_mm2": arrays.area_mm2,
            "cycles": arrays.total.sum(axis=1), "compute_cycles": arrays.compute.sum(axis=1)}


@dataclass(frozen=True, eq=False)
class Footprint:
    """PEs, buffer KiB and area (mm^2, with its parts) of D designs, shape (D,)."""

    pes: np.ndarray
    sram_kib: np.ndarray
    area_mm2: np.ndarray
    parts: Mapping[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class OpTable:
    """The ops of a network as an ASIC template runs them: one column per op with cycles (the array
    layers of ``array`` and the vector ops of ``vector``, at ``*_positions``), in network order, and
    the ops without cycles of their own, each with how it runs and why (``uncosted``)."""

    names: tuple[str, ...]
    ops: tuple[str, ...]
    macs: np.ndarray
    executions: tuple[Execution, ...]
    array: LayerTable
    vector: VectorTable
    array_positions: tuple[int, ...]
    vector_positions: tuple[int, ...]
    uncosted: tuple[Uncosted, ...]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def depthwise(self) -> np.ndarray:
        """(L,) True for the depthwise convolutions (array columns only)."""
        flags = np.zeros(len(self), dtype=bool)
        flags[list(self.array_positions)] = [t == "depthwise" for t in self.array.conv_types]
        return flags


@dataclass(frozen=True, eq=False)
class VectorTable:
    """Element-wise ops as columns: element operations, and the bits their operands and result
    move (read and written through DRAM, as the array layers' activations are)."""

    names: tuple[str, ...]
    ops: tuple[str, ...]
    vector_ops: np.ndarray
    read_bits: np.ndarray
    write_bits: np.ndarray

    @classmethod
    def from_layers(cls, layers: Sequence[Layer]) -> VectorTable:
        return cls(tuple(x.name for x in layers), tuple(x.op or x.kind.value for x in layers),
                   np.array([x.vector_ops for x in layers], dtype=float),
                   np.array([8 * x.read_bytes for x in layers], dtype=float),
                   np.array([8 * x.write_bytes for x in layers], dtype=float))

    def __len__(self) -> int:
        return len(self.names)


def vector_costs(table: VectorTable, lanes: np.ndarray, dram_bw: np.ndarray, tech: Technology,
                 footprint: Footprint) -> CostArrays:
    """The vector unit of D designs (``lanes`` element operations per cycle, ``dram_bw`` words per
    cycle) on the ops of ``table``: compute = operations / lanes, overlapped with the DRAM round
    trip of the operands and result; energy = operations x ``vector_op_pj`` + DRAM words."""
    shape = (len(lanes), len(table))
    compute = table.vector_ops[None, :] / lanes[:, None]
    dram_words = (table.read_bits + table.write_bits) / tech.word_bits
    zeros = np.zeros(shape)
    energy = {"mac": zeros, "rf": zeros, "noc": zeros, "sram": zeros, "dram": full(dram_words * tech.dram_pj, shape),
              "vector": full(table.vector_ops * tech.vector_op_pj, shape)}

    def mapping(d: int, i: int) -> str:
        return f"vector unit, {lanes[d]:g} lanes"

    return CostArrays(compute=compute, mac=compute, fill_drain=zeros, sram=zeros,
                      dram=dram_words[None, :] / dram_bw[:, None], energy_pj=energy,
                      traffic={"dram_vector": full(dram_words, shape)}, area_mm2=footprint.area_mm2,
                      pes=footprint.pes, sram_kib=footprint.sram_kib, area_parts_mm2=footprint.parts, mapping=mapping)


def join_columns(parts: Sequence[tuple[CostArrays, Sequence[int]]], width: int) -> CostArrays:
    """One (D, ``width``) table from several parts costed on the same designs: part k's column j goes
    to column ``positions_k[j]``. Energy levels and traffic kinds a part lacks are zero there; the
    per-design footprint (PEs, buffers, area) is the first part's."""
    first = parts[0][0]
    shape = (first.compute.shape[0], width)

    def place(get: Callable[[CostArrays], Floats | Mask | None], default: float = 0.0) -> Floats:
        out = np.full(shape, default)
        for arrays, positions in parts:
            values = get(arrays)
            if values is not None:
                out[:, list(positions)] = values
        return out

    levels = dict.fromkeys(k for arrays, _ in parts for k in arrays.energy_pj)
    kinds = dict.fromkeys(k for arrays, _ in parts for k in arrays.traffic)
    owner = {int(pos): (arrays, j) for arrays, positions in parts for j, pos in enumerate(positions)}

    def mapping(d: int, i: int) -> str:
        arrays, j = owner[i]
        return arrays.mapping(d, j) if arrays.mapping else ""

    def energy(level: str) -> Floats:
        return place(lambda a: a.energy_pj.get(level))

    def traffic(kind: str) -> Floats:
        return place(lambda a: a.traffic.get(kind))

    return CostArrays(
        compute=place(lambda a: a.compute), mac=place(lambda a: a.mac), fill_drain=place(lambda a: a.fill_drain),
        sram=place(lambda a: a.sram), dram=place(lambda a: a.dram),
        energy_pj={k: energy(k) for k in levels}, traffic={k: traffic(k) for k in kinds},
        area_mm2=first.area_mm2, pes=first.pes, sram_kib=first.sram_kib, area_parts_mm2=first.area_parts_mm2,
        mapping=mapping, valid=place(lambda a: a.mappable(), 1.0).astype(bool))
