"""Eyeriss-style row-stationary array with the DNN-Chip Predictor's tiling search (reference §7).

For each layer (one group, one image) the template enumerates every tiling M = M0*M1*M2*M3
(output channels), C = C0*C1*C2 (input channels, C3 = 1) and E = E1*E3 (output rows) and keeps
the ones the hardware can hold (DNN-Chip Predictor, predictor_eyeriss_only/predictor.py):

- M0 <= psum_spad; M1*C1*E1*R PEs <= rows*cols; C0*S <= ifmap_spad; M0*C0*S <= filter_spad;
  the global buffer holds C1*C0*((E1-1)*stride+R)*((F-1)*stride+S) input + M2*M1*M0*E1*F psum
  words <= glb words; E1 > 1 except for FC layers. With ``exclusive_limits`` (the
  dnn-chip-predictor preset) every bound but the psum one is strict, as in the predictor;
- compute cycles = M3*M2*M0*C2*C0*E3*F*S (the predictor's latency);
- access counts per level (DRAM, DRAM->buffer, buffer, NoC, RF) follow the predictor's formulas,
  energy = counts x the technology's per-access energies + MACs x the MAC energy;
- among the valid tilings it picks the predictor's choice, the minimum of (E - Emin)/Emax +
  (L - Lmin)/Lmax (first on ties), per design.

The enumeration runs per layer and is vectorized over the candidate tilings and the designs.
Convolutions with a 1x1 output are treated like FC layers (E1 = 1 allowed; the predictor would
find no tiling). Grouped/depthwise layers run group after group (each a C/groups-channel conv),
batches image after image. DRAM transfers overlap compute; a layer takes max(compute, DRAM
words / dram_bw) cycles (the predictor itself has no DRAM stall).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from nn2hw._checks import as_bool
from nn2hw.hardware.asic.arrays import BITS_PER_KIB, CostArrays, LayerTable, energy_levels, full
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.asic.template import KIB_MAX, AsicDesign, AsicTemplate, design_columns
from nn2hw.hardware.base import TEMPLATES
from nn2hw.hardware.records import Execution
from nn2hw.workload import Layer, OpKind


@dataclass(frozen=True)
class EyerissDesign(AsicDesign):
    """A ``rows`` x ``cols`` row-stationary array with per-PE scratchpads (words), a global buffer
    (KiB) and DRAM bandwidth (16-bit words per cycle)."""

    template: ClassVar[str] = "eyeriss"
    default_preset: ClassVar[str] = "dnn-chip-predictor"
    rows: int = 12
    cols: int = 14
    ifmap_spad: int = 12
    filter_spad: int = 192
    psum_spad: int = 16
    glb_kib: int = 128
    dram_bw: float = 4.0
    exclusive_limits: bool = True

    def __post_init__(self) -> None:
        self._check({"rows": 1024, "cols": 1024, "ifmap_spad": 1 << 16, "filter_spad": 1 << 16, "psum_spad": 1 << 16,
                     "glb_kib": KIB_MAX})
        object.__setattr__(self, "exclusive_limits", as_bool(self.exclusive_limits, "eyeriss exclusive_limits"))

    @property
    def spad_words(self) -> int:
        return self.ifmap_spad + self.filter_spad + self.psum_spad


AVERAGE_POOLS = frozenset({"AvgPool1d", "AvgPool2d", "avg_pool1d", "avg_pool2d", "AveragePool"})


def windowed_average(layer: Layer) -> bool:
    """An average pool over a window smaller than its input (not a global pool)."""
    return (layer.kind is OpKind.POOL and layer.op in AVERAGE_POOLS
            and layer.kernel_h * layer.kernel_w < layer.in_h * layer.in_w)


@lru_cache(maxsize=512)
def ordered_factorizations(n: int, k: int) -> np.ndarray:
    """All ordered k-tuples of positive integers whose product is ``n``, shape (count, k)."""
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    rows = []
    for d in (d for d in range(1, n + 1) if n % d == 0):
        rest = ordered_factorizations(n // d, k - 1)
        rows.append(np.concatenate([np.full((len(rest), 1), d, dtype=np.int64), rest], axis=1))
    return np.concatenate(rows, axis=0)


@lru_cache(maxsize=256)
def tilings(M: int, C: int, E: int) -> dict[str, np.ndarray]:
    """Every (M0..M3, C0..C2, E1, E3) tiling of one layer as flat columns."""
    m, c, e = ordered_factorizations(M, 4), ordered_factorizations(C, 3), ordered_factorizations(E, 2)
    im, ic, ie = (grid.ravel() for grid in np.meshgrid(np.arange(len(m)), np.arange(len(c)), np.arange(len(e)),
                                                       indexing="ij"))
    out = {f"M{i}": m[im, i] for i in range(4)}
    out.update({f"C{i}": c[ic, i] for i in range(3)})
    out.update({"E1": e[ie, 0], "E3": e[ie, 1]})
    return out


def layer_candidates(M: int, C: int, E: int, F: int, R: int, S: int, H: int, W: int,
                     stride: int) -> dict[str, np.ndarray]:
    """Latency (cycles), access counts per level (elements) and resource use of every tiling of one
    layer, with the DNN-Chip Predictor's formulas (batch 1, one group, C3 = 1)."""
    t = tilings(M, C, E)
    M0, M1, M2, M3, C0, C1, C2, E1, E3 = (t[k] for k in ("M0", "M1", "M2", "M3", "C0", "C1", "C2", "E1", "E3"))
    n_if, n_w, n_of = H * W * C, R * S * C * M, E * F * M
    e_over_h, f_over_w = E / H, F / W
    dram_if, dram_w, dram_of = M3 * n_if, E3 * n_w, np.full(M0.shape, n_of, dtype=float)
    gb_if = M3 * M2 * n_if
    gb_of = np.maximum(2 * (C2 - 1), 1) * n_of
    noc_if = M3 * M2 * M1 * R * e_over_h * n_if
    noc_w = E3 * E1 * n_w
    noc_of = np.maximum(C2 * (C1 * R - 1), 1) * n_of
    rf_if = noc_if * M0 * S * f_over_w
    rf_w = E3 * E1 * F * n_w
    rf_of = np.maximum(C2 * C1 * R * (C0 * S - 1) * 2, 1) * n_of
    return {
        "latency": (M3 * M2 * M0 * C2 * C0 * E3 * F * S).astype(float),
        "dram_ifmap": dram_if.astype(float), "dram_filter": dram_w.astype(float), "dram_ofmap": dram_of,
        "dram": dram_if + dram_w + dram_of,
        "fill": (dram_if + dram_of).astype(float), "glb": (gb_if + gb_of).astype(float),
        "noc": noc_if + noc_w + noc_of, "rf": rf_if + rf_w + rf_of,
        "pes_used": (M1 * C1 * E1 * R).astype(float), "ifmap_spad": (C0 * S).astype(float),
        "filter_spad": (M0 * C0 * S).astype(float), "psum_spad": M0.astype(float),
        "glb_words": (C1 * C0 * ((E1 - 1) * stride + R) * ((F - 1) * stride + S) + M2 * M1 * M0 * E1 * F).astype(float),
        "E1": E1, "tiling": np.stack([M0, M1, M2, M3, C0, C1, C2, E1, E3], axis=1),
    }


