"""Heterogeneous chips as data: sub-accelerators, the chip, and what costing or searching one returns.

A sub-accelerator is a design of any registered ASIC-style template (``AsicTemplate``); a chip is
several of them in one technology, with an optional assignment of networks or layers to subs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware.asic.arrays import OpTable
from nn2hw.hardware.asic.records import AsicNetworkCost
from nn2hw.hardware.asic.technology import get_technology
from nn2hw.hardware.asic.template import AsicTemplate
from nn2hw.hardware.base import TEMPLATES
from nn2hw.registry import suggest
from nn2hw.workload import Layer, Workload


def sub_templates() -> tuple[str, ...]:
    """The registered templates a chip may use as sub-accelerators: every ASIC-style one."""
    return tuple(name for name, t in TEMPLATES.items() if isinstance(t, AsicTemplate))


def sub_template(name: str) -> AsicTemplate:
    """The registered ASIC-style template called ``name``; a ``ConfigError`` listing them otherwise."""
    template = TEMPLATES.get(name) if name in TEMPLATES else None
    if not isinstance(template, AsicTemplate):
        subs = sub_templates()
        raise ConfigError(f"Sub-accelerator template {name!r} is not one of {', '.join(subs)}."
                          f"{suggest(name, list(subs))}", f"Use one of: {', '.join(subs)}.")
    return template


@dataclass(frozen=True)
class SubAccelerator:
    """One sub-accelerator: a name, a dataflow template and a design of it."""

    name: str
    template: str
    design: Any

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"A sub-accelerator name must be a non-empty string, got {self.name!r}.",
                              "Name each sub-accelerator, e.g. name: big.")
        object.__setattr__(self, "design", sub_template(self.template).as_design(self.design))

    @property
    def dram_bw(self) -> float:
        return float(self.design.dram_bw)

    def label(self) -> str:
        """'systolic 32x16 ws, 4 words/cycle': the template's shape label and the DRAM bandwidth."""
        return f"{sub_template(self.template).shape_label(self.design)}, {self.dram_bw:g} words/cycle"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.template, "params": self.design.to_dict()}


@dataclass(frozen=True)
class HeteroDesign:
    """A chip: sub-accelerators in one technology; ``assignment`` optionally fixes which sub runs
    each network (multi-DNN) or layer (single DNN); missing entries are searched."""

    subs: tuple[SubAccelerator, ...]
    technology: str = "45nm"
    assignment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subs", tuple(self.subs))
        if not self.subs:
            raise ConfigError("A heterogeneous chip needs at least one sub-accelerator.",
                              "List them under sub_accelerators.")
        names = [s.name for s in self.subs]
        if len(set(names)) != len(names):
            raise ConfigError(f"Sub-accelerator names must be unique, got {names}.", "Rename the duplicates.")
        get_technology(self.technology)
        bad = {k: v for k, v in self.assignment.items() if v not in names}
        if bad:
            raise ConfigError(f"The assignment names unknown sub-accelerators {bad}.",
                              f"Use one of: {', '.join(names)}.")

    def sub(self, name: str) -> SubAccelerator:
        return next(s for s in self.subs if s.name == name)

    @property
    def label(self) -> str:
        """'sub0: systolic 32x16 ws, 4 words/cycle | sub1: ...' (with who runs where when assigned)."""
        runs = {sub: [n for n, s in self.assignment.items() if s == sub] for sub in (s.name for s in self.subs)}
        return " | ".join(f"{s.name}: {s.label()}" + (f" <- {', '.join(runs[s.name])}" if runs[s.name]
                                                      and len(runs[s.name]) <= 3 else "") for s in self.subs)

    def to_dict(self) -> dict[str, Any]:
        return {"technology": self.technology, "sub_accelerators": [s.to_dict() for s in self.subs],
                "assignment": dict(self.assignment)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeteroDesign:
        """The chip from its ``to_dict`` form (what reports and bundles store)."""
        try:
            subs = tuple(SubAccelerator(s["name"], s["template"], sub_template(s["template"]).parse_design(
                dict(s.get("params", {})))) for s in data["sub_accelerators"])
            return cls(subs, data.get("technology", "45nm"), dict(data.get("assignment", {})))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"A heterogeneous chip record lacks {exc} or is malformed.",
                              "Give {technology, sub_accelerators: [{name, template, params}], assignment}.") from None


