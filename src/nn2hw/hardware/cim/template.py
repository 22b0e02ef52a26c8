"""The computing-in-memory crossbar template (``--hardware cim:reram``, ``cim:fefet``, ``cim:pcm``).

A design is a crossbar (``rows`` x ``cols`` cells of ``cell_bits``), its ADCs (``adc_bits``,
``adcs_per_array`` per crossbar, columns multiplexed), input DACs (``dac_bits``), the signed-weight
scheme (``signed``), the chip size in ISAAC-style tiles (``tiles``, 12 IMAs x 8 crossbars each,
with an eDRAM buffer, bus and router) and, for accuracy under variation, the programming variation
``sigma`` (None: the device's). The device preset gives the cell (levels, on/off ratio, variation,
read noise, drift, stuck-at rates, area, write energy); a design may name its own ``device`` (the
co-search's device knob), else it is built with the ``--hardware`` one. ``model`` holds the
vectorized model, ``data`` the tables with their sources.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any, ClassVar, Self

import numpy as np

from nn2hw._checks import as_choice, as_float, as_int
from nn2hw._json import jsonable
from nn2hw.errors import ConfigError, HardwareError, InfeasibleError
from nn2hw.hardware.base import (
    TEMPLATES,
    TRANSFORMER_SPACE_OPTIONS,
    HardwareTemplate,
    Option,
    with_transformer_remedies,
)
from nn2hw.hardware.cim.data import Device, check_on_off, check_sigma, components, devices, get_device
from nn2hw.hardware.cim.model import (
    ARRAY_KINDS,
    BOTTLENECKS,
    ENERGY_PARTS,
    SIGNED,
    CimArrays,
    CimTable,
    evaluate,
    exact_adc_bits,
)
from nn2hw.hardware.records import Execution, Exploration, LayerCost, NetworkCost, ResourceUse, Uncosted
from nn2hw.hardware.select import MAX_PARETO, grid_values, meeting_specs, pick_best, reported_front
from nn2hw.registry import suggest
from nn2hw.spec import METRICS, Spec
from nn2hw.spec import UNITS as SPEC_UNITS
from nn2hw.workload import Layer, OpKind, Workload

DEFAULT_DEVICE = "reram"
OBJECTIVES = ("latency_ms", "energy_mj", "edp", "area_mm2")
ADC_BITS = (1, 16)
KNOB_ADC_BITS = (4, 5, 6, 7, 8, 9, 10)
MAX_SIDE = 4096
BATCH_NORMS = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "batch_norm",
                         "BatchNormalization"})
EXECUTION = {
    OpKind.CONV: Execution.ARRAY, OpKind.LINEAR: Execution.ARRAY, OpKind.ACT: Execution.FUSED,
    OpKind.POOL: Execution.FUSED, OpKind.ELTWISE: Execution.FUSED, OpKind.NORM: Execution.FUSED,
    OpKind.MATMUL: Execution.HOST, OpKind.SOFTMAX: Execution.HOST, OpKind.EMBED: Execution.HOST,
    OpKind.RESHAPE: Execution.LAYOUT, OpKind.CONCAT: Execution.LAYOUT, OpKind.PAD: Execution.LAYOUT,
    OpKind.SLICE: Execution.LAYOUT,
}
REASONS = {
    Execution.FUSED: "in the tile's digital output stage (ISAAC's shift-and-add, max-pool and activation units), "
                     "pipelined with the crossbar reads, or folded into the weights (batch norm): its cycles and "
                     "energy are not modelled",
    Execution.HOST: "left to the host: its operands are activations (a matmul) or it is no matrix-vector product, "
                    "and crossbars hold weights programmed ahead of time",
    Execution.LAYOUT: "data layout only (the next layer's addressing), no compute",
}


def _number(value: Any) -> Any:
    """A number from text ('0.1'), or the value as given (the range checks name it)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value.strip()
    return value


