"""NVDLA-style weight-stationary convolution core: ``atomic_k`` output lanes x ``atomic_c`` inputs.

Each cycle the MAC array multiplies one input atom (``atomic_c`` channels of one pixel at one
kernel position) by ``atomic_k`` kernels held in the MAC cells (NVDLA's CMAC), and the
accumulator SRAM (CACC, ``acc_kib``) adds the ``atomic_k`` partial sums into its entries. Per
group, with fold_c = ceil(C/atomic_c) and fold_k = ceil(K/atomic_k):

- compute cycles = groups x fold_k x (fold_c x R x S x P + pipeline), pipeline =
  ceil(log2(atomic_c)) + 3 (multiplier, adder tree, accumulate, write back) per output stripe;
- the accumulator holds a stripe of ``floor(acc / min(atomic_k, K))`` pixels; weights are
  reloaded for every stripe, one atom (``atomic_c`` words) per cycle, into shadow registers
  while the previous weights compute: a step takes max(stripe, atomic_k) cycles, so layers with
  few pixels (FC layers) are bound by weight loading ("sram-bandwidth");
- the convolution buffer (CBUF, ``cbuf_kib``) holds input and weights: the input is fetched
  from DRAM once if it fits beside one weight fold, or the weights fit beside R input rows;
  otherwise once per output-channel fold. Outputs are written once.

Depthwise convolutions leave all but one of the ``atomic_c`` input lanes idle, so this template
refuses them (see shidiannao, systolic or eyeriss, or a hetero chip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nn2hw.hardware.asic.arrays import CostArrays, LayerTable, capacity, cdiv, energy_levels, full, refetch, words
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.asic.template import KIB_MAX, AsicDesign, AsicTemplate, design_columns
from nn2hw.hardware.base import TEMPLATES

REG_WORDS_PER_PE = 2
"""A MAC cell keeps its weight and a shadow weight being loaded."""
PSUM_BITS_FACTOR = 2
"""Accumulator entries are twice the output width (NVDLA accumulates 16-bit products at 32+ bits)."""


@dataclass(frozen=True)
class NvdlaDesign(AsicDesign):
    """``atomic_k`` x ``atomic_c`` MACs, convolution buffer and accumulator (KiB), DRAM bandwidth
    (16-bit words per cycle)."""

    template: ClassVar[str] = "nvdla"
    default_preset: ClassVar[str] = "nv_small"
    atomic_c: int = 8
    atomic_k: int = 8
    cbuf_kib: int = 128
    acc_kib: int = 16
    dram_bw: float = 8.0

    def __post_init__(self) -> None:
        self._check({"atomic_c": 4096, "atomic_k": 4096, "cbuf_kib": KIB_MAX, "acc_kib": KIB_MAX})


class NvdlaTemplate(AsicTemplate):
    name = "nvdla"
    description = "NVDLA-style weight stationary, parallel over output x input channels"
    design_type = NvdlaDesign
    pe_fields, sram_fields, reg_words_per_pe = ("atomic_c", "atomic_k"), ("cbuf_kib", "acc_kib"), REG_WORDS_PER_PE
    shape_fields = ("atomic_k", "atomic_c")
    vector_lanes_field = "atomic_k"
    sub_grid = {"atomic_c": (8, 16, 32), "atomic_k": (8, 16, 32)}
    maps_depthwise = False
    depthwise_alternative = ("NVDLA-style arrays parallelize over the input channels of one group, and a depthwise "
                             "layer has one input channel per group, so all but one of the atomic_c lanes would idle.")
    grid_axes = {"atomic_c": (8, 16, 32, 64), "atomic_k": (8, 16, 32, 64), "cbuf_kib": (64, 128, 256, 512),
                    "acc_kib": (16, 64)}

    def evaluate(self, table: LayerTable, designs: Any, tech: Technology) -> CostArrays:
        col = design_columns(designs, ("atomic_c", "atomic_k", "cbuf_kib", "acc_kib", "dram_bw"))
        ac, ak = col["atomic_c"].astype(np.int64)[:, None], col["atomic_k"].astype(np.int64)[:, None]
        wb = tech.word_bits
        ib, kb, ob = table.in_bits, table.w_bits, table.out_bits
        G, P, C, K, R, S = table.G, table.P, table.C, table.K, table.R, table.S
        fold_c, fold_k = cdiv(C[None, :], ac), cdiv(K[None, :], ak)
        pipeline = np.ceil(np.log2(ac)) + 3
        steps = G * fold_k * fold_c * R * S  # weight blocks per layer (per stripe)
        k_used = np.minimum(ak, K[None, :])
        stripe = np.maximum(np.floor(capacity(col["acc_kib"], PSUM_BITS_FACTOR * ob) / k_used), 1)
        stripes = np.ceil(P / stripe)
        compute = steps * P + G * fold_k * stripes * pipeline
        shape = compute.shape
        load = steps * stripes * ak  # one weight atom per cycle, ak atoms per block
        I_u, W_u, O_u = table.ifmap[None, :], table.weights[None, :], table.ofmap[None, :]
        cap = capacity(col["cbuf_kib"], ib)
        resident = ((I_u + ak * table.T) <= cap) | ((W_u + G * C * R * table.Wp) <= cap)
        dram_i = refetch(I_u, resident, fold_k)
        dram_words = words(dram_i, ib, wb) + words(W_u, kb, wb) + words(O_u, ob, wb)
        w_loaded = W_u * stripes
        sram_i = G * fold_k * P * R * S * C
        psum = 2 * G * P * K * fold_c * R * S  # accumulator read-modify-write per atomic op
        traffic = {"dram_ifmap": words(dram_i, ib, wb), "dram_filter": full(words(W_u, kb, wb), shape),
                   "dram_ofmap": full(words(O_u, ob, wb), shape), "sram_cbuf": words(sram_i + w_loaded, ib, wb),
                   "sram_acc": words(psum, PSUM_BITS_FACTOR * ob, wb), "rf": words(2 * w_loaded, kb, wb)}
        energy = energy_levels(tech, table, rf=traffic["rf"], noc=0.0, dram=dram_words, buffers=(
            (traffic["sram_cbuf"], words(dram_i, ib, wb) + words(W_u, kb, wb), col["cbuf_kib"]),
            (traffic["sram_acc"], np.zeros(shape), col["acc_kib"]),
        ))
        fp = self.footprint(designs, tech)

        def mapping(d: int, i: int) -> str:
            return (f"{int(fold_k[d, i])} k x {int(fold_c[d, i])} c folds, stripes of {int(min(stripe[d, i], P[i]))} "
                    f"pixels" + (f" x {int(G[i])} groups" if G[i] > 1 else ""))

        return CostArrays(
            compute=compute.astype(float), mac=full(table.dense_macs[None, :] / fp.pes[:, None], shape),
            fill_drain=full(G * fold_k * stripes * pipeline, shape), sram=load.astype(float),
            dram=dram_words / col["dram_bw"][:, None], energy_pj=energy, traffic=traffic,
            area_mm2=fp.area_mm2, pes=fp.pes, sram_kib=fp.sram_kib, area_parts_mm2=fp.parts, mapping=mapping,
            valid=np.broadcast_to(np.array([t != "depthwise" for t in table.conv_types]), shape),
        )


TEMPLATES.register("nvdla", NvdlaTemplate())