class EyerissTemplate(AsicTemplate):
    name = "eyeriss"
    description = "Eyeriss-style row stationary with the DNN-Chip Predictor tiling search"
    design_type = EyerissDesign
    pe_fields, sram_fields = ("rows", "cols"), ("glb_kib",)
    default_technology = "eyeriss-65nm"
    grid_axes = {"rows": (8, 12, 16), "cols": (8, 14, 16), "glb_kib": (64, 108, 128, 256), "dram_bw": (1, 4, 16)}
    sub_grid = {"rows": (6, 12, 16), "cols": (7, 14, 16), "psum_spad": (16,), "exclusive_limits": (False,)}
    vector_lanes_field = "cols"

    def execution_of(self, layer: Layer, options: Mapping[str, Any]) -> Execution | None:
        """A windowed average pool runs on the PE array like a depthwise convolution of its window
        (the DNN-Chip Predictor's way for NAS-Bench-201's avg_pool_3x3); max and global pools run
        on the vector unit."""
        if windowed_average(layer):
            return Execution.ARRAY
        return super().execution_of(layer, options)

    def array_layer(self, layer: Layer) -> Layer:
        if layer.kind is not OpKind.POOL:
            return layer
        return replace(layer, kind=OpKind.CONV, op=f"{layer.op} (as a depthwise conv)", groups=layer.in_channels,
                       out_channels=layer.in_channels)

    def evaluate(self, table: LayerTable, designs: Any, tech: Technology) -> CostArrays:
        col = design_columns(designs, ("rows", "cols", "ifmap_spad", "filter_spad", "psum_spad", "glb_kib", "dram_bw"))
        strict = np.array([d.exclusive_limits for d in designs], dtype=float)[:, None]
        limits = {"pes_used": col["rows"] * col["cols"], "ifmap_spad": col["ifmap_spad"],
                  "filter_spad": col["filter_spad"], "glb_words": col["glb_kib"] * BITS_PER_KIB / tech.word_bits}
        D, L = len(designs), len(table)
        out = {k: np.zeros((D, L)) for k in ("latency", "dram", "fill", "glb", "noc", "rf", "dram_ifmap", "dram_filter",
                                            "dram_ofmap")}
        chosen = np.zeros((D, L, 9), dtype=np.int64)
        mapped = np.ones((D, L), dtype=bool)
        unit = {"dram": tech.dram_pj, "fill": tech.sram_fill_pj, "noc": tech.noc_pj, "rf": tech.rf_pj}
        glb_pj = tech.sram_word_pj(col["glb_kib"])[:, None]
        for i in range(L):
            cand = layer_candidates(int(table.K[i]), int(table.C[i]), int(table.E[i]), int(table.F[i]), int(table.R[i]),
                                    int(table.S[i]), int(table.H[i]), int(table.W[i]), int(table.stride_h[i]))
            valid = cand["psum_spad"][None, :] <= col["psum_spad"][:, None]
            for key, limit in limits.items():
                valid &= cand[key][None, :] <= limit[:, None] - strict
            if not (table.is_linear[i] or table.E[i] == 1):
                valid &= cand["E1"][None, :] != 1
            fill_pj = glb_pj if unit["fill"] is None else unit["fill"]
            energy = (table.T[i] * table.K[i] * table.E[i] * table.F[i] * tech.mac_pj
                      + cand["dram"][None, :] * unit["dram"]
                      + cand["fill"][None, :] * fill_pj + cand["glb"][None, :] * glb_pj
                      + cand["noc"][None, :] * unit["noc"] + cand["rf"][None, :] * unit["rf"])
            latency = np.broadcast_to(cand["latency"][None, :], energy.shape)
            pick = select(energy, latency, valid)
            mapped[:, i] = pick >= 0
            pick = np.maximum(pick, 0)
            for key in out:
                out[key][:, i] = cand[key][pick]
            chosen[:, i] = cand["tiling"][pick]
        reps = (table.N * table.G)[None, :].astype(float)
        wb = tech.word_bits
        scale = {"in": table.in_bits / wb, "w": table.w_bits / wb, "out": table.out_bits / wb}
        dram_words = reps * (out["dram_ifmap"] * scale["in"] + out["dram_filter"] * scale["w"]
                             + out["dram_ofmap"] * scale["out"])
        traffic = {"dram_ifmap": reps * out["dram_ifmap"] * scale["in"],
                   "dram_filter": reps * out["dram_filter"] * scale["w"],
                   "dram_ofmap": reps * out["dram_ofmap"] * scale["out"], "sram_glb": reps * out["glb"] * scale["in"],
                   "fill": reps * out["fill"] * scale["in"], "noc": reps * out["noc"] * scale["in"],
                   "rf": reps * out["rf"] * scale["in"]}
        energy = energy_levels(tech, table, rf=traffic["rf"], noc=traffic["noc"], dram=dram_words,
                               buffers=((traffic["sram_glb"], traffic["fill"], col["glb_kib"]),))
        compute = reps * out["latency"]
        fp = self.footprint(designs, tech)

        def mapping(d: int, i: int) -> str:
            m0, m1, m2, m3, c0, c1, c2, e1, e3 = chosen[d, i]
            return f"M={m0}*{m1}*{m2}*{m3} C={c0}*{c1}*{c2} E={e1}*{e3}"

        return CostArrays(
            compute=compute, mac=full(table.dense_macs[None, :] / fp.pes[:, None], compute.shape),
            fill_drain=np.zeros(compute.shape), sram=np.zeros(compute.shape), dram=dram_words / col["dram_bw"][:, None],
            energy_pj=energy, traffic=traffic, area_mm2=fp.area_mm2, pes=fp.pes, sram_kib=fp.sram_kib,
            area_parts_mm2=fp.parts, mapping=mapping, valid=mapped,
        )

    def reg_words(self, design: EyerissDesign) -> float:
        return float(design.spad_words)

    def unmappable_reason(self, table: LayerTable, i: int, design: Any) -> str:
        return (f"Layer {table.names[i]!r} (M={table.K[i]}, C={table.C[i]}, E={table.E[i]}, R={table.R[i]}) has no "
                f"row-stationary tiling that fits eyeriss design {design.to_dict()}: more PEs, scratchpad words or "
                f"global buffer (glb_kib) are needed.")


def select(energy: np.ndarray, latency: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per design (row), the index of the DNN-Chip Predictor's pick among the valid candidates:
    the minimum of (E - Emin)/Emax + (L - Lmin)/Lmax, the first on ties; -1 where none is valid."""
    any_valid = valid.any(axis=1)
    inf = np.inf
    e_min = np.where(valid, energy, inf).min(axis=1, keepdims=True)
    e_max = np.where(valid, energy, -inf).max(axis=1, keepdims=True)
    l_min = np.where(valid, latency, inf).min(axis=1, keepdims=True)
    l_max = np.where(valid, latency, -inf).max(axis=1, keepdims=True)
    with np.errstate(all="ignore"):  # rows without a valid candidate give inf/nan, masked below
        metric = (energy - e_min) / e_max + (latency - l_min) / l_max
    metric = np.where(valid, metric, inf)
    return np.where(any_valid, np.argmin(metric, axis=1), -1)


TEMPLATES.register("eyeriss", EyerissTemplate())
