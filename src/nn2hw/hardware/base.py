"""What every hardware template shares: cost records, the template interface and its registry.

A template (FPGA tiled conv, systolic array, NVDLA-, ShiDianNao- or Eyeriss-style dataflow, a
heterogeneous system...) declares its design parameters, its device presets, a resource model
and a cost function vectorized over many designs. It never imports torch: it reads a
``Workload`` and returns frozen records whose totals are folds over layers.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nn2hw.errors import ConfigError
from nn2hw.registry import Registry
from nn2hw.workload import Workload


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer on one design. ``breakdown_cycles`` holds the per-component totals
    (e.g. input/weight/output transfer and compute) that explain ``bottleneck``."""

    name: str
    op: str
    macs: int
    cycles: float
    latency_ms: float
    bottleneck: str
    breakdown_cycles: Mapping[str, float] = field(default_factory=dict)
    energy_mj: float | None = None
    engine: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "macs": self.macs, "cycles": self.cycles,
                "latency_ms": self.latency_ms, "bottleneck": self.bottleneck,
                "breakdown_cycles": dict(self.breakdown_cycles), "energy_mj": self.energy_mj, "engine": self.engine}


@dataclass(frozen=True)
class Uncosted:
    """An operation a template does not cost, and why (never silently dropped)."""

    name: str
    op: str
    reason: str


@dataclass(frozen=True)
class ResourceUse:
    """Use of one resource against its budget, in ``unit``."""

    name: str
    used: float
    available: float
    unit: str = ""

    @property
    def fits(self) -> bool:
        return self.used <= self.available

    @property
    def utilization(self) -> float:
        return self.used / self.available if self.available else float("inf")


@dataclass(frozen=True)
class NetworkCost:
    """Cost of a whole workload on one design: per-layer records, resources and totals."""

    template: str
    device: str
    design: Mapping[str, Any]
    clock_mhz: float
    layers: tuple[LayerCost, ...]
    uncosted: tuple[Uncosted, ...] = ()
    resources: tuple[ResourceUse, ...] = ()
    area_mm2: float | None = None
    notes: tuple[str, ...] = ()
    parallel_engines: bool = False
    """True when the engines run at the same time (several networks on a heterogeneous chip): the
    totals are then the busiest engine's sum, not the sum over all layers."""

    def critical_layers(self) -> tuple[LayerCost, ...]:
        """The layers the totals add up: all of them, or for parallel engines those of the busiest."""
        if not self.parallel_engines or not self.layers:
            return self.layers
        busy = self.engine_latency_ms()
        critical = max(busy, key=busy.__getitem__)
        return tuple(layer for layer in self.layers if layer.engine == critical)

    @property
    def total_cycles(self) -> float:
        return sum(layer.cycles for layer in self.critical_layers())

    @property
    def latency_ms(self) -> float:
        return sum(layer.latency_ms for layer in self.critical_layers())

    def engine_latency_ms(self) -> dict[str, float]:
        """Busy time per engine (sub-accelerator), in ms."""
        busy: dict[str, float] = {}
        for layer in self.layers:
            busy[layer.engine] = busy.get(layer.engine, 0.0) + layer.latency_ms
        return busy

    @property
    def energy_mj(self) -> float | None:
        energies = [layer.energy_mj for layer in self.layers]
        return None if any(e is None for e in energies) else sum(energies)  # type: ignore[misc]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def fits(self) -> bool:
        return all(r.fits for r in self.resources)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form; ``total_cycles``, ``latency_ms``, ``design`` and ``layers`` are stable keys."""
        return {
            "template": self.template,
            "device": self.device,
            "design": jsonable(self.design),
            "clock_mhz": self.clock_mhz,
            "total_cycles": self.total_cycles,
            "latency_ms": self.latency_ms,
            "energy_mj": self.energy_mj,
            "area_mm2": self.area_mm2,
            "macs": self.macs,
            "fits": self.fits,
            "resources": [{"name": r.name, "used": r.used, "available": r.available, "unit": r.unit,
                           "fits": r.fits} for r in self.resources],
            "layers": [layer.to_dict() for layer in self.layers],
            "uncosted": [{"name": u.name, "op": u.op, "reason": u.reason} for u in self.uncosted],
            "notes": list(self.notes),
            "parallel_engines": self.parallel_engines,
        }


def jsonable(value: Any) -> Any:
    """Designs may hold nested dataclasses/tuples; make them JSON values."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    return value if isinstance(value, (int, float, str, bool)) or value is None else json.loads(json.dumps(value))


