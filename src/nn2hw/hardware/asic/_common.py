"""Machinery the ASIC dataflow templates share: layer columns, parameter checks, traffic to
energy, cycle components to bottleneck labels, cost records, and the vectorized exploration.

Every template computes, for D designs and L layers at once, NumPy arrays of shape (D, L):
compute cycles (no memory stalls) split into MAC time, mapping loss and pipeline fill/drain;
the cycles the on-chip buffers and DRAM need at their bandwidth; and word accesses per memory
level. This module turns those arrays into energy, latency with stalls, bottlenecks and the
frozen cost records of ``nn2hw.hardware.base``.
"""

from __future__ import annotations

import itertools
import math
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from nn2hw.errors import ConfigError, HardwareError, InfeasibleError
from nn2hw.hardware.asic.technology import Technology, get_technology, load_technologies, preset_params
from nn2hw.hardware.base import Exploration, HardwareTemplate, LayerCost, NetworkCost, ResourceUse, Uncosted
from nn2hw.workload import Layer, OpKind, Workload

BITS_PER_KIB = 8192
LEVELS = ("mac", "rf", "noc", "sram", "dram")
"""Energy levels, innermost first: MAC, PE registers/scratchpads, inter-PE network, buffers, DRAM."""
OBJECTIVES = ("latency_ms", "energy_mj", "edp", "area_mm2")
BOTTLENECK_MEANINGS = {"compute": "ideal MAC time", "mapping": "PEs left idle by the mapping",
                       "fill-drain": "pipeline fill and drain", "sram-bandwidth": "stalled on buffer bandwidth",
                       "dram": "stalled on DRAM bandwidth"}
"""The ASIC templates' bottleneck vocabulary: the largest share of a layer's cycles."""
BOTTLENECKS = tuple(BOTTLENECK_MEANINGS)


