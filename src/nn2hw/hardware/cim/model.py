"""The crossbar cost model, vectorized over D designs and L layers (NumPy).

A layer's weights, unrolled as a (K^2 * C_in) x C_out matrix per group, are cut into ``slices =
ceil(weight_bits / cell_bits)`` bit slices side by side, so one output channel takes ``slices``
columns; the matrix is tiled onto crossbars of ``rows`` x ``cols`` cells:

    arrays = groups x ceil(K^2 * C_in / rows) x ceil(C_out * slices / data_cols) (x 2 differential)

with ``data_cols = cols`` (``cols - 1`` with an offset column). A kernel taller than a crossbar is
split across row blocks whose partial sums an adder tree adds; its slices may spread over column
blocks (the shift-and-add units weight them), so every layer maps onto any crossbar, at the cost of
more arrays. Inputs enter bit-serially through ``dac_bits`` DACs: ``ceil(input_bits / dac_bits)``
input cycles per output pixel. In each cycle every array of the layer is read at once (one
crossbar read) and its columns are converted by its ``adcs_per_array`` ADCs in turn, so a step
takes max(read time, columns per ADC x conversion time) and the layer ``pixels x input cycles``
steps. The whole network's weights stay in the chip's arrays (``tiles`` x arrays per tile); when
they do not fit, every layer is programmed per inference in rounds of the chip's arrays (row by
row, all arrays of a round at once). Activations pass through the tile's eDRAM buffer and bus
(256 bits per clock per tile in use), overlapped with the crossbars (double buffering).

The time of a layer splits into the bottleneck shares ``crossbar`` or ``adc`` (its steps, by
whichever of the read and the conversions is slower), ``array-count`` (extra rounds and
programming) and ``buffer`` (buffer/bus time beyond the rest); they add up to its latency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn2hw.hardware._types import Floats, Ints, Mask
from nn2hw.hardware.cim.data import Components, Device
from nn2hw.workload import Layer, OpKind

SIGNED = ("differential", "offset", "polarized")
"""How a crossbar holds signed weights: a pair of arrays (positive, negative) subtracted digitally;
one offset column per array holding the bias that is subtracted; or FORMS-style polarized columns
(every column fragment holds weights of one sign, enforced in training), which need neither."""
BOTTLENECKS = {
    "crossbar": "analog crossbar reads set each step: pixels x input cycles x read time",
    "adc": "ADC-bound: converting a crossbar's columns on its shared ADCs takes longer than the read",
    "array-count": "array-count-bound: the network's arrays exceed the chip's, so layers are programmed per "
                   "inference in rounds",
    "buffer": "buffer/interconnect-bound: moving activations through the tile buffer and bus takes longer than "
              "computing",
}
ENERGY_PARTS = ("crossbar", "dac", "adc", "shift_add", "edram", "bus", "router", "program")
AREA_PARTS = ("crossbar", "adc", "dac", "shift_add", "edram", "bus", "router")


@dataclass(frozen=True, eq=False)
class CimTable:
    """The conv and linear layers as columns per group: ``T`` = K^2 x C_in of a group (the
    crossbar rows it needs), ``K`` = its output channels, ``P`` = output pixels (rows of a linear)."""

    names: tuple[str, ...]
    ops: tuple[str, ...]
    G: Ints
    T: Ints
    K: Ints
    P: Ints
    macs: Ints
    in_bits: Ints
    w_bits: Ints
    out_bits: Ints

    @classmethod
    def from_layers(cls, layers: Sequence[Layer]) -> CimTable:
        def col(values: Sequence[int]) -> Ints:
            return np.array(values, dtype=np.int64)

        return cls(names=tuple(x.name for x in layers), ops=tuple(x.op or x.kind.value for x in layers),
                   G=col([x.groups for x in layers]),
                   T=col([x.in_channels // x.groups * x.kernel_h * x.kernel_w for x in layers]),
                   K=col([x.out_channels // x.groups for x in layers]),
                   P=col([x.batch * x.out_h * x.out_w for x in layers]), macs=col([x.macs for x in layers]),
                   in_bits=col([x.input_bits for x in layers]), w_bits=col([x.weight_bits for x in layers]),
                   out_bits=col([x.output_bits for x in layers]))

    def __len__(self) -> int:
        return len(self.names)


ARRAY_KINDS = frozenset({OpKind.CONV, OpKind.LINEAR})


@dataclass(frozen=True, eq=False)
class CimArrays:
    """What the model computes for D designs x L layers: nanoseconds per bottleneck share (they add
    up to ``total_ns``), arrays, rounds, energy per component (pJ) and, per design, the chip's
    arrays, whether the network fits them and the area per component (mm^2)."""

    total_ns: Floats
    shares_ns: Mapping[str, Floats]
    arrays: Ints
    rounds: Ints
    energy_pj: Mapping[str, Floats]
    chip_arrays: Ints
    fits: Mask
    area_mm2: Mapping[str, Floats]
    slices: Ints
    input_cycles: Ints
    row_blocks: Ints
    col_blocks: Ints

    @property
    def area_total_mm2(self) -> Floats:
        return sum(self.area_mm2.values())  # type: ignore[return-value]  # never empty

    @property
    def energy_total_pj(self) -> Floats:
        return sum(self.energy_pj.values())  # type: ignore[return-value]  # never empty

    def bottleneck_index(self) -> Ints:
        index: Ints = np.argmax(np.stack([self.shares_ns[k] for k in BOTTLENECKS]), axis=0)
        return index


def cdiv(a: Any, b: Any) -> Any:
    return -(-a // b)


def design_columns(designs: Sequence[Any]) -> dict[str, np.ndarray]:
    """The design fields the model reads, as (D, 1) integer columns (``signed`` as its index)."""
    names = ("rows", "cols", "cell_bits", "adc_bits", "dac_bits", "adcs_per_array", "tiles")
    out = {n: np.array([getattr(d, n) for d in designs], dtype=np.int64)[:, None] for n in names}
    out["signed"] = np.array([SIGNED.index(d.signed) for d in designs], dtype=np.int64)[:, None]
    return out


def area_mm2(designs: Sequence[Any], comp: Components, devices: Sequence[Device]) -> dict[str, Floats]:
    """Area per component of each design's chip (mm^2, shape (D,)): its arrays with their ADCs,
    DACs (one per row) and shift-and-add units (one per ADC), and per tile the buffer, bus and router;
    ``devices[d]`` is design d's cell."""
    c = {k: v[:, 0].astype(float) for k, v in design_columns(designs).items()}
    arrays = c["tiles"] * comp.arrays_per_tile
    cell_um2 = np.array([comp.cell_um2(device) for device in devices])
    um2 = {"crossbar": c["rows"] * c["cols"] * cell_um2,
           "adc": c["adcs_per_array"] * comp.adc_area_um2(c["adc_bits"]),
           "dac": c["rows"] * comp.dac_area_um2(c["dac_bits"]),
           "shift_add": c["adcs_per_array"] * comp.shift_add_um2}
    out = {k: arrays * v * 1e-6 for k, v in um2.items()}
    out.update(edram=c["tiles"] * comp.edram_mm2_per_tile, bus=c["tiles"] * comp.bus_mm2_per_tile,
               router=c["tiles"] * comp.router_mm2_per_tile)
    return {k: out[k] for k in AREA_PARTS}