def design_label(design: Any) -> str:
    """A design in one short line: its ``label`` when it has one (FPGA '70,36,...', a hetero
    chip's subs), else '[v1,v2,...]' of its fields (with '; dw ...' for a depthwise engine)."""
    label = getattr(design, "label", None)
    if isinstance(label, str) and label:
        return label
    if isinstance(design, Mapping):
        main = ",".join(str(v) for k, v in design.items() if k not in ("dw", "word_bits"))
        dw = design.get("dw")
        extra = f"; dw {','.join(str(v) for v in dw.values())}" if dw else ""
        bits = f" ({design['word_bits']}-bit)" if design.get("word_bits", 16) != 16 else ""
        return f"[{main}]{extra}{bits}"
    return str(design)


@dataclass(frozen=True)
class Exploration:
    """Result of a design-space exploration: the best feasible design and the Pareto set."""

    best: NetworkCost
    pareto: tuple[NetworkCost, ...]
    n_designs: int
    n_feasible: int
    seconds: float
    objective: str = "latency_ms"


class HardwareTemplate(ABC):
    """A family of accelerators with a parameter space, device presets and a cost model."""

    name: ClassVar[str]
    description: ClassVar[str]
    bottlenecks: ClassVar[Mapping[str, str]] = {}
    """The labels this template puts on a layer (``LayerCost.bottleneck``) -> what each means."""
    remedies: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Bottleneck label -> the registered transforms that shorten a layer with that bottleneck on
    this template; the co-search offers them."""
    honours_specs: ClassVar[bool] = False
    """True when ``explore(..., specs=Spec(...))`` returns the best design *meeting* latency,
    energy and area specs (raising ``InfeasibleError`` when none does). Without it the objective's
    best is the right choice for any spec (the FPGA template: latency is its only spec)."""

    @abstractmethod
    def devices(self) -> Sequence[str]:
        """Names of the device presets this template knows (boards, technology nodes...)."""

    def split_params(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(design parameters, template options) of ``--hw-param`` pairs; by default all are design
        parameters. Options go to ``cost``/``explore`` as keyword arguments."""
        return dict(params), {}

    @abstractmethod
    def parse_design(self, params: Mapping[str, str]) -> Any:
        """A design from user parameters (``--design``/``--hw-param`` strings), validated."""

    @abstractmethod
    def cost(self, workload: Workload, design: Any, device: str | None = None, **options: Any) -> NetworkCost:
        """Cost of ``workload`` on one design (resources are reported, not enforced)."""

    @abstractmethod
    def explore(self, workload: Workload, device: str | None = None, grid: Any = None,
                **options: Any) -> Exploration:
        """Best feasible design for ``workload`` over a grid (vectorized), plus the Pareto set."""

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """The axes of the default exploration grid for ``workload`` (parameter -> values).

        The co-search offers every axis with several values as a hardware knob ("auto" or one
        value); ``explore(grid={axis: [value]})`` must accept such a restriction. A template
        without a grid offers no knobs.
        """
        return {}


TEMPLATES: Registry[HardwareTemplate] = Registry("hardware template", "nn2hw analyze --help")


def split_hardware(spec: str) -> tuple[str, str | None]:
    """'fpga:zcu102' -> ('fpga', 'zcu102'); 'systolic' -> ('systolic', None)."""
    template, _, device = spec.partition(":")
    if not template:
        raise ConfigError(f"Empty hardware name in {spec!r}.", "Write TEMPLATE[:DEVICE], e.g. fpga:zcu102.")
    return template, device or None


def get_template(spec: str) -> tuple[HardwareTemplate, str | None]:
    """The registered template and device named by a 'TEMPLATE[:DEVICE]' string."""
    import nn2hw.hardware  # noqa: F401  (registers the built-in templates)

    name, device = split_hardware(spec)
    template = TEMPLATES.get(name)
    if device is not None and device not in template.devices():
        from nn2hw.registry import suggest

        raise ConfigError(
            f"Template {name!r} has no device {device!r}.{suggest(device, list(template.devices()))}",
            f"Use one of: {', '.join(template.devices())}.",
        )
    return template, device