# --- parameter checks ---------------------------------------------------------------------------
def as_int(value: Any, what: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` (int or integer string) as an int in [lo, hi]; a ConfigError naming ``what``,
    the expected type and the range otherwise."""
    span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be an integer {span}, got {value!r}.", f"Give {what} as a whole number.")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{what} must be an integer {span}, got {value!r}.",
                              f"Give {what} as a whole number, e.g. {max(lo, 32) if hi is None else lo}.") from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        raise ConfigError(f"{what} must be an integer {span}, got {value!r}.",
                          f"Give {what} as a whole number in {span}.")
    return int(value)


def as_float(value: Any, what: str, lo: float = 0.0, inclusive: bool = False) -> float:
    """``value`` as a float > lo (>= lo when ``inclusive``); a ConfigError naming ``what`` otherwise."""
    bound = f">= {lo}" if inclusive else f"> {lo}"
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number {bound}, got {value!r}.", f"Give {what} as e.g. 16.") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < lo or (number == lo and not inclusive):
        raise ConfigError(f"{what} must be a number {bound}, got {value!r}.", f"Give {what} as e.g. 16.")
    return number


def as_bool(value: Any, what: str) -> bool:
    """``value`` (bool or true/false/yes/no/1/0) as a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{what} must be true or false, got {value!r}.", f"Write {what}=true or {what}=false.")


def as_choice(value: Any, what: str, options: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in options:
        raise ConfigError(f"{what} must be one of {', '.join(options)}, got {value!r}.",
                          f"Write e.g. {what}={options[0]}.")
    return text


# --- the layer table ----------------------------------------------------------------------------
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
    N: np.ndarray
    G: np.ndarray
    C: np.ndarray
    K: np.ndarray
    E: np.ndarray
    F: np.ndarray
    R: np.ndarray
    S: np.ndarray
    stride_h: np.ndarray
    stride_w: np.ndarray
    H: np.ndarray
    W: np.ndarray
    Hp: np.ndarray
    Wp: np.ndarray
    touched: np.ndarray
    is_linear: np.ndarray
    macs: np.ndarray
    in_bits: np.ndarray
    w_bits: np.ndarray
    out_bits: np.ndarray
    uncosted: tuple[Uncosted, ...] = ()

    @classmethod
    def from_workload(cls, workload: Workload) -> LayerTable:
        return _table(workload)

    @classmethod
    def from_layers(cls, layers: Sequence[Layer], uncosted: Sequence[Uncosted] = ()) -> LayerTable:
        """Columns of ``layers`` (all conv or linear)."""
        def col(fn: Callable[[Layer], int]) -> np.ndarray:
            return np.array([fn(layer) for layer in layers], dtype=np.int64)

        return cls(
            names=tuple(layer.name for layer in layers),
            ops=tuple(layer.op or layer.kind.value for layer in layers),
            conv_types=tuple(layer.conv_type or "linear" for layer in layers),
            N=col(lambda x: x.batch), G=col(lambda x: x.groups),
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
            out_bits=col(lambda x: x.output_bits), uncosted=tuple(uncosted),
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def P(self) -> np.ndarray:
        return self.N * self.E * self.F

    @property
    def T(self) -> np.ndarray:
        return self.C * self.R * self.S

    @property
    def dense_macs(self) -> np.ndarray:
        """MACs the hardware performs: every weight of the dense kernel (patterns are not skipped)."""
        return self.G * self.P * self.K * self.T

    @property
    def ifmap(self) -> np.ndarray:
        """Distinct input words read (padded maps, touched pixels only, all groups)."""
        return self.N * self.G * self.C * self.touched

    @property
    def weights(self) -> np.ndarray:
        return self.G * self.K * self.T

    @property
    def ofmap(self) -> np.ndarray:
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
    if not workload.compute_layers:
        raise HardwareError(f"Workload {workload.name!r} has no conv or linear layer to cost.",
                            "Give a network with at least one convolution or fully connected layer.")
    skipped = [Uncosted(layer.name, layer.op or layer.kind.value,
                        "runs on the vector/pooling unit; the ASIC templates cost conv and linear layers only")
               for layer in workload.layers if not layer.is_compute and layer.kind is not OpKind.INPUT]
    return LayerTable.from_layers(workload.compute_layers, skipped)


def words(elements: np.ndarray, bits: np.ndarray, word_bits: int) -> np.ndarray:
    """Elements of ``bits`` each, in technology words (packed)."""
    return elements * (bits / word_bits)


def capacity(kib: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """How many elements of ``bits`` bits a buffer of ``kib`` KiB holds: (D, 1) x (L,) -> (D, L)."""
    return np.floor(np.asarray(kib, dtype=float)[:, None] * BITS_PER_KIB / bits[None, :])


def refetch(unique: np.ndarray, fits: np.ndarray, sweeps: np.ndarray) -> np.ndarray:
    """DRAM elements of an operand: loaded once if its reuse set fits its buffer, else once per sweep."""
    return np.where(fits, 1.0, sweeps) * unique


def cdiv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -(-a // b)


def full(values: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` broadcast to ``shape`` as a float array (a copy, safe to store)."""
    return np.array(np.broadcast_to(values, shape), dtype=float)


# --- cost arrays --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CostArrays:
    """What a template computes for D designs x L layers.

    ``compute`` = ``mac`` + mapping loss + ``fill_drain`` (cycles, no memory stall); ``sram`` and
    ``dram`` are the cycles the buffers and DRAM need at their bandwidth (overlapped with compute
    by double buffering); ``traffic`` holds word counts per access kind; ``energy_pj`` per level.
    ``mapping`` optionally describes each layer's mapping (tiling, folds) per design.
    """

    compute: np.ndarray
    mac: np.ndarray
    fill_drain: np.ndarray
    sram: np.ndarray
    dram: np.ndarray
    energy_pj: Mapping[str, np.ndarray]
    traffic: Mapping[str, np.ndarray]
    area_mm2: np.ndarray
    pes: np.ndarray
    sram_kib: np.ndarray
    area_parts_mm2: Mapping[str, np.ndarray] = field(default_factory=dict)
    mapping: Callable[[int, int], str] | None = None
    valid: np.ndarray | None = None
    """(D, L) False where the design cannot map the layer (None: every layer maps)."""

    def mappable(self) -> np.ndarray:
        """(D, L) bool: which layers each design can run."""
        return np.ones(self.compute.shape, dtype=bool) if self.valid is None else self.valid

    @property
    def total(self) -> np.ndarray:
        """Cycles with stalls: the slowest of compute, buffer and DRAM time (double-buffered)."""
        return np.maximum(self.compute, np.maximum(self.sram, self.dram))

    @property
    def energy_total_pj(self) -> np.ndarray:
        return sum(self.energy_pj.values())  # type: ignore[return-value]

    def components(self) -> dict[str, np.ndarray]:
        """Cycle shares per bottleneck label; they add up to ``total``."""
        sram_stall = np.maximum(self.sram - self.compute, 0.0)
        dram_stall = np.maximum(self.dram - np.maximum(self.compute, self.sram), 0.0)
        return {"compute": self.mac, "mapping": np.maximum(self.compute - self.fill_drain - self.mac, 0.0),
                "fill-drain": self.fill_drain, "sram-bandwidth": sram_stall, "dram": dram_stall}

    def bottleneck_index(self) -> np.ndarray:
        parts = self.components()
        return np.argmax(np.stack([parts[k] for k in BOTTLENECKS]), axis=0)


def energy_levels(tech: Technology, table: LayerTable, *, rf: np.ndarray, noc: np.ndarray | float,
                  buffers: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  dram: np.ndarray) -> dict[str, np.ndarray]:
    """Energy per level (pJ, shape (D, L)) from word counts.

    ``buffers`` yields (accesses in words, words written from DRAM, buffer KiB per design) for
    each buffer; a word filled from DRAM costs ``tech.sram_fill_pj`` when the table names one and
    a normal access otherwise. MAC energy scales with (input bits x weight bits) / 256.
    """
    mac = (table.dense_macs * (table.in_bits * table.w_bits / 256.0) * tech.mac_pj)[None, :]
    sram = 0.0
    for accesses, fills, kib in buffers:
        per_word = tech.sram_word_pj(kib)[:, None]
        fill_pj = per_word if tech.sram_fill_pj is None else tech.sram_fill_pj
        sram = sram + accesses * per_word + fills * fill_pj
    shape = np.broadcast_shapes(np.shape(dram), mac.shape)
    return {"mac": np.broadcast_to(mac, shape), "rf": np.broadcast_to(rf * tech.rf_pj, shape),
            "noc": np.broadcast_to(noc * tech.noc_pj, shape), "sram": np.broadcast_to(sram, shape),
            "dram": dram * tech.dram_pj}


# --- records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AsicLayerCost(LayerCost):
    """A layer's cost on an ASIC dataflow: ``breakdown_cycles`` holds compute_cycles (no stall),
    mac/mapping/fill-drain shares and stall cycles; energy per level and word accesses too."""

    energy_breakdown_mj: Mapping[str, float] = field(default_factory=dict)
    accesses: Mapping[str, float] = field(default_factory=dict)
    mapping: str = ""

    @property
    def compute_cycles(self) -> float:
        return self.breakdown_cycles.get("compute_cycles", self.cycles)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "compute_cycles": self.compute_cycles,
                "stall_cycles": self.breakdown_cycles.get("stall_cycles", 0.0),
                "energy_breakdown_mj": dict(self.energy_breakdown_mj), "accesses": dict(self.accesses),
                "mapping": self.mapping}


@dataclass(frozen=True)
class AsicNetworkCost(NetworkCost):
    """A workload's cost on one ASIC design; adds compute cycles (no stalls) and energy/area parts."""

    area_breakdown_mm2: Mapping[str, float] = field(default_factory=dict)
    technology: str = ""

    @property
    def compute_cycles(self) -> float:
        return sum(getattr(layer, "compute_cycles", layer.cycles) for layer in self.critical_layers())

    @property
    def stall_cycles(self) -> float:
        return self.total_cycles - self.compute_cycles

    def energy_breakdown_mj(self) -> dict[str, float]:
        parts: dict[str, float] = {}
        for layer in self.layers:
            for level, value in getattr(layer, "energy_breakdown_mj", {}).items():
                parts[level] = parts.get(level, 0.0) + value
        return parts

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update({"compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
                    "energy_breakdown_mj": self.energy_breakdown_mj(),
                    "area_breakdown_mm2": dict(self.area_breakdown_mm2), "technology": self.technology})
        return out


def network_cost(template: str, tech: Technology, design: Mapping[str, Any], table: LayerTable, arrays: CostArrays,
                 d: int, clock_mhz: float, notes: Sequence[str] = (),
                 resources: Sequence[ResourceUse] = ()) -> AsicNetworkCost:
    """The records of design ``d`` of ``arrays``: one ``AsicLayerCost`` per layer plus totals."""
    total = arrays.total[d]
    parts = {k: v[d] for k, v in arrays.components().items()}
    labels = np.array(BOTTLENECKS)[arrays.bottleneck_index()[d]]
    per_cycle_ms = 1.0 / (clock_mhz * 1e3)
    layers = []
    for i, name in enumerate(table.names):
        breakdown = {
            "compute_cycles": float(arrays.compute[d, i]), "mac_cycles": float(parts["compute"][i]),
            "mapping_cycles": float(parts["mapping"][i]), "fill_drain_cycles": float(parts["fill-drain"][i]),
            "sram_stall_cycles": float(parts["sram-bandwidth"][i]), "dram_stall_cycles": float(parts["dram"][i]),
            "stall_cycles": float(total[i] - arrays.compute[d, i]),
            "sram_cycles": float(arrays.sram[d, i]), "dram_cycles": float(arrays.dram[d, i]),
        }
        energy = {level: float(values[d, i]) * 1e-9 for level, values in arrays.energy_pj.items()}
        layers.append(AsicLayerCost(
            name=name, op=table.ops[i], macs=int(table.macs[i]), cycles=float(total[i]),
            latency_ms=float(total[i]) * per_cycle_ms, bottleneck=str(labels[i]), breakdown_cycles=breakdown,
            energy_mj=sum(energy.values()), engine=template, energy_breakdown_mj=energy,
            accesses={k: float(v[d, i]) for k, v in arrays.traffic.items()},
            mapping=arrays.mapping(d, i) if arrays.mapping else "",
        ))
    return AsicNetworkCost(
        template=template, device=tech.name, design=dict(design), clock_mhz=clock_mhz, layers=tuple(layers),
        uncosted=table.uncosted, resources=tuple(resources), area_mm2=float(arrays.area_mm2[d]),
        notes=tuple(notes), area_breakdown_mm2={k: float(v[d]) for k, v in arrays.area_parts_mm2.items()},
        technology=tech.name,
    )


# --- designs and the template base --------------------------------------------------------------
@dataclass(frozen=True)
class Specs:
    """Design specs a chip must meet (None: no spec): latency (ms), energy (mJ), area (mm^2)."""

    latency_ms: float | None = None
    energy_mj: float | None = None
    area_mm2: float | None = None

    def __post_init__(self) -> None:
        for name in ("latency_ms", "energy_mj", "area_mm2"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_float(value, f"{name} spec"))

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj, "area_mm2": self.area_mm2}

    def met(self, latency: np.ndarray, energy: np.ndarray, area: np.ndarray) -> np.ndarray:
        ok = np.ones(np.shape(latency), dtype=bool)
        for value, spec in ((latency, self.latency_ms), (energy, self.energy_mj), (area, self.area_mm2)):
            if spec is not None:
                ok &= value <= spec * (1 + 1e-12)
        return ok