@dataclass(frozen=True)
class CimDesign:
    """One crossbar accelerator: crossbar size, cell bits, ADC/DAC bits, ADCs per crossbar, the
    signed-weight scheme, tiles, the programming variation (None: the device's) and the device its
    cells are made of (None: the one ``--hardware`` names; a costed design always names it)."""

    rows: int = 128
    cols: int = 128
    cell_bits: int = 2
    adc_bits: int = 8
    dac_bits: int = 1
    adcs_per_array: int = 1
    signed: str = "differential"
    tiles: int = 16
    sigma: float | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        for name, high in (("rows", MAX_SIDE), ("cols", MAX_SIDE), ("cell_bits", 16), ("dac_bits", 16),
                           ("tiles", 1 << 20)):
            object.__setattr__(self, name, as_int(getattr(self, name), f"cim {name}", 1, high))
        adc = self.adc_bits
        if isinstance(adc, str) and adc.strip().lstrip("-").isdigit():
            adc = int(adc)
        if isinstance(adc, bool) or not isinstance(adc, int) or not ADC_BITS[0] <= adc <= ADC_BITS[1]:
            raise HardwareError(f"cim adc_bits={adc!r} is outside {ADC_BITS[0]}..{ADC_BITS[1]}: an ADC "
                                "resolves at least one bit, and converters above 16 bits are far too slow and "
                                "large for a crossbar column.", "Give adc_bits between 1 and 16, e.g. adc_bits=8.")
        object.__setattr__(self, "adc_bits", adc)
        object.__setattr__(self, "adcs_per_array", as_int(self.adcs_per_array, "cim adcs_per_array", 1, self.cols))
        object.__setattr__(self, "signed", as_choice(self.signed, "cim signed", SIGNED))
        if self.signed == "offset" and self.cols < 2:
            raise HardwareError("A crossbar of one column cannot hold a weight column and its offset column "
                                "(signed=offset).", "Give cols >= 2, or signed=differential or polarized.")
        if self.sigma is not None:
            object.__setattr__(self, "sigma", check_sigma(_number(self.sigma), "cim design"))
        if self.device is not None:
            get_device(self.device)  # an unknown device fails here, naming the known ones

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            hint = "".join(suggest(u, sorted(known)) for u in unknown)
            raise ConfigError(f"Unknown cim parameter(s) {', '.join(unknown)}.{hint}",
                              f"Use: {', '.join(sorted(known))}.")
        values: dict[str, Any] = {k: (None if v in (None, "", "none", "None") else v) if k in ("sigma", "device")
                                  else v for k, v in params.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check_device(self, device: Device) -> None:
        """A HardwareError when the device's cell cannot hold ``cell_bits``."""
        if self.cell_bits > device.max_cell_bits:
            able = [n for n, d in devices().items() if d.max_cell_bits >= self.cell_bits]
            raise HardwareError(
                f"A {device.name} cell has {device.levels} conductance levels, so it holds at most "
                f"{device.max_cell_bits} bit(s); cell_bits={self.cell_bits} was asked.",
                f"Give cell_bits <= {device.max_cell_bits} (weights are then bit-sliced over more columns), or "
                f"use a device with more levels ({', '.join(able) or 'none has them'}).")

    def built_of(self, default: Device) -> tuple[Self, Device]:
        """This design naming its device (its own, else ``default``), with that device."""
        device = get_device(self.device) if self.device is not None else default
        return (self if self.device == device.name else replace(self, device=device.name)), device

    def effective_sigma(self, device: Device) -> float | None:
        """The programming variation this design runs with: its own, else the device's."""
        return self.sigma if self.sigma is not None else device.sigma


@dataclass(frozen=True)
class CimLayerCost(LayerCost):
    """A layer on a crossbar design: its arrays, rounds (> 1 when reprogrammed), energy per
    component and how it maps."""

    arrays: int = 0
    rounds: int = 1
    energy_breakdown_mj: Mapping[str, float] = field(default_factory=dict)
    mapping: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "arrays": self.arrays, "rounds": self.rounds,
                "energy_breakdown_mj": dict(self.energy_breakdown_mj), "mapping": self.mapping}


