"""Design grids and the vectorized design-space exploration of the FPGA template.

A grid is a Cartesian product of parameter ranges enumerated in a fixed loop order; the whole
grid is costed in NumPy at once (designs x distinct layer shapes), every resource limit is
applied as a mask, and the best feasible design is the first minimum in loop order, which is
how the authors' nested loops with a strict ``<`` broke ties (reference notes 2.12).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn2hw._checks import as_int
from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.hardware.fpga.design import DW_KEYS, DesignArrays, unique_rows
from nn2hw.hardware.fpga.devices import FpgaDevice
from nn2hw.hardware.fpga.latency import finish, tile_terms
from nn2hw.hardware.fpga.layers import EngineLayers, LayerPlan
from nn2hw.hardware.fpga.resources import ResourceArrays, dsp_per_mac
from nn2hw.registry import suggest

HOTNAS_TM = tuple(range(10, 250, 30))
HOTNAS_TILES = (32, 64, 256)
HOTNAS_PORTS = tuple(range(2, 21, 4))
HOTNAS_DW_TM = tuple(range(64, 1024, 128))
CCONV_ORDER = ("Tm", "Tc", "Tr", "Wp", "Ip", "Op", "Tn", "Tk")
"""Loop order of Interface/explore_conv_only.py (outermost first); Tn and Tk, derived there, innermost."""
DW_ORDER = ("Wp", "Ip", "Op", "Tm_d", "Tm", "Tc_d", "Tr_d", "Tc", "Tr", "Tn", "Tk", "Tk_d")
"""Loop order of Interface/explore_conv_dconv.py (outermost first)."""
GRID_KEYS = frozenset(DW_ORDER)
REQUIRED_KEYS = ("Tm", "Tr", "Tc", "Wp", "Ip", "Op")
DW_REQUIRED_KEYS = ("Tr_d", "Tc_d")
_EVAL_CHUNK = 16_384
"""Design x layer cells per NumPy pass: small arrays stay in cache and in the allocator's pool
(large temporaries cost a page fault per 4 KiB, which dominated the sweep)."""


@dataclass(frozen=True)
class FpgaGrid:
    """Ranges per parameter. ``Tn`` absent: floor(free DSPs / Tm) as in HotNAS; ``Tk``/``Tk_d``
    absent: the largest kernel each engine runs; ``Tm_d`` present: designs have a depthwise engine."""

    ranges: tuple[tuple[str, tuple[int, ...]], ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        ranges = dict(self.ranges)
        for key in ranges:
            if key not in GRID_KEYS:
                raise ConfigError(f"Unknown grid parameter {key!r}.{suggest(key, sorted(GRID_KEYS))}",
                                  f"Use: {', '.join(sorted(GRID_KEYS))}.")
        required = REQUIRED_KEYS + (DW_REQUIRED_KEYS if "Tm_d" in ranges else ())
        missing = [k for k in required if k not in ranges]
        if missing:
            raise ConfigError(f"Grid '{self.name}' lacks {missing}.",
                              "Give every parameter, or use FpgaGrid.from_ranges to start from the HotNAS grid.")
        object.__setattr__(self, "ranges", tuple((k, _values(k, v)) for k, v in ranges.items()))

    @property
    def as_dict(self) -> dict[str, tuple[int, ...]]:
        return dict(self.ranges)

    @property
    def has_dw(self) -> bool:
        return "Tm_d" in self.as_dict

    @property
    def order(self) -> tuple[str, ...]:
        keys = self.as_dict
        return tuple(k for k in (DW_ORDER if self.has_dw else CCONV_ORDER) if k in keys)

    @property
    def size(self) -> int:
        return int(np.prod([len(v) for v in self.as_dict.values()]))

    @classmethod
    def hotnas(cls, depthwise: bool = False) -> FpgaGrid:
        """The HotNAS DSE grid (notes 2.6): cconv-only (9000 points) or cconv+dconv (8000 points)."""
        if depthwise:
            ranges = {"Tm": HOTNAS_TM, "Tr": (32,), "Tc": (32,), "Wp": HOTNAS_PORTS, "Ip": HOTNAS_PORTS,
                      "Op": HOTNAS_PORTS, "Tm_d": HOTNAS_DW_TM, "Tr_d": (32,), "Tc_d": (32,)}
            return cls(tuple(ranges.items()), "HotNAS cconv+dconv")
        ranges = {"Tm": HOTNAS_TM, "Tr": HOTNAS_TILES, "Tc": HOTNAS_TILES, "Wp": HOTNAS_PORTS, "Ip": HOTNAS_PORTS,
                  "Op": HOTNAS_PORTS}
        return cls(tuple(ranges.items()), "HotNAS cconv-only")

    @classmethod
    def from_ranges(cls, ranges: Mapping[str, Any], depthwise: bool = False, name: str = "custom") -> FpgaGrid:
        """The HotNAS grid with the given parameters replaced. Values may be a number, a list, or
        a 'a,b,c' string (from --hw-param). Giving any ``*_d`` key adds a depthwise engine."""
        unknown = [k for k in ranges if k not in GRID_KEYS]
        if unknown:
            raise ConfigError(f"Unknown grid parameter {unknown[0]!r}.{suggest(unknown[0], sorted(GRID_KEYS))}",
                              f"Use: {', '.join(sorted(GRID_KEYS))}.")
        parsed = {key: _values(key, value) for key, value in ranges.items()}
        base = cls.hotnas(depthwise or any(k in DW_KEYS for k in parsed))
        label = f"{base.name} with {', '.join(parsed)} set" if parsed else base.name
        return cls(tuple({**base.as_dict, **parsed}.items()), label if name == "custom" else name)


def _values(key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        items: Iterable[Any] = [v for v in value.replace(";", ",").split(",") if v.strip()]
    elif isinstance(value, Iterable):
        items = value
    else:
        items = [value]
    values = tuple(as_int(v, f"grid parameter {key}") for v in items)
    if not values:
        raise ConfigError(f"Grid parameter {key} has no values.", f"Give e.g. {key}=32,64.")
    return values


def enumerate_grid(grid: FpgaGrid, device: FpgaDevice, tk: int, tk_d: int, word_bits: int = 16
                   ) -> tuple[DesignArrays, int]:
    """All designs of ``grid`` in its loop order (last key fastest), and how many grid points
    were dropped because the derived Tn was below 1 (no DSP left for the standard engine)."""
    ranges = grid.as_dict
    ranges.setdefault("Tk", (tk,))
    if grid.has_dw:
        ranges.setdefault("Tk_d", (tk_d,))
    order = [k for k in (DW_ORDER if grid.has_dw else CCONV_ORDER) if k in ranges]
    axes = np.meshgrid(*[np.asarray(ranges[k], dtype=float) for k in order], indexing="ij")
    cols = {k: a.ravel() for k, a in zip(order, axes)}
    n = cols["Tm"].size
    zeros = np.zeros(n)
    dTm = cols.get("Tm_d", zeros)
    if "Tn" not in cols:
        budget = device.dsp // dsp_per_mac(word_bits)
        cols["Tn"] = np.floor((budget - dTm) / cols["Tm"])
    keep = cols["Tn"] >= 1
    arrays = DesignArrays(Tm=cols["Tm"], Tn=cols["Tn"], Tr=cols["Tr"], Tc=cols["Tc"], Tk=cols["Tk"],
                          Wp=cols["Wp"], Ip=cols["Ip"], Op=cols["Op"], dTm=dTm, dTr=cols.get("Tr_d", zeros),
                          dTc=cols.get("Tc_d", zeros), dTk=cols.get("Tk_d", zeros), has_dw=grid.has_dw,
                          word_bits=word_bits)
    dropped = int(n - keep.sum())
    return (arrays.take(keep) if dropped else arrays), dropped


def _engine_sum(lay: EngineLayers, counts: np.ndarray, tm: np.ndarray, tn: np.ndarray, tr: np.ndarray,
                tc: np.ndarray, d: DesignArrays, variant: str, depthwise: bool) -> np.ndarray:
    """Sum over ``lay`` (weighted by ``counts``) of the latency on every design.

    The tile-dependent terms are computed once per distinct (Tm, Tn, Tr, Tc) and gathered per
    design; only the port division and the Lat1/Lat2 folds run on the full designs x layers grid,
    in chunks that bound memory."""
    total = np.zeros(len(d))
    if not len(lay):
        return total
    tiles, inverse = unique_rows(tm, tn, tr, tc)
    terms = tile_terms(lay, *(a[:, None] for a in tiles), variant=variant, depthwise=depthwise)
    step = max(1, _EVAL_CHUNK // len(lay))
    for lo in range(0, len(d), step):
        s = slice(lo, lo + step)
        times = finish(terms.take(inverse[s]), lay, d.Wp[s, None], d.Ip[s, None], d.Op[s, None], d.word_bits)
        total[s] = times.cycles @ counts
    return total


def network_cycles(plan: LayerPlan, d: DesignArrays, variant: str) -> np.ndarray:
    """Total cycles of the costed layers of ``plan`` on every design of ``d`` (vectorized)."""
    std, std_counts = plan.std.unique()
    total = _engine_sum(std, std_counts, d.Tm, d.Tn, d.Tr, d.Tc, d, variant, depthwise=False)
    if len(plan.dw):
        dw, dw_counts = plan.dw.unique()
        total = total + _engine_sum(dw, dw_counts, d.dTm, d.dTm, d.dTr, d.dTc, d, variant, depthwise=True)
    return total


def infeasible_error(grid: FpgaGrid, device: FpgaDevice, designs: DesignArrays, res: ResourceArrays,
                     kernel_ratio: np.ndarray, bram: str) -> InfeasibleError:
    """An error naming the limiting resource and the closest design, with how far it is over."""
    names = list(res.names) + ["Tk (largest kernel)"]
    ratios = np.vstack([res.ratios(), kernel_ratio[None, :]])
    worst = ratios.max(axis=0)
    closest = int(np.argmin(worst))
    limit = int(np.argmax(ratios[:, closest]))
    violators = (ratios > 1).sum(axis=1)
    design = designs.design(closest)
    if limit < len(res.names):
        used, avail = float(res.used[limit][closest]), res.available[limit]
        how = (f"needs {used:,.0f} {res.units[limit]} of {avail:,.0f} "
               f"(+{used - avail:,.0f}, +{(used / avail - 1):.1%})")
    else:
        how = f"has Tk={design.Tk}, below the largest kernel ({kernel_ratio[closest] * design.Tk:.0f})"
    counts = "; ".join(f"{n}: {int(c):,} over" for n, c in zip(names, violators) if c)
    return InfeasibleError(
        f"No design of the {len(designs):,}-point grid '{grid.name}' fits {device.name} under the {bram!r} BRAM "
        f"model. {names[limit]} is the limiting resource ({counts}). The closest design, [{design.label}], {how}.",
        "Shrink the grid's tiles (Tr, Tc, Tk) or Tm, use a larger device (--hardware fpga:...), raise a budget "
        "(--hw-param bram18=... / lutram_share=...), or relax the BRAM model (--bram as-run or off) to reproduce "
        "the published designs.",
        best_bound=float(worst[closest]),
    )
