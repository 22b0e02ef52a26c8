"""A TPU-like systolic array with weight-, output- or input-stationary dataflow (SCALE-Sim's model).

Each conv layer (per group) is the matrix product of its im2col input (P = N*E*F pixels by
T = C*R*S window words) and its filters (T by K). The array of ``rows`` x ``cols`` PEs maps two
of the three GEMM dimensions spatially and streams the third in time:

==== ============ ============ =========== ==========================================
flow rows map     cols map     time (len)  cycles per fold
==== ============ ============ =========== ==========================================
ws   T (window)   K (filters)  P           2*rows + cols + P - 2 (weights loaded, skew)
os   P (pixels)   K (filters)  T           rows + cols + T - 2
is   T (window)   P (pixels)   K           2*rows + cols + K - 2
==== ============ ============ =========== ==========================================

compute cycles = groups x ceil(Sr/rows) x ceil(Sc/cols) x cycles per fold, exactly the
'Total Cycles' of SCALE-Sim v3 plus one (SCALE-Sim reports the 0-based index of the last
cycle). DRAM traffic follows SCALE-Sim's fold order (column folds outer, row folds inner): an
operand whose reuse set fits its SRAM is fetched once, otherwise once per sweep; partial sums
that do not fit the ofmap SRAM spill to DRAM (written and read back per row fold). With double
buffering, a layer takes max(compute, DRAM words / bandwidth) cycles. Energy counts, per
operand, the words moved between DRAM, the three SRAMs and the PE register of the stationary
operand (broadcast of the moving operands along a row/column is one SRAM read), as ZigZag does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nn2hw._checks import as_choice
from nn2hw.hardware._types import Floats, Ints
from nn2hw.hardware.asic.arrays import CostArrays, LayerTable, capacity, cdiv, energy_levels, full, refetch, words
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.asic.template import KIB_MAX, AsicDesign, AsicTemplate, design_columns
from nn2hw.hardware.base import TEMPLATES

DATAFLOWS = ("ws", "os", "is")
REG_WORDS_PER_PE = 3
"""Per-PE registers of a systolic PE: the forwarded input, the weight and the partial sum."""


@dataclass(frozen=True)
class SystolicDesign(AsicDesign):
    """``rows`` x ``cols`` PEs, a dataflow, ifmap/filter/ofmap SRAMs (KiB) and DRAM bandwidth
    (16-bit words per cycle)."""

    template: ClassVar[str] = "systolic"
    rows: int = 32
    cols: int = 32
    dataflow: str = "ws"
    ifmap_kib: int = 64
    filter_kib: int = 64
    ofmap_kib: int = 64
    dram_bw: float = 16.0

    def __post_init__(self) -> None:
        self._check({"rows": 4096, "cols": 4096, "ifmap_kib": KIB_MAX, "filter_kib": KIB_MAX, "ofmap_kib": KIB_MAX})
        object.__setattr__(self, "dataflow", as_choice(self.dataflow, "systolic dataflow", DATAFLOWS))

    @property
    def pes(self) -> int:
        return self.rows * self.cols


def fold_dims(table: LayerTable, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Sr, Sc, temporal length) per design x layer for dataflow codes ``flow`` (0 ws, 1 os, 2 is)."""
    P, T, K = table.P[None, :], table.T[None, :], table.K[None, :]
    f = flow[:, None]
    sr = np.where(f == 1, P, T)
    sc = np.where(f == 2, P, K)
    tl = np.where(f == 0, P, np.where(f == 1, T, K))
    return np.broadcast_arrays(sr, sc, tl)  # type: ignore[return-value]  # numpy types it as a tuple of any length


def compute_cycles(table: LayerTable, rows: np.ndarray, cols: np.ndarray, flow: np.ndarray) -> dict[str, np.ndarray]:
    """Closed-form compute cycles (D, L) and their parts: folds, cycles per fold, fill/drain."""
    sr, sc, tl = fold_dims(table, flow)
    r, c = rows[:, None], cols[:, None]
    fold_r, fold_c = cdiv(sr, r), cdiv(sc, c)
    overhead = np.where(flow[:, None] == 1, r + c - 2, 2 * r + c - 2)
    folds = table.G[None, :] * fold_r * fold_c
    return {"compute": folds * (tl + overhead), "fill_drain": folds * overhead, "fold_r": fold_r,
            "fold_c": fold_c, "folds": folds}


