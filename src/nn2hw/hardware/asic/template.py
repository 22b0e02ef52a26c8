"""The ASIC dataflow template base: a frozen design type, presets, typed options, a vectorized
``evaluate`` and the exploration every ASIC-style template shares.

A template subclass declares its design dataclass (an ``AsicDesign``), which design fields count
PEs and buffer KiB, its default exploration grid, the grid it contributes as a sub-accelerator of
a heterogeneous chip (``sub_grid``), how its array shape reads (``shape_fields``) and which field
gives its vector unit's lanes (``vector_lanes_field``, by default its last PE field), and
implements ``evaluate``: the model, for D designs and L layers at once.
"""

from __future__ import annotations

import itertools
import math
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import Field, fields
from functools import lru_cache
from typing import Any, ClassVar, Self

import numpy as np

from nn2hw._checks import as_choice, as_float, as_int
from nn2hw.errors import ConfigError, HardwareError, InfeasibleError
from nn2hw.hardware.asic.arrays import (
    BOTTLENECK_MEANINGS,
    CostArrays,
    Footprint,
    LayerTable,
    OpTable,
    VectorTable,
    join_columns,
    totals,
    vector_costs,
)
from nn2hw.hardware.asic.records import AsicNetworkCost, network_cost
from nn2hw.hardware.asic.technology import Technology, get_technology, load_presets, load_technologies, preset_params
from nn2hw.hardware.base import TRANSFORMER_SPACE_OPTIONS, HardwareTemplate, Option, with_transformer_remedies
from nn2hw.hardware.budgets import BUDGET_FIELDS, Budgets
from nn2hw.hardware.records import Execution, Exploration
from nn2hw.hardware.select import MAX_PARETO, grid_values, meeting_specs, pick_best, reported_front
from nn2hw.spec import METRICS, Spec
from nn2hw.spec import UNITS as SPEC_UNITS
from nn2hw.workload import Layer, OpKind, Workload

OBJECTIVES = ("latency_ms", "energy_mj", "edp", "area_mm2")
EXECUTION = {
    OpKind.CONV: Execution.ARRAY, OpKind.LINEAR: Execution.ARRAY, OpKind.MATMUL: Execution.ARRAY,
    OpKind.POOL: Execution.VECTOR, OpKind.ELTWISE: Execution.VECTOR, OpKind.SOFTMAX: Execution.VECTOR,
    OpKind.NORM: Execution.VECTOR, OpKind.EMBED: Execution.VECTOR, OpKind.ACT: Execution.FUSED,
    OpKind.RESHAPE: Execution.LAYOUT, OpKind.CONCAT: Execution.LAYOUT, OpKind.PAD: Execution.LAYOUT,
    OpKind.SLICE: Execution.LAYOUT,
}
"""How the ASIC-style templates run each op kind: MACs on the array, element-wise work on a vector
unit, activations in the array's output stage, layout by addressing; an inference batch norm is
folded into the producer's weights (``execution_of``)."""
REASONS = {
    Execution.FUSED: "applied in the producing layer's output stage, or folded into its weights (batch norm): no "
                     "cycles of its own",
    Execution.LAYOUT: "data layout only (the next layer's addressing), no compute",
}
BATCH_NORMS = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "batch_norm",
                         "BatchNormalization"})
KIB_MAX = 1 << 20
"""The largest buffer a design may declare (KiB): 1 GiB."""


class AsicDesign:
    """Mixin of the frozen design dataclasses: parameters from strings/presets, dict form."""

    template: ClassVar[str]
    default_preset: ClassVar[str] = "default"
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # set by @dataclass on each design class

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """A design from ``KEY=VALUE`` parameters, starting from ``preset=`` (or the default preset)."""
        params = dict(params)
        preset = str(params.pop("preset", cls.default_preset))
        base = preset_params(cls.template, preset)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            from nn2hw.registry import suggest

            hint = "".join(suggest(u, sorted(known)) for u in unknown)
            raise ConfigError(f"Unknown {cls.template} parameter(s) {', '.join(unknown)}.{hint}",
                              f"Use: {', '.join(sorted(known))} (and preset=).")
        return cls(**{**base, **params})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

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