def evaluate(table: CimTable, designs: Sequence[Any], comp: Components, devices: Sequence[Device]) -> CimArrays:
    """Every layer of ``table`` on every design (``devices[d]``: design d's cell): time shares,
    arrays, energy and area."""
    c = design_columns(designs)
    write_ns = np.array([device.write_ns for device in devices])[:, None]
    write_pj = np.array([device.write_pj or 0.0 for device in devices])[:, None]  # no source: not counted
    rows, cols, adcs = c["rows"], c["cols"], c["adcs_per_array"]
    offset = (c["signed"] == 1).astype(np.int64)
    pair = np.where(c["signed"] == 0, 2, 1)
    G, T, K, P = table.G[None, :], table.T[None, :], table.K[None, :], table.P[None, :]
    slices = cdiv(table.w_bits[None, :], c["cell_bits"])
    cycles = cdiv(table.in_bits[None, :], c["dac_bits"])
    row_blocks = cdiv(T, rows)
    col_blocks = cdiv(K * slices, cols - offset)
    arrays = G * row_blocks * col_blocks * pair
    chip_arrays = c["tiles"][:, 0] * comp.arrays_per_tile
    fits = arrays.sum(axis=1) <= chip_arrays
    rounds = np.where(fits[:, None], 1, cdiv(arrays, chip_arrays[:, None]))

    # time (ns): each step reads every array once and converts its busiest column block
    busy_cols = np.minimum(cols - offset, K * slices) + offset
    read_ns = comp.crossbar_read_ns
    convert_ns = cdiv(busy_cols, adcs) * comp.adc_ns(c["adc_bits"])
    step_ns = np.maximum(read_ns, convert_ns)
    steps = P * cycles
    program_ns = np.where(fits[:, None], 0.0, rounds * rows * write_ns)
    compute_ns = rounds * steps * step_ns + program_ns
    weight_bits = G * T * K * table.w_bits[None, :]
    in_bits = P * G * T * table.in_bits[None, :] * rounds
    out_bits = P * G * K * table.out_bits[None, :]
    moved_bits = in_bits + out_bits + np.where(fits[:, None], 0, weight_bits)
    tiles_used = np.clip(cdiv(cdiv(arrays, rounds), comp.arrays_per_tile), 1, c["tiles"])
    buffer_ns = moved_bits / (tiles_used * comp.bus_bits_per_cycle) / (comp.clock_mhz * 1e-3)
    total_ns = np.maximum(compute_ns, buffer_ns)
    adc_bound = convert_ns > read_ns
    shares = {"crossbar": steps * np.where(adc_bound, 0.0, step_ns),
              "adc": steps * np.where(adc_bound, step_ns, 0.0),
              "array-count": (rounds - 1) * steps * step_ns + program_ns,
              "buffer": np.maximum(buffer_ns - compute_ns, 0.0)}

    # energy (pJ)
    conversions = steps * G * row_blocks * (K * slices + col_blocks * offset) * pair
    cells = G * T * K * slices * pair
    energy = {
        "crossbar": steps * arrays * comp.crossbar_read_pj(rows, cols),
        "dac": steps * G * T * col_blocks * pair * comp.dac_energy_pj(c["dac_bits"]),
        "adc": conversions * comp.adc_energy_pj(c["adc_bits"]),
        "shift_add": (conversions + P * G * K * (row_blocks * pair - 1)) * comp.shift_add_pj,
        "edram": moved_bits * comp.edram_pj_per_bit,
        "bus": moved_bits * comp.bus_pj_per_bit,
        "router": out_bits * comp.router_pj_per_bit * np.ones_like(step_ns),
        "program": np.where(fits[:, None], 0.0, cells * write_pj),
    }
    shape = total_ns.shape
    return CimArrays(
        total_ns=total_ns, shares_ns={k: np.broadcast_to(v, shape).astype(float) for k, v in shares.items()},
        arrays=np.broadcast_to(arrays, shape).astype(np.int64), rounds=np.broadcast_to(rounds, shape).astype(np.int64),
        energy_pj={k: np.broadcast_to(v, shape).astype(float) for k, v in energy.items()},
        chip_arrays=chip_arrays, fits=fits, area_mm2=area_mm2(designs, comp, devices),
        slices=np.broadcast_to(slices, shape), input_cycles=np.broadcast_to(cycles, shape),
        row_blocks=np.broadcast_to(row_blocks, shape), col_blocks=np.broadcast_to(col_blocks, shape))


def exact_adc_bits(rows: int, cell_bits: int, dac_bits: int) -> int:
    """The ADC resolution that converts a full column sum exactly: rows x (2^cell_bits - 1) x
    (2^dac_bits - 1) + 1 levels."""
    levels = rows * ((1 << cell_bits) - 1) * ((1 << dac_bits) - 1) + 1
    return int(np.ceil(np.log2(levels)))