def dram_traffic(table: LayerTable, flow: np.ndarray, rows: np.ndarray, cols: np.ndarray, fold_r: np.ndarray,
                 fold_c: np.ndarray, caps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """DRAM elements of input, filters and outputs (D, L), the partial-sum spill factor, and whether
    the row folds are the outer loop, for the cheaper of the two fold orders.

    Per group, an operand indexed by both fold dimensions is fetched once; one indexed only by the
    inner folds is fetched once if all of it fits its SRAM, else once per outer fold; one indexed
    only by the outer folds is fetched once if one outer fold's share fits, else once per inner
    fold. Partial sums accumulate over the row folds (ws, is): with column folds outer one column
    fold's outputs, with row folds outer all outputs must fit the ofmap SRAM, or they spill to DRAM
    (written and read back per row fold: 2 x row folds - 1 transfers). Column folds outer is
    SCALE-Sim's order and wins ties. Larger SRAMs never add traffic: each order's traffic only
    falls as a buffer grows, and so does their minimum.
    """
    cap_i, cap_w, cap_o = caps
    G = table.G
    sr_cols = np.where(flow[:, None] == 1, table.P, table.T)  # what the rows map: ws/is T, os P
    sc_cols = np.where(flow[:, None] == 2, table.P, table.K)  # what the columns map: ws/os K, is P
    r_frac = np.minimum(rows[:, None], sr_cols) / sr_cols
    c_frac = np.minimum(cols[:, None], sc_cols) / sc_cols
    ig, wg, og = table.ifmap / G, table.weights / G, table.ofmap / G
    f = flow[:, None]

    def once_or(unique: Floats, share: Floats, cap: Floats, sweeps: Floats | Ints) -> Floats:
        return refetch(unique, unique * share <= cap, sweeps)

    def spill_if(share: Floats) -> np.ndarray:
        return np.where(og * share <= cap_o, 1, 2 * fold_r - 1)

    def pick(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return G * np.where(rows_outer, b, a)

    one = np.ones_like(r_frac)
    # column folds outer (A) and row folds outer (B)
    i_a = np.where(f == 2, ig * one, once_or(ig, one, cap_i, fold_c))
    i_b = np.where(f == 2, ig * one, once_or(ig, r_frac, cap_i, fold_c))
    w_a = np.where(f == 0, wg * one,
                   np.where(f == 1, once_or(wg, c_frac, cap_w, fold_r), once_or(wg, one, cap_w, fold_c)))
    w_b = np.where(f == 0, wg * one,
                   np.where(f == 1, once_or(wg, one, cap_w, fold_r), once_or(wg, r_frac, cap_w, fold_c)))
    s_a = np.where(f == 1, 1, spill_if(c_frac))
    s_b = np.where(f == 1, 1, spill_if(one))
    total_a, total_b = i_a + w_a + og * s_a, i_b + w_b + og * s_b
    rows_outer = total_b < total_a
    return pick(i_a, i_b), pick(w_a, w_b), pick(og * s_a, og * s_b), np.where(rows_outer, s_b, s_a), rows_outer


class SystolicTemplate(AsicTemplate):
    name = "systolic"
    description = "TPU-like systolic array, weight/output/input stationary (SCALE-Sim compute model)"
    design_type = SystolicDesign
    pe_fields, sram_fields = ("rows", "cols"), ("ifmap_kib", "filter_kib", "ofmap_kib")
    reg_words_per_pe = REG_WORDS_PER_PE
    sub_grid = {"rows": (8, 16, 32), "cols": (8, 16, 32), "dataflow": ("ws", "os")}
    vector_lanes_field = "cols"
    grid_axes = {"rows": (8, 16, 32, 64, 128), "cols": (8, 16, 32, 64, 128), "dataflow": DATAFLOWS,
                    "ifmap_kib": (32, 128, 512), "filter_kib": (32, 128, 512), "ofmap_kib": (32, 128)}

    def evaluate(self, table: LayerTable, designs: Any, tech: Technology) -> CostArrays:
        col = design_columns(designs, ("rows", "cols", "ifmap_kib", "filter_kib", "ofmap_kib", "dram_bw"))
        rows, cols = col["rows"].astype(np.int64), col["cols"].astype(np.int64)
        flow = np.array([DATAFLOWS.index(d.dataflow) for d in designs])
        cyc = compute_cycles(table, rows, cols, flow)
        fold_r, fold_c = cyc["fold_r"], cyc["fold_c"]
        f = flow[:, None]
        wb = tech.word_bits
        ib, kb, ob = table.in_bits, table.w_bits, table.out_bits
        G, P, T, K = table.G, table.P, table.T, table.K
        W_u, O_u = table.weights[None, :], table.ofmap[None, :]
        cap_i, cap_w = capacity(col["ifmap_kib"], ib), capacity(col["filter_kib"], kb)
        cap_o = capacity(col["ofmap_kib"], ob)
        dram_i, dram_w, dram_o, spill, rows_outer = dram_traffic(table, flow, rows, cols, fold_r, fold_c,
                                                                 (cap_i, cap_w, cap_o))
        dram_words = words(dram_i, ib, wb) + words(dram_w, kb, wb) + words(dram_o, ob, wb)
        # buffer accesses (elements): broadcast reads of the moving operands, psum read-modify-write
        gpt = G * P * T
        sram_i = np.where(f == 2, gpt, gpt * fold_c)
        sram_w = np.where(f == 0, W_u, G * K * T * np.where(f == 1, fold_r, fold_c))
        psum_writes = np.where(f == 1, O_u, O_u * fold_r)
        sram_o = psum_writes + (psum_writes - O_u) + O_u  # writes, read-backs, drain to DRAM
        spill_back = O_u * (spill - 1)  # psums re-read from DRAM into the ofmap SRAM
        macs = table.dense_macs[None, :]
        rf = np.where(f == 0, 2 * W_u, np.where(f == 1, 2 * macs + O_u, 2 * gpt))
        rf_words = np.where(f == 0, words(rf, kb, wb), np.where(f == 1, words(rf, ob, wb), words(rf, ib, wb)))
        traffic = {
            "dram_ifmap": words(dram_i, ib, wb), "dram_filter": words(dram_w, kb, wb),
            "dram_ofmap": words(dram_o, ob, wb), "sram_ifmap": words(sram_i, ib, wb),
            "sram_filter": words(sram_w, kb, wb), "sram_ofmap": words(sram_o, ob, wb), "rf": rf_words,
        }
        energy = energy_levels(tech, table, rf=rf_words, noc=0.0, dram=dram_words, buffers=(
            (traffic["sram_ifmap"], words(dram_i, ib, wb), col["ifmap_kib"]),
            (traffic["sram_filter"], words(dram_w, kb, wb), col["filter_kib"]),
            (traffic["sram_ofmap"], words(spill_back, ob, wb), col["ofmap_kib"]),
        ))
        fp = self.footprint(designs, tech)
        mac_cycles = macs / fp.pes[:, None]

        def mapping(d: int, i: int) -> str:
            return (f"{DATAFLOWS[flow[d]]}: {int(fold_r[d, i])} row x {int(fold_c[d, i])} col folds"
                    + (f" x {int(G[i])} groups" if G[i] > 1 else "")
                    + (", row folds outer" if rows_outer[d, i] else ", column folds outer")
                    + ("; psums spill to DRAM" if spill[d, i] > 1 else ""))

        return CostArrays(
            compute=cyc["compute"].astype(float), mac=full(mac_cycles, cyc["compute"].shape),
            fill_drain=cyc["fill_drain"].astype(float), sram=np.zeros(cyc["compute"].shape),
            dram=dram_words / col["dram_bw"][:, None], energy_pj=energy, traffic=traffic,
            area_mm2=fp.area_mm2, pes=fp.pes, sram_kib=fp.sram_kib, area_parts_mm2=fp.parts, mapping=mapping,
        )

    def notes(self, design: SystolicDesign) -> tuple[str, ...]:
        return ("compute cycles follow SCALE-Sim's closed form (its 'Total Cycles' + 1); DRAM transfers overlap "
                "compute (double buffering); grouped/depthwise convolutions run group after group",)


TEMPLATES.register("systolic", SystolicTemplate())