def _budgets(value: Any) -> Budgets:
    if isinstance(value, Budgets):
        return value
    if isinstance(value, Mapping):
        return Budgets.from_mapping(value)
    raise ConfigError(f"budgets must be a Budgets record or a mapping, got {value!r}.",
                      "Pass budgets=Budgets(max_pes=...) or --hw-param max_pes=....")


def _spec(value: Any) -> Spec:
    if isinstance(value, Spec):
        return value
    if isinstance(value, Mapping):
        return Spec.from_mapping(value)
    raise ConfigError(f"specs must be a Spec or a mapping, got {value!r}.", "Pass specs=Spec(latency_ms=...).")


def _budget_option(name: str) -> Option:
    """The option setting one budget (checked as ``Budgets`` checks it)."""
    help_text = next(f.metadata["help"] for f in fields(Budgets) if f.name == name)
    return Option(name, lambda v: getattr(Budgets.from_mapping({name: v}), name), help_text)


def _spec_option(metric: str) -> Option:
    """The option setting one spec (checked as ``Spec`` checks it)."""
    return Option(metric, lambda v: getattr(Spec.from_mapping({metric: v}), metric),
                  f"{metric.split('_')[0]} spec ({SPEC_UNITS[metric]}): explore picks the best design meeting it")


COMMON_OPTIONS = (
    Option("clock_mhz", lambda v: as_float(v, "clock_mhz"), "clock in MHz (default: the technology's)"),
    Option("objective", lambda v: as_choice(v, "objective", OBJECTIVES),
           f"what the exploration minimizes: {', '.join(OBJECTIVES)} (default latency_ms)"),
    *(_budget_option(name) for name in BUDGET_FIELDS),
    *(_spec_option(metric) for metric in METRICS),
    Option("budgets", _budgets, "the budgets as one record (API: budgets=Budgets(...))"),
    Option("specs", _spec, "the specs as one record (API: specs=Spec(...))"),
    Option("max_pareto", lambda v: as_int(v, "max_pareto"),
           f"most Pareto designs an exploration reports ({MAX_PARETO})"),
)
"""The options every ASIC-style template takes (budgets and specs fold into ``budgets``/``specs``)."""


def fold_limits(options: dict[str, Any]) -> dict[str, Any]:
    """Options with ``max_*`` folded into ``budgets`` and ``latency_ms``/``energy_mj``/``area_mm2``
    into ``specs`` (records given whole are kept; single values refine them)."""
    limits = {k: options.pop(k) for k in BUDGET_FIELDS if k in options}
    if limits:
        base = options.get("budgets") or Budgets()
        options["budgets"] = Budgets(**{**base.to_dict(), **limits})
    specs = {k: options.pop(k) for k in METRICS if k in options}
    if specs:
        base_spec = options.get("specs") or Spec()
        options["specs"] = Spec(**{**base_spec.limits, **specs})
    return options


class AsicOps(HardwareTemplate):
    """What ASIC-style hardware shares, the array templates and the heterogeneous chips built of
    them: how it runs each op kind (``EXECUTION``; an inference batch norm is folded into its
    producer), its bottleneck vocabulary and remedies, the metrics it models (all honoured as
    specs) and its options (``COMMON_OPTIONS``, budgets and specs folded into their records)."""

    execution = EXECUTION
    bottlenecks = BOTTLENECK_MEANINGS
    remedies = with_transformer_remedies({"compute": ("channel_cut",), "dram": ("quantize", "channel_cut"),
                                          "sram-bandwidth": ("quantize", "channel_cut")})
    """Arrays run every weight of a dense kernel (patterns are not skipped) and move words of the
    operands' bit widths: fewer channels shorten compute; fewer weight bits and fewer channels
    shorten memory-bound layers; in a Transformer, fewer heads and fewer layers shorten both. Fill/drain
    and mapping losses have no compression remedy."""
    space_options = TRANSFORMER_SPACE_OPTIONS
    options = COMMON_OPTIONS
    metrics = METRICS
    honours_specs = True

    def parse_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return fold_limits(super().parse_options(options))

    def execution_of(self, layer: Layer, options: Mapping[str, Any]) -> Execution | None:
        if layer.kind is OpKind.NORM and layer.op in BATCH_NORMS:
            return Execution.FUSED
        return super().execution_of(layer, options)

    def execution_reason(self, layer: Layer, mode: Execution | None) -> str:
        return REASONS[mode] if mode in REASONS else super().execution_reason(layer, mode)


