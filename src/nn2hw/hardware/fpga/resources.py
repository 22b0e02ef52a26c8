"""Resource model of the tiled-convolution template: DSP, port bits and on-chip buffers.

DSP: one per MAC for 16-bit fixed point, five for 32-bit floating point (HotNAS/FPGA'15), for the
Tm x Tn array plus the depthwise engine's Tm lanes. Ports: word_bits*(Wp+Ip+Op) <= port_bits.

BRAM, four models (reference notes 2.12; see docs/fpga-cost-model.md):

- ``realistic`` (default). Each engine has an input, a weight and an output buffer. The input and
  weight buffers are double-buffered in one simple-dual-port memory (the DMA fills one half
  through the write port while the MACs read the other), so their depth is twice the tile; the
  output buffer is two memories (one accumulates, read and written every cycle, while the other
  drains to DRAM). A memory is as wide as the words read per cycle (Tn inputs, Tm*Tn weights,
  Tm outputs of ``word_bits``) and is mapped to BRAM18 in its best aspect ratio
  (16Kx1 ... 512x36) or to LUTRAM (SLICEM RAM64M: 64 deep x 3 bits per 4 LUTs; RAM32M: 32 x 6 per
  4 LUTs when 32 deep or less). Each buffer goes wholly to one kind; the mapper picks the
  placement that minimises the larger of the BRAM and LUTRAM utilisations. Input tiles include
  the kernel halo: (Tr+Tk-1) x (Tc+Tk-1).
- ``hotnas``: their formula as written, 18000-bit blocks against the device's BRAM18 count.
- ``as-run``: the same formula with the arguments swapped as in their explore scripts (1824-bit
  blocks against a limit of 18000), which reproduces the published optima; the depthwise engine
  was not checked then and is not here.
- ``off``: no BRAM limit. BRAM use is still reported (under the realistic model) in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nn2hw.errors import ConfigError
from nn2hw.hardware._types import Floats, Mask
from nn2hw.hardware.fpga.design import DesignArrays, unique_rows
from nn2hw.hardware.fpga.devices import FpgaDevice
from nn2hw.registry import suggest

BRAM_MODES = ("realistic", "hotnas", "as-run", "off")
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
"""Depth x width configurations of one RAMB18 in simple-dual-port mode (UG473 / UG573)."""
HOTNAS_BLOCK_BITS = 18000
ASRUN_BLOCK_BITS = 1824
ASRUN_LIMIT = 18000
LUTRAM_DEFAULT_DEPTH = 64
"""Memories this shallow go to LUTRAM by default (a BRAM18 would be at most 1/8 used in depth)."""
LUTRAM_MAX_DEPTH = 256
"""Deepest memory that may go to LUTRAM (RAM256X1D: four 64-deep LUTs muxed inside one slice)."""
DEFAULT_LUTRAM_SHARE = 0.75
"""Share of the device's LUTRAM-capable LUTs the buffers may take (the rest: shift registers, logic)."""


def check_bram_mode(mode: str) -> str:
    if mode not in BRAM_MODES:
        raise ConfigError(f"Unknown BRAM model {mode!r}.{suggest(str(mode), list(BRAM_MODES))}",
                          "Use --bram realistic (default), hotnas (their formula), as-run (reproduces the "
                          "published optima) or off.")
    return mode


def dsp_per_mac(word_bits: int) -> int:
    return 1 if word_bits == 16 else 5