KIB_MAX = 1 << 20
"""The largest buffer a design may declare (KiB): 1 GiB."""


class AsicDesign:
    """Mixin of the frozen design dataclasses: parameters from strings/presets, dict form."""

    template: ClassVar[str]
    default_preset: ClassVar[str] = "default"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Any:
        """A design from ``KEY=VALUE`` parameters, starting from ``preset=`` (or the default preset)."""
        params = dict(params)
        preset = str(params.pop("preset", cls.default_preset))
        base = preset_params(cls.template, preset)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(params) - known)
        if unknown:
            from nn2hw.registry import suggest

            hint = "".join(suggest(u, sorted(known)) for u in unknown)
            raise ConfigError(f"Unknown {cls.template} parameter(s) {', '.join(unknown)}.{hint}",
                              f"Use: {', '.join(sorted(known))} (and preset=).")
        return cls(**{**base, **params})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def _check(self, limits: Mapping[str, int], rates: Sequence[str] = ("dram_bw",)) -> None:
        """Validate and normalize fields in place: integers in 1..limit (PE counts, buffer sizes)
        and positive finite bandwidths (words per cycle); ``ConfigError`` naming the field otherwise."""
        for name, high in limits.items():
            object.__setattr__(self, name, as_int(getattr(self, name), f"{self.template} {name}", 1, high))
        for name in rates:
            object.__setattr__(self, name, as_float(getattr(self, name), f"{self.template} {name} (words/cycle)"))