class AsicTemplate(AsicOps):
    """A dataflow template: a frozen design type, presets, a vectorized ``evaluate`` and a default grid.

    Area = PEs x (MAC + ``reg_words`` register words) + buffer KiB x the technology's SRAM area,
    with PEs the product of the design's ``pe_fields`` and buffers the sum of its ``sram_fields``.
    As a sub-accelerator of a heterogeneous chip it contributes the designs of ``sub_grid`` (its
    ``grid_axes`` when empty) and reads as its ``shape_fields`` ('nvdla 16x16').
    """

    design_type: ClassVar[type[AsicDesign]]
    pe_fields: ClassVar[tuple[str, ...]] = ()
    sram_fields: ClassVar[tuple[str, ...]] = ()
    reg_words_per_pe: ClassVar[int] = 0
    default_technology: ClassVar[str] = "45nm"
    grid_axes: ClassVar[Mapping[str, Sequence[Any]]] = {}
    sub_grid: ClassVar[Mapping[str, Sequence[Any]]] = {}
    shape_fields: ClassVar[tuple[str, ...]] = ()
    maps_depthwise: ClassVar[bool] = True
    depthwise_alternative: ClassVar[str] = ""
    vector_lanes_field: ClassVar[str] = ""
    """The design field whose value is the vector unit's lanes ([A]: one lane per array column);
    empty: the last of ``pe_fields`` (the array's columns on every built-in template)."""

    def devices(self) -> Sequence[str]:
        """Technology presets (``asic_technology.json``), the template's default first."""
        names = list(load_technologies())
        return tuple([self.default_technology] + [n for n in names if n != self.default_technology])

    def presets(self) -> Sequence[str]:
        return tuple(load_presets().get(self.design_type.template, {}))

    def design_fields(self) -> Sequence[str]:
        return (*(f.name for f in fields(self.design_type)), "preset")

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """The axes ``explore`` searches by default (any axis may be restricted to one value)."""
        return dict(self.grid_axes)

    def sub_designs(self) -> Mapping[str, Sequence[Any]]:
        """The grid of sub-accelerator designs a heterogeneous chip search tries of this template."""
        return dict(self.sub_grid or self.grid_axes)

    def shape_label(self, design: Any) -> str:
        """The design's array in a few words, e.g. 'systolic 32x16 ws' or 'nvdla 16x16'."""
        return f"{self.name} " + "x".join(str(getattr(design, f)) for f in self.shape_fields or self.pe_fields)

    def technology(self, device: str | Technology | None) -> Technology:
        return get_technology(self.default_technology if device is None else device)

    # --- ops and their columns ------------------------------------------------------------------
    def array_layer(self, layer: Layer) -> Layer:
        """The layer as the array runs it (a template that runs other ops on its array maps them here)."""
        return layer

    def vector_lanes(self, design: Any) -> float:
        """The lanes of the vector unit that runs pools, adds, norms and softmaxes (see ``vector_lanes_field``)."""
        name = self.vector_lanes_field or (self.pe_fields[-1] if self.pe_fields else "")
        if not hasattr(design, name):
            raise HardwareError(
                f"The {self.name} template's vector unit has no lanes: vector_lanes_field={self.vector_lanes_field!r} "
                f"and pe_fields={self.pe_fields!r} name no field of its design {type(design).__name__}.",
                "Declare vector_lanes_field (or pe_fields) as design fields in the template class, or override "
                "vector_lanes().")
        return float(getattr(design, name))

    def op_table(self, layers: Sequence[Layer]) -> OpTable:
        """The columns of ``layers`` (a workload's, in order) this template costs, and the rest explained."""
        return _op_table(self, tuple(layers))


    def arrays(self, table: OpTable, designs: Sequence[Any], tech: Technology) -> CostArrays:
        """Every column of ``table`` on every design: the array layers by ``evaluate``, the vector ops
        on the vector unit."""
        footprint = self.footprint(designs, tech)
        parts = []
        if len(table.array):
            parts.append((self.evaluate(table.array, designs, tech), table.array_positions))
        if len(table.vector):
            lanes = np.array([self.vector_lanes(d) for d in designs], dtype=float)
            bws = np.array([self.dram_bw(d) for d in designs], dtype=float)
            parts.append((vector_costs(table.vector, lanes, bws, tech, footprint), table.vector_positions))
        return join_columns(parts, len(table))

    def parse_design(self, params: Mapping[str, Any]) -> Any:
        """A design from ``KEY=VALUE`` parameters (``preset=`` first, then overrides). ``design`` may
        be a design of this template (the parameters then override its fields), a preset name or
        a mapping of parameters."""
        params = dict(params)
        given = params.pop("design", None)
        if params.pop("dw_design", None) is not None:
            raise ConfigError(f"The {self.name} template has no separate depthwise engine (--dw-design).",
                              "Drop --dw-design; depthwise layers run on the array itself or use hetero.")
        if isinstance(given, self.design_type):
            if "preset" in params:
                raise ConfigError(f"Both a {self.name} design and preset={params['preset']!r} were given.",
                                  "Give the preset alone (with overrides), or the design alone.")
            return self.design_type(**{**given.to_dict(), **params}) if params else given
        if isinstance(given, str):
            params.setdefault("preset", given)
        elif isinstance(given, Mapping):
            params = {**given, **params}
        elif given is not None:
            raise ConfigError(f"A {self.name} design cannot be built from {type(given).__name__}.",
                              "Give --hw-param KEY=VALUE pairs or a --hardware-file.")
        return self.design_type.from_params(params)

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

    def check_mappable(self, table: OpTable) -> None:
        """Raise a HardwareError naming the depthwise layers this template cannot map."""
        if self.maps_depthwise:
            return
        bad = [n for n, t in zip(table.array.names, table.array.conv_types) if t == "depthwise"]
        if bad:
            shown = ", ".join(repr(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise HardwareError(
                f"The {self.name} template cannot map depthwise convolution(s) {shown}: {self.depthwise_alternative}",
                "Cost this network on the shidiannao, systolic or eyeriss template (they map depthwise layers "
                "group by group), or use hetero to give the depthwise layers their own sub-accelerator.",
            )

    def raise_unmappable(self, table: OpTable, arrays: CostArrays, design: Any) -> None:
        """A HardwareError naming the first layer ``design`` cannot map (the template says why)."""
        bad = np.flatnonzero(~arrays.mappable()[0])
        if bad.size:
            i = table.array_positions.index(int(bad[0]))
            raise HardwareError(self.unmappable_reason(table.array, i, design),
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
        table = self.op_table(workload.layers)
        self.check_mappable(table)
        arrays = self.arrays(table, [design], tech)
        self.raise_unmappable(table, arrays, design)
        clock = as_float(options.get("clock_mhz") or tech.clock_mhz, "clock_mhz")
        budgets = options.get("budgets") or Budgets()
        res = budgets.resources(arrays.pes[0], arrays.area_mm2[0], arrays.sram_kib[0], self.dram_bw(design))
        return network_cost(self.name, tech, design.to_dict(), table, arrays, 0, clock, self.notes(design), res)

    def grid_designs(self, grid: Mapping[str, Sequence[Any]] | None, with_defaults: bool = True) -> list[Any]:
        """All designs of the cartesian product of ``grid`` (plus the default axes for missing keys
        when ``with_defaults``); the rest of each design comes from the default preset. A
        ``preset`` in ``grid`` is the design searched around: every field it sets is kept unless
        ``grid`` lists values for it (no default axis replaces it). Invalid combinations are
        skipped; unknown keys are an error."""
        known = {f.name for f in fields(self.design_type)} | {"preset"}
        unknown = sorted(set(grid or {}) - known)
        if unknown:
            raise ConfigError(f"Unknown {self.name} grid axis/axes {', '.join(unknown)}.",
                              f"Use design parameters: {', '.join(sorted(known))}.")
        given = {k: grid_values(v) for k, v in (grid or {}).items()}
        preset = given.pop("preset", [])
        if len(preset) > 1:
            raise ConfigError(f"Explore one {self.name} preset at a time, got {preset}.", "Give a single preset=.")
        pinned = set(preset_params(self.name, str(preset[0]))) if preset else set()
        defaults = {k: v for k, v in self.grid_axes.items() if k not in pinned} if with_defaults else {}
        merged = {**defaults, **given}
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
        table = self.op_table(workload.layers)
        self.check_mappable(table)
        designs = grid if isinstance(grid, list) else self.grid_designs(grid)
        arrays = self.arrays(table, designs, tech)
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
        specs: Spec | None = options.get("specs")
        if specs is not None:
            ok = meeting_specs(specs, scores, ok, f"{self.name} design of the grid within the budgets")
        best = pick_best([scores[k] for k in (objective, "latency_ms", "energy_mj", "area_mm2")], ok)
        cube = np.stack([scores["latency_ms"], scores["energy_mj"], scores["area_mm2"]], axis=1)
        front = reported_front(cube, ok, best, int(options.get("max_pareto", MAX_PARETO)))

        def record(i: int) -> AsicNetworkCost:
            res = budgets.resources(arrays.pes[i], arrays.area_mm2[i], arrays.sram_kib[i], bws[i])
            return network_cost(self.name, tech, designs[i].to_dict(), table, arrays, i, clock,
                                self.notes(designs[i]), res)

        return Exploration(best=record(best), pareto=tuple(record(i) for i in front), n_designs=len(designs),
                           n_feasible=int(ok.sum()), seconds=time.perf_counter() - start, objective=objective)


@lru_cache(maxsize=64)
def _op_table(template: AsicTemplate, layers: tuple[Layer, ...]) -> OpTable:
    """``AsicTemplate.op_table``, cached per (template, layers): templates are registered singletons."""
    array: list[Layer] = []
    vector: list[Layer] = []
    costed: list[tuple[Layer, Execution]] = []
    uncosted = []
    for layer in layers:
        if layer.kind is OpKind.INPUT:
            continue
        mode = template.execution_of(layer, {})
        if mode is Execution.ARRAY:
            array.append(template.array_layer(layer))
        elif mode is Execution.VECTOR:
            vector.append(layer)
        else:
            uncosted.append(template.uncosted(layer, mode))
            continue
        costed.append((layer, mode))
    if not costed:
        raise HardwareError(f"No op of the network has cycles on the {template.name} template (all are fused, layout "
                            "or not understood).", "Give a network with convolutions, matmuls or linear layers.")
    position = {layer.name: i for i, (layer, _) in enumerate(costed)}
    return OpTable(names=tuple(layer.name for layer, _ in costed),
                   ops=tuple(layer.op or layer.kind.value for layer, _ in costed),
                   macs=np.array([template.array_layer(layer).macs if mode is Execution.ARRAY else 0
                                  for layer, mode in costed], dtype=np.int64),
                   executions=tuple(mode for _, mode in costed), array=LayerTable.from_layers(array),
                   vector=VectorTable.from_layers(vector),
                   array_positions=tuple(position[layer.name] for layer in array),
                   vector_positions=tuple(position[layer.name] for layer in vector), uncosted=tuple(uncosted))