def bram18_shape(depth: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest RAMB18 aspect ratio for a depth x width memory: (its depth, its width)."""
    (d0, w0), *others = BRAM18_SHAPES
    best = np.ceil(depth / d0) * np.ceil(width / w0)
    best_d, best_w = np.full_like(best, d0), np.full_like(best, w0)
    for d, w in others:
        blocks = np.ceil(depth / d) * np.ceil(width / w)
        better = blocks <= best  # ties go to the wider shape
        best = np.where(better, blocks, best)
        best_d, best_w = np.where(better, d, best_d), np.where(better, w, best_w)
    return best_d, best_w


def lutram_luts(depth: np.ndarray, width: np.ndarray) -> np.ndarray:
    """LUTs of a depth x width simple-dual-port LUTRAM: RAM32M (32 x 6 per 4 LUTs) up to 32 deep,
    RAM64M (64 x 3 per 4 LUTs) up to 64, RAM128X1D/RAM256X1D (2 LUTs per 64 words per bit) up to
    256; deeper memories are not LUTRAM candidates (infinite cost)."""
    return np.where(depth <= 32, 4 * np.ceil(width / 6),
                    np.where(depth <= 64, 4 * np.ceil(width / 3),
                             np.where(depth <= LUTRAM_MAX_DEPTH, 2 * np.ceil(depth / 64) * width, np.inf)))


@dataclass(frozen=True)
class Buffer:
    """``copies`` memories of ``depth`` words x ``width`` bits (arrays over designs)."""

    name: str
    copies: int
    depth: np.ndarray
    width: np.ndarray


def buffers(d: DesignArrays) -> list[Buffer]:
    """The on-chip buffers of every design (see the module docstring)."""
    wb = d.word_bits
    out = [
        Buffer("input", 1, 2 * (d.Tr + d.Tk - 1) * (d.Tc + d.Tk - 1), d.Tn * wb),
        Buffer("weight", 1, 2 * d.Tk * d.Tk, d.Tm * d.Tn * wb),
        Buffer("output", 2, d.Tr * d.Tc, d.Tm * wb),
    ]
    if d.has_dw:
        out += [
            Buffer("dw input", 1, 2 * (d.dTr + d.dTk - 1) * (d.dTc + d.dTk - 1), d.dTm * wb),
            Buffer("dw weight", 1, 2 * d.dTk * d.dTk, d.dTm * wb),
            Buffer("dw output", 2, d.dTr * d.dTc, d.dTm * wb),
        ]
    return out


@dataclass(frozen=True)
class MemoryUse:
    """Realistic on-chip memory of every design: BRAM18s, LUTRAM LUTs, and the bits of each
    buffer's width placed in LUTRAM (designs x buffers; 0: all in BRAM)."""

    bram18: np.ndarray
    luts: np.ndarray
    lutram_bits: np.ndarray
    widths: np.ndarray
    names: tuple[str, ...]

    def placement(self, i: int) -> str:
        """'weight buffer partly (4,176 of 40,320 bits) in LUTRAM' for design ``i`` ('' when all in BRAM)."""
        parts = []
        for name, bits, width in zip(self.names, self.lutram_bits[i], self.widths[i]):
            if bits >= width:
                parts.append(f"{name} buffer in LUTRAM")
            elif bits > 0:
                parts.append(f"{name} buffer partly ({bits:,.0f} of {width:,.0f} bits) in LUTRAM")
        return ", ".join(parts)


def realistic_memory(d: DesignArrays, bram_avail: float, lut_avail: float) -> MemoryUse:
    """Place the buffers (see the module docstring).

    Default placement: memories at most 64 deep in LUTRAM, the rest in BRAM18. If that does not
    fit, start from everything in BRAM and move width columns of the LUTRAM candidates (at most
    256 deep) to LUTRAM, cheapest LUTs per freed BRAM18 first, until the BRAM fits: this uses the
    fewest LUTs of any placement that fits the BRAM, so if it overflows the LUTRAM budget no
    placement fits.
    """
    bufs = buffers(d)
    copies = np.array([[b.copies] for b in bufs], dtype=float)  # (k, 1)
    depth = np.stack([b.depth for b in bufs])  # (k, D)
    width = np.stack([b.width for b in bufs])
    shape_d, shape_w = bram18_shape(depth, width)
    col_blocks = copies * np.ceil(depth / shape_d)  # BRAM18 per shape_w-bit column
    blocks = col_blocks * np.ceil(width / shape_w)
    luts = copies * lutram_luts(depth, width)
    tiny = depth <= LUTRAM_DEFAULT_DEPTH
    default_bram = np.where(tiny, 0.0, blocks).sum(axis=0)
    default_luts = np.where(tiny, luts, 0.0).sum(axis=0)
    default_fits = (default_bram <= bram_avail) & (default_luts <= lut_avail)

    overflow = np.maximum(blocks.sum(axis=0) - bram_avail, 0.0)  # BRAM18 to free from the all-BRAM placement
    ratio = np.where(np.isfinite(luts), luts / blocks, np.inf)
    order = np.argsort(ratio, axis=0, kind="stable")
    movable = np.take_along_axis(np.where(np.isfinite(luts), blocks, 0.0), order, axis=0)
    freed_before = np.cumsum(movable, axis=0) - movable
    need = np.clip(overflow - freed_before, 0.0, movable)  # blocks to free from each buffer, in order
    sorted_cols = np.take_along_axis(col_blocks, order, axis=0)
    sorted_w = np.take_along_axis(shape_w, order, axis=0)
    sorted_width = np.take_along_axis(width, order, axis=0)
    moved_sorted = np.minimum(np.ceil(need / sorted_cols) * sorted_w, sorted_width)
    moved = np.empty_like(moved_sorted)
    np.put_along_axis(moved, order, moved_sorted, axis=0)
    spill_bram = (col_blocks * np.ceil((width - moved) / shape_w)).sum(axis=0)
    spill_luts = np.where(moved > 0, copies * lutram_luts(depth, moved), 0.0).sum(axis=0)

    bram = np.where(default_fits, default_bram, spill_bram)
    lut = np.where(default_fits, default_luts, spill_luts)
    in_lut = np.where(default_fits[None, :], np.where(tiny, width, 0.0), moved)
    return MemoryUse(bram, lut, in_lut.T, width.T, tuple(b.name for b in bufs))


def hotnas_bram(d: DesignArrays, block_bits: int, include_dw: bool) -> Floats:
    """The HotNAS BRAM formula (PM_FPGA_Template.validate_design) with ``block_bits``-bit blocks."""
    wb = d.word_bits

    def engine(tm: Floats, tn: Floats, tr: Floats, tc: Floats, tk: Floats, w_lanes: Floats) -> Floats:
        tile = np.ceil(tr * tc * wb / block_bits)
        if wb == 16:
            weight = w_lanes * np.ceil(4 * tk * tk * wb / block_bits)
        else:
            weight = 2 * w_lanes * np.ceil(tk * tk * wb / block_bits)
        return 2 * tn * tile + 2 * tm * tile + weight

    total = engine(d.Tm, d.Tn, d.Tr, d.Tc, d.Tk, d.Tm * d.Tn)
    if include_dw and d.has_dw:
        total = total + engine(d.dTm, d.dTm, d.dTr, d.dTc, d.dTk, d.dTm)
    return total


@dataclass(frozen=True)
class ResourceArrays:
    """Use of every enforced resource by every design, plus the realistic memory always reported."""

    names: tuple[str, ...]
    used: tuple[Floats, ...]
    available: tuple[float, ...]
    units: tuple[str, ...]
    memory: MemoryUse
    lut_budget: float

    def ratios(self) -> Floats:
        """(resources, designs) used / available."""
        return np.stack([u / a for u, a in zip(self.used, self.available)])

    def feasible(self) -> Mask:
        ok: Mask = np.all(np.stack([u <= a for u, a in zip(self.used, self.available)]), axis=0)
        return ok

    def bram_measure(self) -> np.ndarray:
        """The BRAM figure used for the Pareto set: the enforced BRAM model's, else the realistic one."""
        for name, used in zip(self.names, self.used):
            if name.startswith("BRAM"):
                return used
        return self.memory.bram18


def resource_arrays(d: DesignArrays, device: FpgaDevice, bram: str, lutram_share: float) -> ResourceArrays:
    """Every enforced resource line for the designs ``d`` on ``device`` under BRAM model ``bram``."""
    lut_budget = float(np.floor(device.lutram * lutram_share))
    keys, inverse = unique_rows(d.Tm, d.Tn, d.Tr, d.Tc, d.Tk, d.dTm, d.dTr, d.dTc, d.dTk)
    zeros = np.zeros(len(keys[0]))
    columns = (*keys[:5], zeros, zeros, zeros, *keys[5:])  # the distinct tiles, Wp, Ip, Op at zero
    distinct = DesignArrays(*columns, has_dw=d.has_dw, word_bits=d.word_bits)
    mem = realistic_memory(distinct, float(device.bram18), max(lut_budget, 1.0))  # ports do not matter
    memory = MemoryUse(mem.bram18[inverse], mem.luts[inverse], mem.lutram_bits[inverse], mem.widths[inverse],
                       mem.names)
    names = ["DSP", "port bits"]
    used = [dsp_per_mac(d.word_bits) * (d.Tm * d.Tn + d.dTm), d.word_bits * (d.Wp + d.Ip + d.Op)]
    available = [float(device.dsp), float(device.port_bits)]
    units = ["DSP slices", "bits/cycle"]
    if bram == "realistic":
        names += ["BRAM18", "LUTRAM"]
        used += [memory.bram18, memory.luts]
        available += [float(device.bram18), lut_budget]
        units += ["18 Kb blocks", f"LUTs ({lutram_share:.0%} of {device.lutram:,} LUTRAM LUTs)"]
    elif bram == "hotnas":
        names.append("BRAM18 (HotNAS formula)")
        used.append(hotnas_bram(d, HOTNAS_BLOCK_BITS, include_dw=True))
        available.append(float(device.bram18))
        units.append("18000-bit blocks")
    elif bram == "as-run":
        names.append("BRAM (as-run check)")
        used.append(hotnas_bram(d, ASRUN_BLOCK_BITS, include_dw=False))
        available.append(float(ASRUN_LIMIT))
        units.append("1824-bit blocks, limit 18000 (swapped arguments)")
    return ResourceArrays(tuple(names), tuple(used), tuple(available), tuple(units), memory, lut_budget)
