"""Auto-NBA's analytical model of one sub-accelerator, vectorized over designs (reference notes §6,
``analytical_model/analytical_prediction.py`` of GATECH-EIC/Auto-NBA).

A layer is ``[N, M, R, K]`` (input channels, output channels, output rows, kernel); a design is
``[comp_mode, Tr_b, Tc_b, Tm_b, Tn_b, tr, tc, tm, tn, q]``. Per inner step (one input-channel tile):

- compute ``T_b = Tr_b*Tc_b*Tm_b*Tn_b*K^2`` divided by ``tm`` (mode 0), ``tm*tn`` (mode 1) or ``tr`` (mode 2);
- IFM load ``ceil(Tn_b*tri*tci / bw) * q/16`` with ``tri = max(tr+K-1, Tr_b)``, ``tci = max(tc+K-1, Tc_b)``,
  ``bw = clamp(tn, 2, 4)`` (``clamp(tri, 2, 4)`` in mode 2);
- weight load ``Tm_b*Tn_b*K*q/16`` (mode 2), else ``ceil(Tm_b*Tn_b*K^2 / clamp(tm, 2, 4)) * q/16``;

and per output tile the OFM write ``(ceil(Tm_b*Tr_b*Tc_b / clamp(u, 2, 4)) + Tr_b*Tc_b*Tm_b/u) * q/16``
(``u = tm``, or ``tr`` in mode 2: write plus buffer clear). Layer latency
``[write + (N/Tn_b)*(max(comp, ifm) + weight)] * (R/Tr_b)*(C/Tc_b)*(M/Tm_b)`` with **fractional** trip
counts. A depthwise layer (``N = 1``, ``Tn_b = tn = 1``) has no input-channel loop:
``(max(comp, ifm) + weight + write) * trips``; its compute is ``Tr_b*Tc_b*Tm_b*K^2`` over ``tm`` (mode 0)
or ``tr`` (rows), its IFM load reads ``Tm_b`` channels at ``clamp(tm, 2, 4)`` words per cycle in either
mode, its weight/write follow the row mode's forms when it runs by rows. (Auto-NBA's code numbers the
depthwise row mode 1; nn2hw keeps 2 = rows for every sub-accelerator.)

Resources per layer: ``DSP = (tm | tm*tn | tr) * q/16``; BRAM in 18 Kb banks (1125 x 16 bits), input
buffers double-buffered, counted as the code does (the weight buffer only in the row mode unless
``weight_bram``). Generalizations the reference is silent on (exact for square maps and kernels):
rows and columns use ``out_h``/``out_w`` and ``kernel_h``/``kernel_w`` (dilated extent for the halo);
the row mode's single ``K`` is a kernel row (``kernel_w``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nn2hw.hardware._types import Floats

BANK_BITS = 1125 * 16
"""One 18 Kb BRAM bank as Auto-NBA counts it (``max_bank_size``)."""
MODES = (0, 1, 2)
"""0: parallel over output channels (tm); 1: over output x input channels (tm*tn); 2: over rows (tr)."""
DW_MODES = (0, 2)
"""A depthwise sub-accelerator has no input-channel loop: by channels or by rows."""
ROWS = 2


@dataclass(frozen=True)
class LayerShape:
    """One layer as the model sees it: ``[N, M, R, K]`` with rows/columns and kernel sides apart.

    ``repeats`` counts identical layers run one after the other (a grouped conv's groups, the batch)."""

    n: float
    m: float
    rows: float
    cols: float
    kh: int
    kw: int
    kh_extent: int
    kw_extent: int
    depthwise: bool
    repeats: int = 1


@dataclass(frozen=True)
class Designs:
    """Designs of one sub-accelerator as columns (one entry per design)."""

    mode: Floats
    Tr: Floats
    Tc: Floats
    Tm: Floats
    Tn: Floats
    tr: Floats
    tc: Floats
    tm: Floats
    tn: Floats
    q: Floats

    def __len__(self) -> int:
        return int(self.mode.size)


@dataclass(frozen=True)
class Components:
    """Per-layer cycle totals of each activity (trip counts applied) and the layer's cycles."""

    compute: Floats
    ifm: Floats
    weight: Floats
    write: Floats
    cycles: Floats


def _clamp(x: Floats) -> Floats:
    """Words per cycle of a port fed by ``x`` parallel lanes: ``max(min(4, x), 2)``."""
    return np.clip(x, 2.0, 4.0)


def layer_components(layer: LayerShape, d: Designs) -> Components:
    """The reference's per-layer latency of ``layer`` on every design of ``d`` (cycles), with the
    total of each activity; ``cycles = max(compute, ifm) + weight + write`` (times ``repeats``)."""
    rows = d.mode == ROWS
    scale = d.q / 16.0
    tri = np.maximum(d.tr + layer.kh_extent - 1, d.Tr)
    tci = np.maximum(d.tc + layer.kw_extent - 1, d.Tc)
    kk = float(layer.kh * layer.kw)
    trips = (layer.rows / d.Tr) * (layer.cols / d.Tc) * (layer.m / d.Tm)
    if layer.depthwise:
        unroll = np.where(rows, d.tr, d.tm)
        comp = d.Tr * d.Tc * d.Tm * kk / unroll
        ifm = np.ceil(d.Tm * tri * tci / _clamp(d.tm)) * scale
        weight = np.where(rows, d.Tm * d.Tn * layer.kw, np.ceil(d.Tm * d.Tn * kk / _clamp(d.tm))) * scale
        steps = np.ones_like(trips)
    else:
        unroll = np.select([d.mode == 0, d.mode == 1], [d.tm, d.tm * d.tn], d.tr)
        comp = d.Tr * d.Tc * d.Tm * d.Tn * kk / unroll
        ifm = np.ceil(d.Tn * tri * tci / _clamp(np.where(rows, tri, d.tn))) * scale
        weight = np.where(rows, d.Tm * d.Tn * layer.kw, np.ceil(d.Tm * d.Tn * kk / _clamp(d.tm))) * scale
        steps = layer.n / d.Tn
    out_unroll = np.where(rows, d.tr, d.tm)
    write = (np.ceil(d.Tm * d.Tr * d.Tc / _clamp(out_unroll)) + d.Tr * d.Tc * d.Tm / out_unroll) * scale
    reps = float(layer.repeats)
    comp_t, ifm_t, weight_t = (x * steps * trips * reps for x in (comp, ifm, weight))
    write_t = write * trips * reps
    return Components(comp_t, ifm_t, weight_t, write_t, np.maximum(comp_t, ifm_t) + weight_t + write_t)


def dsp_use(d: Designs, depthwise: bool) -> Floats:
    """DSPs of each design: ``(tm | tm*tn | tr) * q/16`` (a depthwise one by ``tm`` or ``tr``)."""
    unroll = np.where(d.mode == ROWS, d.tr, d.tm if depthwise else np.where(d.mode == 1, d.tm * d.tn, d.tm))
    return np.asarray(unroll * d.q / 16.0, dtype=float)


def bram_use(layer: LayerShape, d: Designs, weight_bram: bool) -> Floats:
    """18 Kb banks of each design for ``layer`` (the code's ``resource_consumption``): input (double
    buffered) + output (+ weights: always by rows, with ``weight_bram`` otherwise)."""
    rows = d.mode == ROWS
    tri = np.maximum(d.tr + layer.kh_extent - 1, d.Tr)
    tci = np.maximum(d.tc + layer.kw_extent - 1, d.Tc)

    def banks(bits: Floats) -> Floats:
        return np.ceil(bits / BANK_BITS)

    kk = float(layer.kh * layer.kw)
    if layer.depthwise:  # Tn_b = tn = 1: channel tiles split over tm banks
        lanes_in, chan_in, lanes_w = d.tm, d.Tm / d.tm, d.tm
        per_bank_w = kk * (d.Tm / d.tm)
    else:
        lanes_in, chan_in = d.tn, d.Tn / d.tn
        lanes_w = np.where(d.mode == 1, d.tm * d.tn, d.tm)
        per_bank_w = kk * np.where(d.mode == 1, d.Tn / d.tn, d.Tn) * (d.Tm / d.tm)
    by_channels_in = lanes_in * banks(tri * tci * chan_in * d.q) * 2
    by_channels_out = d.tm * banks(d.Tr * d.Tc * (d.Tm / d.tm) * d.q)
    by_channels_w = lanes_w * banks(per_bank_w * d.q)
    by_rows_in = tri * banks(tci * d.Tn * d.q) * 2
    by_rows_out = d.tr * banks(d.Tc * d.Tm * d.q)
    by_rows_w = layer.kh * banks(layer.kw * d.Tm * d.Tn * d.q)
    channels = by_channels_in + by_channels_out + (by_channels_w if weight_bram else 0.0)
    return np.asarray(np.where(rows, by_rows_in + by_rows_out + by_rows_w, channels), dtype=float)
