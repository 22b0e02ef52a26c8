"""Cost records every hardware template returns: frozen, units in their names, totals as folds.

A template costs each op of a workload one of a few ways (``Execution``): on its compute array, on a
vector/element-wise unit with its memory traffic, fused into the op that produces its input, left
to the host, as data layout only, or omitted because the published model it reproduces leaves
such ops out (said so, with the reason). Ops with cycles of their own are ``LayerCost`` records; the
others are ``Uncosted`` records that say how they run and why they add nothing. Nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from nn2hw._json import jsonable


class Execution(str, Enum):
    """How a template runs one op."""

    ARRAY = "array"  # on the compute (MAC) array
    VECTOR = "vector"  # on a vector / element-wise unit, with its memory traffic
    FUSED = "fused"  # inside the op that produces its input (output stage, folded weights): no cycles of its own
    HOST = "host"  # left to the host processor: not costed on the accelerator
    LAYOUT = "layout"  # data layout only (addressing): no compute
    OMITTED = "omitted"  # outside the template's published model (a reproduction keeps its authors' scope)


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
    execution: Execution = Execution.ARRAY

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "macs": self.macs, "cycles": self.cycles,
                "latency_ms": self.latency_ms, "bottleneck": self.bottleneck,
                "breakdown_cycles": dict(self.breakdown_cycles), "energy_mj": self.energy_mj, "engine": self.engine,
                "execution": Execution(self.execution).value}


@dataclass(frozen=True)
class Uncosted:
    """An op without cycles of its own on this template: how it runs (fused, host, layout, or not
    understood) and why (never silently dropped)."""

    name: str
    op: str
    reason: str
    execution: Execution | None = None
    """None: the template could not say (an op the extractor did not understand)."""
    within: str = ""
    """The costed record whose time includes this op ('' for none): the runtime kernel it is fused
    into, or a whole-network prediction. Its bottleneck is that record's."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "reason": self.reason,
                "execution": None if self.execution is None else Execution(self.execution).value,
                "within": self.within}


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


class DesignObject(Protocol):
    """A design kept as itself in a cost record (a heterogeneous chip with its assignment)."""

    def to_dict(self) -> dict[str, Any]: ...


def design_dict(design: Mapping[str, Any] | DesignObject) -> dict[str, Any]:
    """A cost record's design as a dict of its fields."""
    return dict(design) if isinstance(design, Mapping) else design.to_dict()


@dataclass(frozen=True)
class NetworkCost:
    """Cost of a whole workload on one design: per-layer records, resources and totals."""

    template: str
    device: str
    design: Mapping[str, Any] | DesignObject
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
        known = [e for e in energies if e is not None]
        return sum(known) if len(known) == len(energies) else None

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
            "uncosted": [u.to_dict() for u in self.uncosted],
            "notes": list(self.notes),
            "parallel_engines": self.parallel_engines,
        }


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