@dataclass(frozen=True)
class CimNetworkCost(NetworkCost):
    """A network on one crossbar design: adds the arrays it needs and the chip has, area per
    component and the device model."""

    network_arrays: int = 0
    chip_arrays: int = 0
    area_breakdown_mm2: Mapping[str, float] = field(default_factory=dict)
    device_model: Mapping[str, Any] = field(default_factory=dict)

    def energy_breakdown_mj(self) -> dict[str, float]:
        parts: dict[str, float] = {}
        for layer in self.layers:
            for name, value in getattr(layer, "energy_breakdown_mj", {}).items():
                parts[name] = parts.get(name, 0.0) + value
        return parts

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "arrays": self.network_arrays, "chip_arrays": self.chip_arrays,
                "energy_breakdown_mj": self.energy_breakdown_mj(),
                "area_breakdown_mm2": dict(self.area_breakdown_mm2), "device_model": jsonable(self.device_model)}


def _budget(value: Any) -> int:
    return as_int(value, "max_tiles")


def _spec_option(metric: str) -> Option:
    return Option(metric, lambda v: getattr(Spec.from_mapping({metric: v}), metric),
                  f"{metric.split('_')[0]} spec ({SPEC_UNITS[metric]}): explore picks the best design meeting it")


NOISE_OPTIONS = {"read_noise": "a cell's read noise as a fraction of its range",
                 "stuck_at_off": "the fraction of cells stuck at their lowest conductance",
                 "stuck_at_on": "the fraction of cells stuck at their highest conductance"}
"""Device non-idealities a design may override for accuracy under variation (fractions in 0..1)."""


def _rate(name: str, value: Any) -> float:
    rate = as_float(value, name, 0.0, inclusive=True)
    if not 0.0 <= rate <= 1.0:
        raise HardwareError(f"cim {name}={rate!r} is outside 0..1.", f"Give {name} as a fraction, e.g. {name}=0.01.")
    return rate


def _on_off(value: Any) -> float:
    return check_on_off(as_float(value, "on_off_ratio"), "cim option")


OPTIONS = (
    Option("objective", lambda v: as_choice(v, "objective", OBJECTIVES),
           f"what the exploration minimizes: {', '.join(OBJECTIVES)} (default latency_ms)"),
    Option("max_tiles", _budget, "most tiles (12 IMAs x 8 crossbars, buffer, bus, router each) a design may have"),
    *(_spec_option(metric) for metric in METRICS),
    Option("specs", lambda v: v if isinstance(v, Spec) else Spec.from_mapping(v),
           "the specs as one record (API: specs=Spec(...)); single metrics refine it"),
    Option("on_off_ratio", _on_off,
           "the cell's on/off conductance ratio, overriding the device's (recorded in device_model; for accuracy "
           "under variation the off-state current takes ADC range)"),
    *(Option(name, partial(_rate, name), f"{what}, overriding the device's (0 disables it; for accuracy under "
             "variation, nn2hw evaluate --hardware cim, not cost)") for name, what in NOISE_OPTIONS.items()),
    Option("max_pareto", lambda v: as_int(v, "max_pareto"),
           f"most Pareto designs an exploration reports ({MAX_PARETO})"),
)