def design_columns(designs: Sequence[Any], names: Sequence[str], dtype: Any = float) -> dict[str, np.ndarray]:
    """Design fields as arrays of shape (D,), one per name."""
    return {n: np.array([getattr(d, n) for d in designs], dtype=dtype) for n in names}


@dataclass(frozen=True)
class Budgets:
    """Limits a design must meet in ``explore`` (None: unlimited)."""

    max_pes: int | None = None
    max_area_mm2: float | None = None
    max_sram_kib: float | None = None
    max_dram_bw: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def resources(self, pes: float, area: float, sram_kib: float, dram_bw: float) -> tuple[ResourceUse, ...]:
        pairs = (("pes", pes, self.max_pes, "PEs"), ("area", area, self.max_area_mm2, "mm^2"),
                 ("sram", sram_kib, self.max_sram_kib, "KiB"), ("dram_bw", dram_bw, self.max_dram_bw, "words/cycle"))
        return tuple(ResourceUse(n, float(u), float(a), unit) for n, u, a, unit in pairs if a is not None)

    def mask(self, pes: np.ndarray, area: np.ndarray, sram_kib: np.ndarray, dram_bw: np.ndarray) -> np.ndarray:
        ok = np.ones(pes.shape, dtype=bool)
        for used, limit in ((pes, self.max_pes), (area, self.max_area_mm2), (sram_kib, self.max_sram_kib),
                            (dram_bw, self.max_dram_bw)):
            if limit is not None:
                ok &= used <= limit + 1e-9
        return ok


