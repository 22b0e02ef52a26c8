"""ShiDianNao-style output-stationary mesh: ``pe_rows`` x ``pe_cols`` PEs over output rows x columns.

Each PE accumulates one output pixel of one output channel in its register while the kernel
window slides: every cycle one weight (from SB) is broadcast to all PEs, and inputs come either
from NBin or from a neighbour's FIFO (inter-PE propagation), as in Du et al., ISCA 2015. Per
image, group and output channel the output map is cut into ceil(E/pe_rows) x ceil(F/pe_cols)
tiles; per group with T = C*R*S:

- compute cycles = N x groups x K x tiles x (T + pe_rows): T accumulation cycles plus one cycle
  per PE row to shift the finished outputs out to NBout (an assumption of this model);
- NBin reads: each tile reads the input window it covers, ((pe_rows-1)*stride+R) x
  ((pe_cols-1)*stride+S) words per input channel, once (the mesh forwards the overlap); at
  ``sram_bw`` words per cycle this can exceed the compute time (1x1 and strided layers), which
  is reported as an "sram-bandwidth" stall;
- DRAM: the better of two loop orders, output channels outer (inputs re-read per output channel
  unless NBin holds the whole input) or tiles outer (weights re-read per tile unless SB holds
  them all). Outputs are written once.

Depthwise layers map at full spatial use (each group is an independent map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nn2hw.hardware.asic.arrays import CostArrays, LayerTable, capacity, cdiv, energy_levels, full, words
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.asic.template import KIB_MAX, AsicDesign, AsicTemplate, design_columns
from nn2hw.hardware.base import TEMPLATES

REG_WORDS_PER_PE = 4
"""A PE keeps its output, the input in use and two forwarding FIFO entries (horizontal, vertical)."""


@dataclass(frozen=True)
class ShiDianNaoDesign(AsicDesign):
    """``pe_rows`` x ``pe_cols`` PEs, NBin/SB/NBout buffers (KiB), NBin read bandwidth and DRAM
    bandwidth (16-bit words per cycle)."""

    template: ClassVar[str] = "shidiannao"
    pe_rows: int = 8
    pe_cols: int = 8
    nbin_kib: int = 64
    sb_kib: int = 128
    nbout_kib: int = 64
    sram_bw: float = 16.0
    dram_bw: float = 8.0

    def __post_init__(self) -> None:
        self._check({"pe_rows": 1024, "pe_cols": 1024, "nbin_kib": KIB_MAX, "sb_kib": KIB_MAX, "nbout_kib": KIB_MAX},
                    ("sram_bw", "dram_bw"))


class ShiDianNaoTemplate(AsicTemplate):
    name = "shidiannao"
    description = "ShiDianNao-style output stationary, parallel over output rows x columns"
    design_type = ShiDianNaoDesign
    pe_fields, sram_fields = ("pe_rows", "pe_cols"), ("nbin_kib", "sb_kib", "nbout_kib")
    sub_grid = {"pe_rows": (4, 8, 16), "pe_cols": (4, 8, 16)}
    vector_lanes_field = "pe_cols"
    reg_words_per_pe = REG_WORDS_PER_PE
    grid_axes = {"pe_rows": (4, 8, 16, 32), "pe_cols": (4, 8, 16, 32), "nbin_kib": (32, 64, 256),
                    "sb_kib": (64, 128, 512), "sram_bw": (16, 32, 64)}

    def evaluate(self, table: LayerTable, designs: Any, tech: Technology) -> CostArrays:
        col = design_columns(designs, ("pe_rows", "pe_cols", "nbin_kib", "sb_kib", "nbout_kib", "sram_bw", "dram_bw"))
        py, px = col["pe_rows"].astype(np.int64)[:, None], col["pe_cols"].astype(np.int64)[:, None]
        wb = tech.word_bits
        ib, kb, ob = table.in_bits, table.w_bits, table.out_bits
        N, G, C, K, T = table.N, table.G, table.C, table.K, table.T
        tiles = cdiv(table.E[None, :], py) * cdiv(table.F[None, :], px)
        runs = N * G * K * tiles  # (image, group, output channel, tile) passes
        compute = runs * (T + py)
        shape = compute.shape
        window = ((py - 1) * table.stride_h + table.R) * ((px - 1) * table.stride_w + table.S)
        sram_i = runs * C * window
        sram_w = runs * T
        I_u, W_u, O_u = table.ifmap[None, :], table.weights[None, :], table.ofmap[None, :]
        cap_in, cap_sb = capacity(col["nbin_kib"], ib), capacity(col["sb_kib"], kb)
        in_a = words(np.where(I_u <= cap_in, I_u, I_u * K), ib, wb) + words(W_u, kb, wb)
        in_b = words(I_u, ib, wb) + words(np.where(W_u <= cap_sb, W_u, W_u * N * tiles), kb, wb)
        order_b = in_b < in_a
        dram_i = np.where(order_b, I_u, np.where(I_u <= cap_in, I_u, I_u * K))
        dram_w = np.where(order_b, np.where(W_u <= cap_sb, W_u, W_u * N * tiles), W_u)
        dram_words = words(dram_i, ib, wb) + words(dram_w, kb, wb) + words(O_u, ob, wb)
        macs = table.dense_macs[None, :]
        forwarded = np.maximum(macs - sram_i, 0)  # inputs a PE takes from a neighbour's FIFO
        traffic = {"dram_ifmap": words(dram_i, ib, wb), "dram_filter": words(dram_w, kb, wb),
                   "dram_ofmap": full(words(O_u, ob, wb), shape), "sram_nbin": words(sram_i, ib, wb),
                   "sram_sb": words(sram_w, kb, wb), "sram_nbout": full(words(2 * O_u, ob, wb), shape),
                   "noc": words(forwarded, ib, wb), "rf": full(words(2 * macs + O_u, ob, wb), shape)}
        energy = energy_levels(tech, table, rf=traffic["rf"], noc=traffic["noc"], dram=dram_words, buffers=(
            (traffic["sram_nbin"], traffic["dram_ifmap"], col["nbin_kib"]),
            (traffic["sram_sb"], traffic["dram_filter"], col["sb_kib"]),
            (traffic["sram_nbout"], np.zeros(shape), col["nbout_kib"]),
        ))
        fp = self.footprint(designs, tech)

        def mapping(d: int, i: int) -> str:
            order = "tiles outer" if order_b[d, i] else "output channels outer"
            return f"{int(tiles[d, i])} tiles of {int(py[d, 0])}x{int(px[d, 0])} outputs per channel, {order}"

        return CostArrays(
            compute=compute.astype(float), mac=full(macs / fp.pes[:, None], shape), fill_drain=full(runs * py, shape),
            sram=sram_i / col["sram_bw"][:, None], dram=dram_words / col["dram_bw"][:, None], energy_pj=energy,
            traffic=traffic, area_mm2=fp.area_mm2, pes=fp.pes, sram_kib=fp.sram_kib, area_parts_mm2=fp.parts,
            mapping=mapping,
        )


TEMPLATES.register("shidiannao", ShiDianNaoTemplate())