class CimTemplate(HardwareTemplate):
    """ReRAM/FeFET/PCM crossbars in ISAAC-style tiles: bit-sliced weights, bit-serial inputs,
    shared ADCs, signed-weight schemes; energy and area from ISAAC's component table."""

    name = "cim"
    description = ("computing-in-memory crossbars (ReRAM/FeFET/PCM) in ISAAC-style tiles: bit slicing, bit-serial "
                   "DACs, shared ADCs, differential/offset/polarized signed weights")
    bottlenecks = BOTTLENECKS
    remedies = with_transformer_remedies({"crossbar": ("quantize", "layer_drop"), "adc": ("quantize", "channel_cut"),
                                          "array-count": ("channel_cut", "quantize"),
                                          "buffer": ("quantize", "channel_cut")})
    """Fewer activation bits mean fewer input cycles (crossbar, ADC); fewer weight bits fewer slices,
    so fewer columns to convert and fewer arrays; fewer channels fewer arrays, columns and bits moved.
    A Transformer's linear layers run on the crossbars too (its attention products on the host): fewer
    heads shrink them as a cut does, and a dropped encoder layer takes its crossbar time with it. A
    crossbar-bound layer's time is its rows times the input cycles, whatever its width, so there only
    fewer bits or a dropped layer help."""
    space_options = {"quantize": ("w8a8", "w6a6", "w4a4"), **TRANSFORMER_SPACE_OPTIONS}
    """Crossbar time is input cycles, so quantization is offered on weights and activations."""
    options = OPTIONS
    metrics = METRICS
    honours_specs = True
    execution = EXECUTION
    variation_knobs = ("device", "rows", "cols", "cell_bits", "adc_bits", "dac_bits")
    """The cell's device and bits set the weight noise; rows, cell and DAC bits the column sum an ADC of
    so many bits must resolve (``exact_adc_bits``)."""
    variation_options = ("on_off_ratio", *NOISE_OPTIONS)
    grid_axes: ClassVar[Mapping[str, Sequence[Any]]] = {
        "rows": (64, 128, 256), "cols": (64, 128, 256), "cell_bits": (1, 2, 4), "adc_bits": (4, 6, 8),
        "dac_bits": (1, 2), "adcs_per_array": (1, 4), "tiles": (4, 16, 64, 256)}

    def devices(self) -> Sequence[str]:
        return tuple(devices())

    def design_fields(self) -> Sequence[str]:
        return tuple(f.name for f in fields(CimDesign))

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        return dict(self.grid_axes)

    def knob_axes(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """The default grid, the devices, and ADCs of 4 to 10 bits: a full column sum of the default
        grid's crossbars needs up to 10 (``exact_adc_bits``), which only accuracy under variation asks
        for, so the exploration (cost alone) leaves them out while the co-search may pin them."""
        return {**self.grid_axes, "adc_bits": KNOB_ADC_BITS, "device": tuple(devices())}

    def device(self, name: str | None) -> Device:
        return get_device(name or DEFAULT_DEVICE)

    # --- ops -----------------------------------------------------------------------------------
    def execution_of(self, layer: Layer, options: Mapping[str, Any]) -> Execution | None:
        if layer.kind is OpKind.NORM and layer.op not in BATCH_NORMS:
            return Execution.HOST
        return super().execution_of(layer, options)

    def execution_reason(self, layer: Layer, mode: Execution | None) -> str:
        return REASONS[mode] if mode in REASONS else super().execution_reason(layer, mode)

    def split_ops(self, workload: Workload) -> tuple[CimTable, tuple[Uncosted, ...]]:
        """The layers the crossbars run, as columns, and every other op with how it runs and why."""
        array, uncosted = [], []
        for layer in workload.layers:
            if layer.kind is OpKind.INPUT:
                continue
            mode = self.execution_of(layer, {})
            if mode is Execution.ARRAY and layer.kind in ARRAY_KINDS:
                array.append(layer)
            else:
                uncosted.append(self.uncosted(layer, mode))
        if not array:
            raise HardwareError("No op of the network runs on the crossbars (no convolution or linear layer).",
                                "Give a network with convolutions or linear layers.")
        return CimTable.from_layers(array), tuple(uncosted)

    # --- designs -------------------------------------------------------------------------------
    def parse_design(self, params: Mapping[str, Any]) -> CimDesign:
        params = dict(params)
        given = params.pop("design", None)
        if isinstance(given, CimDesign):
            return CimDesign(**{**given.to_dict(), **params}) if params else given
        if isinstance(given, Mapping):
            params = {**given, **params}
        elif given is not None:
            raise ConfigError(f"A cim design cannot be built from {type(given).__name__}.",
                              "Give --hw-param KEY=VALUE pairs (rows=128 cols=128 cell_bits=2 ...).")
        return CimDesign.from_params(params)

    def design_from_params(self, params: Mapping[str, Any]) -> CimDesign | None:
        if not params or any(len(grid_values(v)) > 1 for v in params.values()):
            return None
        return CimDesign.from_params({k: grid_values(v)[0] for k, v in params.items()})

    def grid_designs(self, grid: Mapping[str, Any] | None) -> list[CimDesign]:
        """Every design of the default axes overridden by ``grid`` (a value or list per field);
        combinations a design refuses are skipped; an unknown field is an error."""
        known = set(self.design_fields())
        unknown = sorted(set(grid or {}) - known)
        if unknown:
            raise ConfigError(f"Unknown cim grid axis/axes {', '.join(unknown)}.",
                              f"Use design parameters: {', '.join(sorted(known))}.")
        merged = {**self.grid_axes, **{k: grid_values(v) for k, v in (grid or {}).items()}}
        keys = sorted(merged)
        designs, errors = [], []
        for combo in itertools.product(*(merged[k] for k in keys)):
            try:
                designs.append(CimDesign.from_params(dict(zip(keys, combo))))
            except (ConfigError, HardwareError) as exc:
                errors.append(exc)
        if not designs:
            raise errors[0] if errors else ConfigError("The cim grid is empty.", "Give each grid key a value.")
        return designs

    # --- costs ---------------------------------------------------------------------------------
    def cost(self, workload: Workload, design: Any = None, device: str | None = None,
             **options: Any) -> CimNetworkCost:
        """Per-layer latency, arrays and energy, and the chip's area, of one design."""
        options = self.parse_options(options)
        chosen, dev = self.parse_design({"design": design or {}}).built_of(self.device(device))
        chosen.check_device(dev)
        table, uncosted = self.split_ops(workload)
        result = evaluate(table, [chosen], components(), [dev])
        return self._record(table, uncosted, result, 0, chosen, dev, options)

    def explore(self, workload: Workload, device: str | None = None, grid: Any = None,
                **options: Any) -> Exploration:
        """The best design over ``grid`` (vectorized): within ``max_tiles``, meeting the specs,
        minimizing ``objective``; ties go to the first in grid order. Designs whose cells their
        device cannot program are left out."""
        start = time.perf_counter()
        options = self.parse_options(options)
        default = self.device(device)
        designs = [d.built_of(default) for d in (grid if isinstance(grid, list) else self.grid_designs(grid))]
        built = [(d, dev) for d, dev in designs if d.cell_bits <= dev.max_cell_bits]
        if not built:
            designs[0][0].check_device(designs[0][1])
        holdable, devs = [d for d, _ in built], [dev for _, dev in built]
        table, uncosted = self.split_ops(workload)
        result = evaluate(table, holdable, components(), devs)
        scores = self.totals(result)
        tiles = np.array([d.tiles for d in holdable])
        ok = tiles <= options.get("max_tiles", np.inf)
        if not ok.any():
            raise InfeasibleError(f"No cim design of the grid has at most max_tiles={options['max_tiles']} tiles "
                                  f"(the smallest has {tiles.min()}).", "Raise max_tiles or add smaller designs.",
                                  best_bound=float(scores["area_mm2"].min()))
        specs = Spec(**{**options.get("specs", Spec()).limits, **{k: options[k] for k in METRICS if k in options}})
        if specs.limits:
            ok = meeting_specs(specs, scores, ok, "cim design of the grid within max_tiles")
        objective = options.get("objective", "latency_ms")
        best = pick_best([scores[k] for k in (objective, "latency_ms", "energy_mj", "area_mm2")], ok)
        cube = np.stack([scores["latency_ms"], scores["energy_mj"], scores["area_mm2"]], axis=1)
        front = reported_front(cube, ok, best, int(options.get("max_pareto", MAX_PARETO)))

        def record(i: int) -> CimNetworkCost:
            return self._record(table, uncosted, result, i, holdable[i], devs[i], options)

        return Exploration(best=record(best), pareto=tuple(record(i) for i in front), n_designs=len(designs),
                           n_feasible=int(ok.sum()), seconds=time.perf_counter() - start, objective=objective)

    @staticmethod
    def totals(result: CimArrays) -> dict[str, np.ndarray]:
        """Per-design latency (ms), energy (mJ), EDP and area (mm^2), shape (D,)."""
        latency = result.total_ns.sum(axis=1) * 1e-6
        energy = result.energy_total_pj.sum(axis=1) * 1e-9
        return {"latency_ms": latency, "energy_mj": energy, "edp": latency * energy,
                "area_mm2": result.area_total_mm2}

    def _record(self, table: CimTable, uncosted: tuple[Uncosted, ...], result: CimArrays, d: int,
                design: CimDesign, device: Device, options: Mapping[str, Any]) -> CimNetworkCost:
        comp = components()
        labels = np.array(list(BOTTLENECKS))[result.bottleneck_index()[d]]
        layers = []
        for i, name in enumerate(table.names):
            ns = float(result.total_ns[d, i])
            energy = {k: float(result.energy_pj[k][d, i]) * 1e-9 for k in ENERGY_PARTS}
            mapping = (f"{int(result.row_blocks[d, i])} row x {int(result.col_blocks[d, i])} column blocks"
                       + (f" x {int(table.G[i])} groups" if table.G[i] > 1 else "")
                       + (" x 2 (differential)" if design.signed == "differential" else "")
                       + f"; {int(result.slices[d, i])} slices, {int(result.input_cycles[d, i])} input cycles"
                       + (f"; {int(result.rounds[d, i])} programming rounds" if not result.fits[d] else ""))
            layers.append(CimLayerCost(
                name=name, op=table.ops[i], macs=int(table.macs[i]), cycles=ns * comp.clock_mhz * 1e-3,
                latency_ms=ns * 1e-6, bottleneck=str(labels[i]),
                breakdown_cycles={f"{k}_cycles": float(v[d, i]) * comp.clock_mhz * 1e-3
                                  for k, v in result.shares_ns.items()},
                energy_mj=sum(energy.values()), engine=self.name, arrays=int(result.arrays[d, i]),
                rounds=int(result.rounds[d, i]), energy_breakdown_mj=energy, mapping=mapping))
        limit = options.get("max_tiles")
        resources = () if limit is None else (ResourceUse("tiles", design.tiles, limit, "tiles"),)
        area = {k: float(v[d]) for k, v in result.area_mm2.items()}
        model = {**device.to_dict(), "on_off_ratio": options.get("on_off_ratio", device.on_off_ratio),
                 "sigma": design.effective_sigma(device)}
        return CimNetworkCost(
            template=self.name, device=device.name, design=design.to_dict(), clock_mhz=comp.clock_mhz,
            layers=tuple(layers), uncosted=uncosted, resources=resources, area_mm2=sum(area.values()),
            notes=self.notes(design, device, bool(result.fits[d])), network_arrays=int(result.arrays[d].sum()),
            chip_arrays=int(result.chip_arrays[d]), area_breakdown_mm2=area, device_model=model)

    def notes(self, design: CimDesign, device: Device, fits: bool) -> tuple[str, ...]:
        exact = exact_adc_bits(design.rows, design.cell_bits, design.dac_bits)
        notes = ["layers run one after another (no inter-layer pipelining, batch 1); activations cross the tile "
                 "buffer and bus, overlapped with the crossbars; energy and area from ISAAC's 32 nm component "
                 "table (docs/cim.md)"]
        if design.adc_bits < exact:
            notes.append(f"a full column sum needs {exact} ADC bits; with adc_bits={design.adc_bits} a step of the "
                         "ADC spans several sums, which costs accuracy (drawn by nn2hw evaluate --hardware cim)")
        if design.signed == "polarized":
            notes.append("signed=polarized (FORMS) assumes every column fragment holds weights of one sign, which "
                         "the weights must be trained for (the polarize transform; nn2hw evaluate --hardware cim "
                         "checks it)")
        if not fits:
            notes.append("the network's arrays exceed the chip's: every layer is programmed per inference"
                         + ("" if device.write_pj is not None else f"; {device.name} programming energy has no "
                            "source and is not counted"))
        return tuple(notes)


TEMPLATES.register("cim", CimTemplate())