@dataclass(frozen=True, eq=False)
class Footprint:
    """PEs, buffer KiB and area (mm^2, with its parts) of D designs, shape (D,)."""

    pes: np.ndarray
    sram_kib: np.ndarray
    area_mm2: np.ndarray
    parts: Mapping[str, np.ndarray]


class AsicTemplate(HardwareTemplate):
    """A dataflow template: a frozen design type, a vectorized ``evaluate`` and a default grid.

    Area = PEs x (MAC + ``reg_words`` register words) + buffer KiB x the technology's SRAM area,
    with PEs the product of the design's ``pe_fields`` and buffers the sum of its ``sram_fields``.
    """

    bottlenecks = BOTTLENECK_MEANINGS
    remedies = {"compute": ("channel_cut",), "dram": ("quantize", "channel_cut"),
                "sram-bandwidth": ("quantize", "channel_cut")}
    """Arrays run every weight of a dense kernel (patterns are not skipped) and move words of the
    operands' bit widths: fewer channels shorten compute; fewer weight bits and fewer channels
    shorten memory-bound layers. Fill/drain and mapping losses have no compression remedy."""
    honours_specs = True

    design_type: ClassVar[type]
    pe_fields: ClassVar[tuple[str, ...]] = ()
    sram_fields: ClassVar[tuple[str, ...]] = ()
    reg_words_per_pe: ClassVar[int] = 0
    default_technology: ClassVar[str] = "45nm"
    grid_axes: ClassVar[Mapping[str, Sequence[Any]]] = {}
    maps_depthwise: ClassVar[bool] = True
    depthwise_alternative: ClassVar[str] = ""

    def devices(self) -> Sequence[str]:
        """Technology presets (``asic_technology.json``), the template's default first."""
        names = list(load_technologies())
        return tuple([self.default_technology] + [n for n in names if n != self.default_technology])

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """The axes ``explore`` searches by default (any axis may be restricted to one value)."""
        return dict(self.grid_axes)

    def technology(self, device: str | Technology | None) -> Technology:
        return get_technology(self.default_technology if device is None else device)

    def parse_design(self, params: Mapping[str, Any]) -> Any:
        """A design from ``KEY=VALUE`` parameters (``preset=`` first, then overrides). ``design`` may
        be a design of this template, a preset name or a mapping of parameters."""
        params = dict(params)
        given = params.pop("design", None)
        if params.pop("dw_design", None) is not None:
            raise ConfigError(f"The {self.name} template has no separate depthwise engine (--dw-design).",
                              "Drop --dw-design; depthwise layers run on the array itself or use hetero.")
        if isinstance(given, self.design_type):
            return self.design_type(**{**given.to_dict(), **params}) if params else given
        if isinstance(given, str):
            params.setdefault("preset", given)
        elif isinstance(given, Mapping):
            params = {**given, **params}
        elif given is not None:
            raise ConfigError(f"A {self.name} design cannot be built from {type(given).__name__}.",
                              "Give --hw-param KEY=VALUE pairs or a --hardware-file.")
        return self.design_type.from_params(params)

    OPTION_KEYS: ClassVar[tuple[str, ...]] = ("clock_mhz", "objective", "max_pes", "max_area_mm2", "max_sram_kib",
                                              "max_dram_bw")

    def split_params(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(design parameters, options) of ``--hw-param`` pairs; ``max_*`` become ``budgets``."""
        known = {f.name for f in fields(self.design_type)} | {"preset"}
        design = {k: v for k, v in params.items() if k in known}
        options = {k: v for k, v in params.items() if k not in known}
        unknown = sorted(set(options) - set(self.OPTION_KEYS))
        if unknown:
            from nn2hw.registry import suggest

            raise ConfigError(f"Unknown {self.name} parameter {unknown[0]!r}."
                              f"{suggest(unknown[0], sorted(known | set(self.OPTION_KEYS)))}",
                              f"Design parameters: {', '.join(sorted(known))}; options: {', '.join(self.OPTION_KEYS)}.")
        limits = {k: options.pop(k) for k in ("max_pes", "max_area_mm2", "max_sram_kib", "max_dram_bw") if k in options}
        if limits:
            options["budgets"] = Budgets(**{k: as_float(v, k) for k, v in limits.items()})
        return design, options

    def design_from_params(self, params: Mapping[str, Any]) -> Any:
        """The design ``--hw-param`` values describe (one value each), or None to explore: no
        parameter at all, or a list of values (``rows=16,32``) for some axis."""
        if not params or any(len(grid_values(v)) > 1 for v in params.values()):
            return None
        return self.design_type.from_params({k: grid_values(v)[0] for k, v in params.items()})

    def as_design(self, design: Any) -> Any:
        if isinstance(design, self.design_type):
            return design
        if design is None:
            return self.design_type.from_params({})
        if isinstance(design, Mapping):
            return self.design_type.from_params(design)
        raise ConfigError(f"A {self.name} design must be a {self.design_type.__name__} or a mapping of parameters, "
                          f"got {type(design).__name__}.", f"Build it with nn2hw.hardware.get_template('{self.name}')"
                          f"[0].parse_design({{...}}).")

    def reg_words(self, design: Any) -> float:
        """Register/scratchpad words per PE (area)."""
        return float(self.reg_words_per_pe)

    def footprint(self, designs: Sequence[Any], tech: Technology) -> Footprint:
        """PEs, buffer KiB and area of ``designs`` (independent of any workload)."""
        pes = np.array([math.prod(getattr(d, f) for f in self.pe_fields) for d in designs], dtype=float)
        sram = np.array([sum(getattr(d, f) for f in self.sram_fields) for d in designs], dtype=float)
        regs = np.array([self.reg_words(d) for d in designs], dtype=float)
        pe_area, buf_area = tech.area_mm2(pes, regs, 0.0), tech.area_mm2(0.0, 0.0, sram)
        return Footprint(pes, sram, pe_area + buf_area, {"pe_array": pe_area, "sram": buf_area})

    @abstractmethod
    def evaluate(self, table: LayerTable, designs: Sequence[Any], tech: Technology) -> CostArrays:
        """The template's model: per-layer cycles, stalls, accesses and energy of every design."""

    def check_mappable(self, table: LayerTable) -> None:
        """Raise a HardwareError naming the depthwise layers this template cannot map."""
        if self.maps_depthwise:
            return
        bad = [n for n, t in zip(table.names, table.conv_types) if t == "depthwise"]
        if bad:
            shown = ", ".join(repr(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise HardwareError(
                f"The {self.name} template cannot map depthwise convolution(s) {shown}: {self.depthwise_alternative}",
                "Cost this network on the shidiannao, systolic or eyeriss template (they map depthwise layers "
                "group by group), or use hetero to give the depthwise layers their own sub-accelerator.",
            )

    def raise_unmappable(self, table: LayerTable, arrays: CostArrays, design: Any) -> None:
        """A HardwareError naming the first layer ``design`` cannot map (the template says why)."""
        bad = np.flatnonzero(~arrays.mappable()[0])
        if bad.size:
            raise HardwareError(self.unmappable_reason(table, int(bad[0]), design),
                                "Give the design more PEs, scratchpad or buffer space, or use another template.")

    def unmappable_reason(self, table: LayerTable, i: int, design: Any) -> str:
        return f"Layer {table.names[i]!r} cannot be mapped on {self.name} design {design.to_dict()}."

    def dram_bw(self, design: Any) -> float:
        return float(design.dram_bw)

    def notes(self, design: Any) -> tuple[str, ...]:
        return ()

    def cost(self, workload: Workload, design: Any = None, device: str | None = None,
             **options: Any) -> AsicNetworkCost:
        """Per-layer latency (cycles with stalls, compute cycles without), energy per level and area
        of ``workload`` on one design, at ``clock_mhz`` (default: the technology's clock)."""
        tech = self.technology(device)
        design = self.as_design(design)
        table = LayerTable.from_workload(workload)
        self.check_mappable(table)
        arrays = self.evaluate(table, [design], tech)
        self.raise_unmappable(table, arrays, design)
        clock = as_float(options.get("clock_mhz") or tech.clock_mhz, "clock_mhz")
        budgets = options.get("budgets") or Budgets()
        res = budgets.resources(arrays.pes[0], arrays.area_mm2[0], arrays.sram_kib[0], self.dram_bw(design))
        return network_cost(self.name, tech, design.to_dict(), table, arrays, 0, clock, self.notes(design), res)

    def grid_designs(self, grid: Mapping[str, Sequence[Any]] | None, with_defaults: bool = True) -> list[Any]:
        """All designs of the cartesian product of ``grid`` (plus the default axes for missing keys
        when ``with_defaults``); the rest of each design comes from the default preset. Invalid
        combinations are skipped; unknown keys are an error."""
        known = {f.name for f in fields(self.design_type)} | {"preset"}
        unknown = sorted(set(grid or {}) - known)
        if unknown:
            raise ConfigError(f"Unknown {self.name} grid axis/axes {', '.join(unknown)}.",
                              f"Use design parameters: {', '.join(sorted(known))}.")
        merged = {**(self.grid_axes if with_defaults else {}), **{k: grid_values(v) for k, v in (grid or {}).items()}}
        preset = merged.pop("preset", [])
        if len(preset) > 1:
            raise ConfigError(f"Explore one {self.name} preset at a time, got {preset}.", "Give a single preset=.")
        keys = sorted(merged)
        base = self.design_type.from_params({"preset": preset[0]} if preset else {}).to_dict()
        designs, errors = [], []
        for combo in itertools.product(*(merged[k] for k in keys)):
            try:
                designs.append(self.design_type(**{**base, **dict(zip(keys, combo))}))
            except ConfigError as exc:
                errors.append(str(exc))
        if not designs:
            raise ConfigError(f"The {self.name} grid has no valid design: {errors[0] if errors else 'empty grid'}",
                              "Give each grid key a non-empty list of valid values.")
        return designs

    def explore(self, workload: Workload, device: str | None = None, grid: Any = None, **options: Any) -> Exploration:
        """Best design for ``workload`` over ``grid`` (vectorized over all designs) under
        ``budgets`` (a ``Budgets``), minimizing ``objective`` (latency_ms, energy_mj, edp or
        area_mm2); ties go to the first design in grid order. Also returns the Pareto set on
        (latency, energy, area), at most ``max_pareto`` designs."""
        start = time.perf_counter()
        tech = self.technology(device)
        table = LayerTable.from_workload(workload)
        self.check_mappable(table)
        designs = grid if isinstance(grid, list) else self.grid_designs(grid)
        arrays = self.evaluate(table, designs, tech)
        clock = as_float(options.get("clock_mhz") or tech.clock_mhz, "clock_mhz")
        objective = as_choice(options.get("objective", "latency_ms"), "objective", OBJECTIVES)
        budgets: Budgets = options.get("budgets") or Budgets()
        bws = np.array([self.dram_bw(d) for d in designs])
        mappable = arrays.mappable().all(axis=1)
        if not mappable.any():
            self.raise_unmappable(table, arrays, designs[0])
        ok = budgets.mask(arrays.pes, arrays.area_mm2, arrays.sram_kib, bws) & mappable
        if not ok.any():
            m = mappable
            raise InfeasibleError(
                f"No {self.name} design of the grid ({len(designs)} designs, {int(m.sum())} of them able to map every "
                f"layer) meets the budgets: the smallest reachable values are {arrays.pes[m].min():.0f} PEs, "
                f"{arrays.area_mm2[m].min():.3f} mm^2, {arrays.sram_kib[m].min():.0f} KiB of buffers and "
                f"{bws[m].min():g} words/cycle of DRAM bandwidth.",
                "Raise the budgets to at least those values or add smaller designs to the grid.",
                best_bound=float(arrays.area_mm2[m].min()),
            )
        scores = totals(arrays, clock)
        specs: Specs | None = options.get("specs")
        if specs is not None:
            ok = meeting_specs(specs, scores, ok, f"{self.name} design of the grid within the budgets")
        best = pick_best(scores, ok, objective)
        cube = np.stack([scores["latency_ms"], scores["energy_mj"], scores["area_mm2"]], axis=1)
        front = sorted(pareto_front(cube, ok), key=lambda i: (scores["latency_ms"][i], i))
        front = sorted(set(front[: int(options.get("max_pareto", 32))]) | {best},
                       key=lambda i: (scores["latency_ms"][i], i))

        def record(i: int) -> AsicNetworkCost:
            res = budgets.resources(arrays.pes[i], arrays.area_mm2[i], arrays.sram_kib[i], bws[i])
            return network_cost(self.name, tech, designs[i].to_dict(), table, arrays, i, clock,
                                self.notes(designs[i]), res)

        return Exploration(best=record(best), pareto=tuple(record(i) for i in front), n_designs=len(designs),
                           n_feasible=int(ok.sum()), seconds=time.perf_counter() - start, objective=objective)


def meeting_specs(specs: Specs, scores: Mapping[str, np.ndarray], ok: np.ndarray, label: str) -> np.ndarray:
    """The designs of ``ok`` that also meet ``specs``; ``InfeasibleError`` with the best reachable
    values when there are none."""
    meets = ok & specs.met(scores["latency_ms"], scores["energy_mj"], scores["area_mm2"])
    if meets.any():
        return meets
    reach = {k: float(scores[k][ok].min()) for k in ("latency_ms", "energy_mj", "area_mm2")}
    raise InfeasibleError(
        f"No {label} meets the specs ({', '.join(f'{k}={v}' for k, v in specs.to_dict().items() if v is not None)}); "
        f"the best reachable are {reach['latency_ms']:.4g} ms, {reach['energy_mj']:.4g} mJ and "
        f"{reach['area_mm2']:.4g} mm^2 (each on its own design).",
        "Relax the specs to those values, raise the budgets, or widen the design grid.",
        best_bound=reach["latency_ms"])


def pick_best(scores: Mapping[str, np.ndarray], ok: np.ndarray, objective: str) -> int:
    """The feasible design minimizing ``objective``, then latency, energy, area, grid order: a point
    of the Pareto front, deterministic on ties."""
    inf = np.inf
    keys = [np.where(ok, scores[k], inf) for k in (objective, "latency_ms", "energy_mj", "area_mm2")]
    order = np.lexsort((np.arange(ok.size), *reversed(keys)))
    return int(order[0])


def grid_values(value: Any) -> list[Any]:
    """Grid values from a list, a comma-separated string ('16,32') or one value."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def totals(arrays: CostArrays, clock_mhz: float) -> dict[str, np.ndarray]:
    """Per-design totals (D,): latency_ms, energy_mj, edp (mJ x ms), area_mm2, compute cycles."""
    latency = arrays.total.sum(axis=1) / (clock_mhz * 1e3)
    energy = arrays.energy_total_pj.sum(axis=1) * 1e-9
    return {"latency_ms": latency, "energy_mj": energy, "edp": latency * energy, "area_mm2": arrays.area_mm2,
            "cycles": arrays.total.sum(axis=1), "compute_cycles": arrays.compute.sum(axis=1)}


def pareto_front(points: np.ndarray, valid: np.ndarray) -> list[int]:
    """Indices of the valid rows of ``points`` (minimize every column) that no other valid row
    dominates; of identical rows only the first is kept."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return []
    pts = points[idx]
    order = np.lexsort(tuple(pts[:, c] for c in reversed(range(pts.shape[1]))))
    kept = np.empty((0, pts.shape[1]))
    keep = []
    for j in order:  # in lexicographic order a point can only be dominated by one kept before it
        if kept.size and np.any(np.all(kept <= pts[j], axis=1)):
            continue
        kept = np.vstack([kept, pts[j]])
        keep.append(int(idx[j]))
    return sorted(keep)
