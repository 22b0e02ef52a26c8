"""Latency of the tiled-convolution template, vectorized over designs x layers.

Per layer (reference notes 2.3; R, C are output rows/columns, P padding, S stride):

    tW    = Tm*Tn*K^2 / wpc          (depthwise: Tm*K^2 / wpc), wpc = floor(Wp*16/q) weights per cycle
    tI    = min(Tn,N) * min(Tr,R) * min(Tc,C) / Ip
    tO    = min(Tm,M) * ceil(min(Tr,R)/S) * ceil(min(Tc,C)/S) / Op
    tComp = kept * ceil(min(Tr,R+2P)/S) * ceil(min(Tc,C+2P)/S)     (kept = K^2, or the pattern's kept weights)
    Lat1  = max(tI, tW, tComp)
    Lat2  = max(ceil(N/Tn) * Lat1, tO)
    Lat   = B * ceil(R/Tr) * ceil(C/Tc) * ceil(M/Tm) * Lat2          [cycles]

Variants reproduce the authors' code history (notes 2.12): ``v0`` pads R, C by 2P everywhere and
drops the min() on Tn/Tm; ``v1`` keeps R = Rout but drops the min() on Tn/Tm; ``fnas`` uses full
tiles with no min and no stride; ``fpga15`` is Zhang FPGA'15's computational roof
ceil(M/Tm)*ceil(N/Tn)*R*C*K^2 (memory assumed hidden, notes section 1). The depthwise engine
uses Tn := Tm (notes 8.3: a depthwise layer pays ceil(M/Tm)^2 tile steps, faithful to the code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nn2hw.errors import ConfigError
from nn2hw.hardware._types import Floats
from nn2hw.hardware.fpga.layers import EngineLayers
from nn2hw.registry import suggest

VARIANTS = ("head", "v0", "v1", "fnas", "fpga15")
PORT_WORD_BITS = 16
"""A fixed-point port word: q-bit operands pack floor(16*P/q) per cycle on a P-word port."""


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ConfigError(f"Unknown latency variant {variant!r}.{suggest(str(variant), list(VARIANTS))}",
                          "Use head (default, HotNAS HEAD), v0 or v1 (earlier HotNAS code, to reproduce "
                          "their files), fnas (full tiles) or fpga15 (Zhang FPGA'15 compute roof).")
    return variant


@dataclass(frozen=True)
class StepTimes:
    """Broadcast (designs x layers) arrays: per-step times, trip counts and the layer latency."""

    t_in: np.ndarray
    t_weight: np.ndarray
    t_out: np.ndarray
    t_comp: np.ndarray
    n_in: np.ndarray
    n_tiles: np.ndarray
    reps: np.ndarray
    cycles: np.ndarray

    def totals(self) -> dict[str, np.ndarray]:
        """Per-component totals (notes 2.3): input/weight/compute over all steps, output per tile,
        times the groups a grouped convolution runs one after another."""
        tiles = self.n_tiles * self.reps
        steps = self.n_in * tiles
        return {"input": self.t_in * steps, "weight": self.t_weight * steps, "output": self.t_out * tiles,
                "compute": self.t_comp * steps}


def _per_cycle(port: Floats, bits: Floats, word_bits: int) -> Floats:
    """Operands moved per cycle by a ``port``-word port: 16-bit words pack floor(16P/q) q-bit values;
    a 32-bit (floating-point) datapath moves one value per word."""
    if word_bits != PORT_WORD_BITS or not np.any(bits != PORT_WORD_BITS):
        return port
    return np.floor(port * PORT_WORD_BITS / bits)


@dataclass(frozen=True)
class TileTerms:
    """The parts of a layer's latency fixed by the tiles (Tm, Tn, Tr, Tc), before the ports divide
    the transfers: words moved per step, compute cycles per step and the trip counts."""

    words_in: np.ndarray
    words_weight: np.ndarray
    words_out: np.ndarray
    t_comp: np.ndarray
    n_in: np.ndarray
    n_tiles: np.ndarray

    def take(self, index: np.ndarray) -> TileTerms:
        """Rows ``index`` of every term (one row per distinct tile choice -> one per design)."""
        return TileTerms(*(np.take(getattr(self, f), index, axis=0) for f in self.__dataclass_fields__))


def tile_terms(lay: EngineLayers, Tm: np.ndarray, Tn: np.ndarray, Tr: np.ndarray, Tc: np.ndarray, *,
               variant: str = "head", depthwise: bool = False) -> TileTerms:
    """Tile-dependent terms of every layer of ``lay``; tile arrays are shaped (U, 1).

    For the depthwise engine pass ``Tn = Tm`` (the template forces it) and ``depthwise=True``.
    """
    ceil, minimum = np.ceil, np.minimum
    B, M, N, R, C, Sh, Sw = lay.B, lay.M, lay.N, lay.R, lay.C, lay.Sh, lay.Sw
    shape = np.broadcast_shapes(Tm.shape, Tr.shape, R.shape)
    n_in = np.broadcast_to(ceil(N / Tn), shape)
    if variant == "fpga15":
        zero = np.zeros(shape)
        t_comp = np.broadcast_to(lay.kept * R * C, shape)
        return TileTerms(zero, zero, zero, t_comp, n_in, np.broadcast_to(B * ceil(M / Tm), shape))
    words_weight = np.broadcast_to((Tm if depthwise else Tm * Tn) * lay.area, shape)
    if variant == "v0":
        R = R + 2 * lay.Ph
        C = C + 2 * lay.Pw
    if variant == "fnas":
        words_in = np.broadcast_to(Tn * Tr * Tc, shape)
        words_out = np.broadcast_to(Tm * Tr * Tc, shape)
        t_comp = lay.kept * Tr * Tc
    else:
        rr, cc = minimum(Tr, R), minimum(Tc, C)
        out_rc = ceil(rr / Sh) * ceil(cc / Sw)
        if variant == "head":
            words_in = minimum(Tn, N) * rr * cc
            words_out = minimum(Tm, M) * out_rc
        else:  # v0, v1: no min() on the channel tiles
            words_in = Tn * rr * cc
            words_out = Tm * out_rc
        if variant == "v0":
            t_comp = lay.kept * out_rc
        else:
            t_comp = lay.kept * ceil(minimum(Tr, R + 2 * lay.Ph) / Sh) * ceil(minimum(Tc, C + 2 * lay.Pw) / Sw)
    n_tiles = B * ceil(R / Tr) * ceil(C / Tc) * ceil(M / Tm)
    return TileTerms(*(np.broadcast_to(a, shape) for a in (words_in, words_weight, words_out, t_comp, n_in,
                                                          n_tiles)))


def finish(terms: TileTerms, lay: EngineLayers, Wp: np.ndarray, Ip: np.ndarray, Op: np.ndarray,
           word_bits: int = 16) -> StepTimes:
    """Divide the transfers by the ports (arrays shaped (D, 1)) and fold Lat1/Lat2/Lat."""
    t_in = terms.words_in / _per_cycle(Ip, lay.ibits, word_bits)
    t_weight = terms.words_weight / _per_cycle(Wp, lay.wbits, word_bits)
    t_out = terms.words_out / _per_cycle(Op, lay.obits, word_bits)
    lat1 = np.maximum(t_in, t_weight)
    np.maximum(lat1, terms.t_comp, out=lat1)
    cycles = terms.n_in * lat1
    np.maximum(cycles, t_out, out=cycles)
    cycles *= terms.n_tiles
    cycles *= lay.reps
    return StepTimes(t_in, t_weight, t_out, terms.t_comp, terms.n_in, terms.n_tiles,
                     np.broadcast_to(lay.reps, cycles.shape), cycles)


def step_times(lay: EngineLayers, Tm: np.ndarray, Tn: np.ndarray, Tr: np.ndarray, Tc: np.ndarray,
               Wp: np.ndarray, Ip: np.ndarray, Op: np.ndarray, *, variant: str = "head",
               depthwise: bool = False, word_bits: int = 16) -> StepTimes:
    """Step times of every layer of ``lay`` on every design; design arrays are shaped (D, 1)."""
    terms = tile_terms(lay, Tm, Tn, Tr, Tc, variant=variant, depthwise=depthwise)
    return finish(terms, lay, Wp, Ip, Op, word_bits)