@dataclass(frozen=True)
class SystemCost:
    """A chip running its workloads: per-network costs on their subs, per-sub busy time, totals.

    ``latency_ms`` is the slowest sub's busy time (multi-DNN) or the sum of layer latencies
    (single DNN); ``pipeline_interval_ms`` the busiest sub's time in both cases.
    """

    design: HeteroDesign
    assignment: Mapping[str, str]
    networks: Mapping[str, AsicNetworkCost]
    sub_busy_ms: Mapping[str, float]
    latency_ms: float
    energy_mj: float
    area_mm2: float
    pes: int
    sram_kib: float
    dram_bw: float
    clock_mhz: float
    mode: str

    @property
    def pipeline_interval_ms(self) -> float:
        return max(self.sub_busy_ms.values())

    def report(self) -> list[str]:
        """One line per network (or sub, for a single DNN): which sub runs what, and the totals."""
        lines = []
        if self.mode == "multi":
            for net, sub_name in self.assignment.items():
                c = self.networks[net]
                lines.append(f"{net} -> {sub_name} ({self.design.sub(sub_name).label()}): {c.latency_ms:.4f} ms, "
                             f"{c.energy_mj:.4f} mJ")
        else:
            for sub in self.design.subs:
                layers = [k for k, v in self.assignment.items() if v == sub.name]
                lines.append(f"{sub.name} ({sub.label()}): {len(layers)} layers, "
                             f"busy {self.sub_busy_ms[sub.name]:.4f} ms")
        lines.append(f"chip: {self.pes} PEs, {self.dram_bw:g} words/cycle, {self.area_mm2:.3f} mm^2; latency "
                     f"{self.latency_ms:.4f} ms, energy {self.energy_mj:.4f} mJ")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "design": self.design.to_dict(), "assignment": dict(self.assignment),
                "latency_ms": self.latency_ms, "pipeline_interval_ms": self.pipeline_interval_ms,
                "energy_mj": self.energy_mj, "area_mm2": self.area_mm2, "pes": self.pes, "sram_kib": self.sram_kib,
                "dram_bw": self.dram_bw,
                "clock_mhz": self.clock_mhz, "sub_busy_ms": dict(self.sub_busy_ms),
                "networks": {k: v.to_dict() for k, v in self.networks.items()}}


@dataclass(frozen=True)
class SystemExploration:
    """Result of a chip search: the best chip (minimum ``objective`` under budgets and specs), the
    Pareto set on (latency, energy, area), and how many chips were considered."""

    best: SystemCost
    pareto: tuple[SystemCost, ...]
    n_candidates: int
    n_chips: int
    n_feasible: int
    seconds: float
    objective: str


def as_workloads(workloads: Mapping[str, Workload] | Workload) -> tuple[dict[str, Workload], str]:
    """The networks by name and the mode: 'multi' (several networks) or 'single' (one network's layers)."""
    if isinstance(workloads, Workload):
        return {workloads.name: workloads}, "single"
    if not isinstance(workloads, Mapping) or not workloads:
        raise ConfigError("Give the workloads as a non-empty mapping name -> Workload (or one Workload).",
                          "e.g. hetero.explore({'resnet20': w1, 'lenet': w2}, budgets, specs).")
    for name, w in workloads.items():
        if not isinstance(w, Workload):
            raise ConfigError(f"Workload {name!r} is a {type(w).__name__}, not a Workload.",
                              "Extract it with nn2hw.zoo.workload(...) or nn2hw.workload.from_module(...).")
    return dict(workloads), "multi" if len(workloads) > 1 else "single"


def op_tables(templates: Sequence[str], layers: Sequence[Layer]) -> dict[str, OpTable]:
    """Each sub template's columns of ``layers``; they must cost the same ops (in network order) for
    the sub-accelerators to share the work op by op."""
    tables = {name: sub_template(name).op_table(layers) for name in dict.fromkeys(templates)}
    first, *others = tables.items()
    for name, table in others:
        if table.names != first[1].names:
            differ = sorted(set(table.names) ^ set(first[1].names))[:3]
            raise HardwareError(f"The sub-accelerator templates {first[0]!r} and {name!r} disagree on which ops have "
                                f"cycles of their own (e.g. {differ}).",
                                "Use sub-accelerator templates that run the same op kinds on their array or vector "
                                "unit.")
    return tables
