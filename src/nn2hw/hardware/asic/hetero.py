"""Heterogeneous chips: several sub-accelerators (NASAIC) running several DNNs, or the layers of
one DNN (HERALD), under global PE, DRAM-bandwidth and area budgets.

What is modelled, precisely:

- A chip is a set of sub-accelerators, each a design of one dataflow template (systolic,
  nvdla, shidiannao, eyeriss) with its own PEs, buffers and DRAM bandwidth, in one technology
  and at one clock. PEs, DRAM bandwidth and area of the chip are the sums over its subs.
- Several DNNs (``Mapping[str, Workload]``): each DNN runs entirely on one sub; DNNs on
  different subs run concurrently, DNNs sharing a sub run one after another. System latency =
  the slowest sub's busy time (the sum of the latencies of the DNNs it runs); energy = the sum
  over DNNs of their energy on their sub; area = the sum over subs.
- One DNN (HERALD-style): each layer runs on one sub; one input passes the layers in order, so
  the latency is the sum of the layer latencies on their subs (dependencies serialize them);
  ``pipeline_interval`` = the busiest sub's time is the steady-state interval when consecutive
  inputs are pipelined across the subs. Each layer goes to the sub that runs it fastest (ties:
  lower energy), and every sub must get at least one layer.
- Not modelled: contention between subs for the shared DRAM (each has its own bandwidth),
  inter-sub transfers of activations, leakage and idle energy.

The search (``explore``) enumerates, per template, a grid of sub designs (PE array shapes,
buffers, DRAM bandwidths), costs all layers of all DNNs on every candidate at once (vectorized),
prunes candidates dominated on (PEs, bandwidth, area, per-DNN latency and energy), then
enumerates every chip of ``n_subs`` candidates and every assignment with NumPy, and keeps the
chips that meet the budgets and specs. Deterministic: candidates and assignments are in a fixed
order and ties go to the first.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nn2hw.errors import ConfigError, HardwareError, InfeasibleError
from nn2hw.hardware.asic._common import (
    AsicNetworkCost,
    AsicTemplate,
    CostArrays,
    LayerTable,
    Specs,
    as_choice,
    as_float,
    as_int,
    network_cost,
    pareto_front,
)
from nn2hw.hardware.asic.technology import Technology, get_technology, load_technologies
from nn2hw.hardware.base import TEMPLATES, Exploration, HardwareTemplate, LayerCost, ResourceUse
from nn2hw.registry import suggest
from nn2hw.workload import Workload

SUB_TEMPLATES = ("systolic", "nvdla", "shidiannao", "eyeriss")
SEARCH_SPACE: dict[str, dict[str, Sequence[Any]]] = {
    "systolic": {"rows": (8, 16, 32), "cols": (8, 16, 32), "dataflow": ("ws", "os")},
    "nvdla": {"atomic_c": (8, 16, 32), "atomic_k": (8, 16, 32)},
    "shidiannao": {"pe_rows": (4, 8, 16), "pe_cols": (4, 8, 16)},
    "eyeriss": {"rows": (6, 12, 16), "cols": (7, 14, 16), "psum_spad": (16,), "exclusive_limits": (False,)},
}
"""Default per-template grids of sub designs (the rest of each design is the template's default preset)."""
DRAM_BW_CHOICES = (4.0, 8.0, 16.0)
"""Default DRAM bandwidths (words/cycle) a sub may take out of the chip's budget."""
MAX_CHIPS = 2_000_000


def _template(name: str) -> AsicTemplate:
    if name not in SUB_TEMPLATES:
        raise ConfigError(f"Sub-accelerator template {name!r} is not one of {', '.join(SUB_TEMPLATES)}."
                          f"{suggest(name, list(SUB_TEMPLATES))}", f"Use one of: {', '.join(SUB_TEMPLATES)}.")
    return TEMPLATES.get(name)  # type: ignore[return-value]


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
        object.__setattr__(self, "design", _template(self.template).as_design(self.design))

    @property
    def dram_bw(self) -> float:
        return float(self.design.dram_bw)

    def label(self) -> str:
        d = self.design.to_dict()
        shape = {"systolic": ("rows", "cols"), "nvdla": ("atomic_k", "atomic_c"), "shidiannao": ("pe_rows", "pe_cols"),
                 "eyeriss": ("rows", "cols")}[self.template]
        extra = f" {d['dataflow']}" if self.template == "systolic" else ""
        return f"{self.template} {d[shape[0]]}x{d[shape[1]]}{extra}, {self.dram_bw:g} words/cycle"

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


@dataclass(frozen=True)
class SystemBudgets:
    """Global limits of a chip (None: unlimited): total PEs, total DRAM bandwidth (words/cycle), area."""

    max_pes: int | None = None
    max_dram_bw: float | None = None
    max_area_mm2: float | None = None

    def __post_init__(self) -> None:
        if self.max_pes is not None:
            object.__setattr__(self, "max_pes", as_int(self.max_pes, "PE budget (max_pes)"))
        if self.max_dram_bw is not None:
            object.__setattr__(self, "max_dram_bw", as_float(self.max_dram_bw, "DRAM bandwidth budget (max_dram_bw)"))
        if self.max_area_mm2 is not None:
            object.__setattr__(self, "max_area_mm2", as_float(self.max_area_mm2, "area budget (max_area_mm2)"))

    def to_dict(self) -> dict[str, Any]:
        return {"max_pes": self.max_pes, "max_dram_bw": self.max_dram_bw, "max_area_mm2": self.max_area_mm2}


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
    dram_bw: float
    clock_mhz: float
    mode: str

    @property
    def pipeline_interval_ms(self) -> float:
        return max(self.sub_busy_ms.values())

    def meets(self, specs: Specs) -> bool:
        return bool(specs.met(np.array(self.latency_ms), np.array(self.energy_mj), np.array(self.area_mm2)))

    def report(self) -> list[str]:
        """One line per network (or sub, for a single DNN): which sub runs what, and the totals."""
        lines = []
        if self.mode == "multi":
            for net, sub in self.assignment.items():
                c = self.networks[net]
                lines.append(f"{net} -> {sub} ({self.design.sub(sub).label()}): {c.latency_ms:.4f} ms, "
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
                "energy_mj": self.energy_mj, "area_mm2": self.area_mm2, "pes": self.pes, "dram_bw": self.dram_bw,
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


# --- candidates ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Candidates:
    """Sub designs with their per-layer cost on the concatenated layers of all workloads."""

    subs: tuple[SubAccelerator, ...]
    latency_ms: np.ndarray  # (C, L), inf where a layer cannot be mapped
    energy_mj: np.ndarray  # (C, L)
    area_mm2: np.ndarray  # (C,)
    pes: np.ndarray
    dram_bw: np.ndarray


def candidate_designs(templates: Sequence[str], space: Mapping[str, Mapping[str, Sequence[Any]]] | None,
                      dram_bws: Sequence[float]) -> list[SubAccelerator]:
    """Every sub design of the per-template grids crossed with the DRAM bandwidth choices."""
    subs = []
    for name in templates:
        template = _template(name)
        axes = {**SEARCH_SPACE[name], **((space or {}).get(name, {})), "dram_bw": tuple(dram_bws)}
        for k, design in enumerate(template.grid_designs(axes, with_defaults=False)):
            subs.append(SubAccelerator(f"{name}{k}", name, design))
    return subs


def cost_candidates(table: LayerTable, subs: Sequence[SubAccelerator], tech: Technology,
                    clock_mhz: float) -> Candidates:
    """Per-layer latency and energy of every candidate, one vectorized call per template."""
    C, L = len(subs), len(table)
    latency, energy = np.full((C, L), np.inf), np.zeros((C, L))
    area, pes = np.zeros(C), np.zeros(C)
    for name in dict.fromkeys(s.template for s in subs):
        idx = [i for i, s in enumerate(subs) if s.template == name]
        template = _template(name)
        arrays: CostArrays = template.evaluate(table, [subs[i].design for i in idx], tech)
        ok = arrays.mappable()
        if not template.maps_depthwise:
            ok = ok & np.array([t != "depthwise" for t in table.conv_types])[None, :]
        latency[idx] = np.where(ok, arrays.total / (clock_mhz * 1e3), np.inf)
        energy[idx] = arrays.energy_total_pj * 1e-9
        area[idx], pes[idx] = arrays.area_mm2, arrays.pes
    bw = np.array([s.dram_bw for s in subs])
    return Candidates(tuple(subs), latency, energy, area, pes, bw)


def prune(keys: np.ndarray) -> np.ndarray:
    """Indices of rows of ``keys`` (minimize every column; inf allowed) not dominated by another
    row; exact duplicates keep their first index. A dominated candidate can be swapped for its
    dominator in any chip without breaking a budget or worsening a metric, so none is lost."""
    return np.array(pareto_front(np.nan_to_num(keys, posinf=1e300), np.ones(len(keys), dtype=bool)), dtype=np.int64)


# --- the search ---------------------------------------------------------------------------------
def _as_workloads(workloads: Mapping[str, Workload] | Workload) -> tuple[dict[str, Workload], str]:
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


def _concat(workloads: Mapping[str, Workload]) -> tuple[LayerTable, np.ndarray]:
    """All compute layers of all workloads in one table (names prefixed by the network when several),
    and the index of the workload owning each layer."""
    tables = [LayerTable.from_workload(w) for w in workloads.values()]
    owner = np.concatenate([np.full(len(t), k) for k, t in enumerate(tables)])
    layers = [layer if len(workloads) == 1 else replace(layer, name=f"{net}/{layer.name}", inputs=())
              for net, w in workloads.items() for layer in w.compute_layers]
    return LayerTable.from_layers(layers), owner


def explore(workloads: Mapping[str, Workload] | Workload, budgets: SystemBudgets | None = None,
            specs: Specs | None = None, *, n_subs: int = 2, templates: Sequence[str] = SUB_TEMPLATES,
            space: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
            dram_bws: Sequence[float] = DRAM_BW_CHOICES, technology: str = "45nm", clock_mhz: float | None = None,
            objective: str = "latency_ms", max_pareto: int = 16) -> SystemExploration:
    """Search the chip (``n_subs`` sub-accelerators) and the assignment of networks (or of the
    layers of one network) to its subs, under ``budgets`` and ``specs``; see the module doc.

    Raises ``InfeasibleError`` with the smallest reachable PEs, bandwidth and area when no chip
    fits the budgets, and with the best reachable latency, energy and area when none meets the specs.
    """
    start = time.perf_counter()
    nets, mode = _as_workloads(workloads)
    budgets, specs = budgets or SystemBudgets(), specs or Specs()
    n_subs = as_int(n_subs, "n_subs", 1, 4)
    objective = as_choice(objective, "objective", ("latency_ms", "energy_mj", "area_mm2", "edp"))
    tech = get_technology(technology)
    clock = as_float(clock_mhz or tech.clock_mhz, "clock_mhz")
    table, owner = _concat(nets)
    subs = candidate_designs(templates, space, dram_bws)
    cand = cost_candidates(table, subs, tech, clock)
    n_nets = len(nets)
    if mode == "multi":
        lat_net = np.stack([cand.latency_ms[:, owner == k].sum(axis=1) for k in range(n_nets)], axis=1)
        en_net = np.stack([cand.energy_mj[:, owner == k].sum(axis=1) for k in range(n_nets)], axis=1)
        if n_subs > n_nets:
            raise ConfigError(f"{n_subs} sub-accelerators for {n_nets} networks would leave a sub idle.",
                              f"Use n_subs <= {n_nets}, or pass one network to split its layers (HERALD mode).")
    else:
        lat_net, en_net = cand.latency_ms, cand.energy_mj
        if n_subs > len(table):
            raise ConfigError(f"{n_subs} sub-accelerators for {len(table)} layers would leave a sub idle.",
                              f"Use n_subs <= {len(table)}.")
    keys = np.concatenate([cand.pes[:, None], cand.dram_bw[:, None], cand.area_mm2[:, None], lat_net, en_net], axis=1)
    usable = np.flatnonzero(np.isfinite(lat_net).any(axis=1))
    kept = usable[prune(keys[usable])]
    chips = np.array(list(itertools.combinations_with_replacement(kept.tolist(), n_subs)), dtype=np.int64)
    if len(chips) > MAX_CHIPS:
        raise ConfigError(f"{len(chips)} chips to enumerate ({len(kept)} candidate subs after pruning, {n_subs} subs).",
                          "Narrow the space (fewer templates or grid values) or use fewer sub-accelerators.")
    pes = cand.pes[chips].sum(axis=1)
    bw = cand.dram_bw[chips].sum(axis=1)
    area = cand.area_mm2[chips].sum(axis=1)
    in_budget = np.ones(len(chips), dtype=bool)
    for used, limit in ((pes, budgets.max_pes), (bw, budgets.max_dram_bw), (area, budgets.max_area_mm2)):
        if limit is not None:
            in_budget &= used <= limit + 1e-9
    if not in_budget.any():
        raise InfeasibleError(
            f"No chip of {n_subs} sub-accelerator(s) fits the budgets (max_pes={budgets.max_pes}, "
            f"max_dram_bw={budgets.max_dram_bw}, max_area_mm2={budgets.max_area_mm2}); the smallest reachable values "
            f"are {pes.min():.0f} PEs, {bw.min():g} words/cycle and {area.min():.3f} mm^2.",
            "Raise the budgets to at least those values, add smaller designs to the space, or use fewer subs.",
            best_bound=float(area.min()))
    chips = chips[in_budget]
    pes, bw, area = pes[in_budget], bw[in_budget], area[in_budget]
    lat, en, assign = (_assign_multi(lat_net, en_net, chips) if mode == "multi"
                       else _assign_layers(lat_net, en_net, chips))
    feasible = np.isfinite(lat) & specs.met(lat, en, area)
    if not feasible.any():
        reach = np.isfinite(lat)
        raise InfeasibleError(
            f"No chip within the budgets meets the specs (latency_ms={specs.latency_ms}, energy_mj={specs.energy_mj}, "
            f"area_mm2={specs.area_mm2}); the best reachable are {lat[reach].min():.4g} ms, {en[reach].min():.4g} mJ "
            f"and {area[reach].min():.4g} mm^2 (not necessarily by one chip).",
            "Relax the specs to those values, raise the budgets, or widen the design space.",
            best_bound=float(lat[reach].min()) if reach.any() else None)
    scores = {"latency_ms": lat, "energy_mj": en, "area_mm2": area, "edp": lat * en}
    inf = np.inf
    order = np.lexsort((np.arange(len(lat)), np.where(feasible, area, inf), np.where(feasible, en, inf),
                        np.where(feasible, lat, inf), np.where(feasible, scores[objective], inf)))
    best = int(order[0])
    front = pareto_front(np.stack([lat, en, area], axis=1), feasible)
    front = sorted(set(sorted(front, key=lambda i: (lat[i], i))[:max_pareto]) | {best}, key=lambda i: (lat[i], i))

    def system(i: int) -> SystemCost:
        chosen = [cand.subs[c] for c in chips[i]]
        named = tuple(SubAccelerator(f"sub{k}", s.template, s.design) for k, s in enumerate(chosen))
        if mode == "multi":
            mapping = {net: named[assign[i, k]].name for k, net in enumerate(nets)}
        else:
            mapping = {name: named[assign[i, k]].name for k, name in enumerate(table.names)}
        return cost_system(nets, HeteroDesign(named, tech.name, mapping), clock_mhz=clock)

    return SystemExploration(best=system(best), pareto=tuple(system(i) for i in front), n_candidates=len(subs),
                             n_chips=len(chips), n_feasible=int(feasible.sum()),
                             seconds=time.perf_counter() - start, objective=objective)


def _assign_multi(lat: np.ndarray, en: np.ndarray, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best assignment of every network to a sub for every chip (every sub used): system latency =
    max over subs of their networks' summed latency; ties -> lower energy, then first."""
    n_chips, n_subs = chips.shape
    n_nets = lat.shape[1]
    options = np.array([a for a in itertools.product(range(n_subs), repeat=n_nets) if len(set(a)) == n_subs],
                       dtype=np.int64)
    # per chip, per assignment: latency of network k on its sub, gathered (chips, A, nets)
    sub_of = chips[:, options]  # (chips, A, nets): candidate index running network k
    lat_k = lat[sub_of, np.arange(n_nets)]
    en_k = en[sub_of, np.arange(n_nets)]
    busy = np.stack([np.where(options[None, :, :] == s, lat_k, 0.0).sum(axis=2) for s in range(n_subs)], axis=2)
    system = busy.max(axis=2)
    energy = en_k.sum(axis=2)
    order = _argmin2(system, energy)
    rows = np.arange(n_chips)
    return system[rows, order], energy[rows, order], options[order]


def _argmin2(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Per row, the first column minimizing ``primary`` then ``secondary``."""
    best = primary.min(axis=1, keepdims=True)
    tied = np.where(primary <= best, secondary, np.inf)
    return np.argmin(tied, axis=1)


def _assign_layers(lat: np.ndarray, en: np.ndarray, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each layer on the sub of the chip that runs it fastest (ties: lower energy, first sub);
    chips on which some sub gets no layer are dropped (infinite latency)."""
    lat_c = lat[chips]  # (chips, subs, L)
    en_c = en[chips]
    best = lat_c.min(axis=1, keepdims=True)
    choice = np.argmin(np.where(lat_c <= best, en_c, np.inf), axis=1)  # (chips, L)
    rows = np.arange(len(chips))[:, None]
    cols = np.arange(lat.shape[1])[None, :]
    total = lat_c[rows, choice, cols].sum(axis=1)
    energy = en_c[rows, choice, cols].sum(axis=1)
    used = np.stack([(choice == s).any(axis=1) for s in range(chips.shape[1])], axis=1).all(axis=1)
    return np.where(used, total, np.inf), energy, choice


# --- costing one chip ---------------------------------------------------------------------------
def cost_system(workloads: Mapping[str, Workload] | Workload, design: HeteroDesign,
                clock_mhz: float | None = None) -> SystemCost:
    """Cost ``workloads`` on the chip ``design``; entries of ``design.assignment`` are kept, the
    others searched (multi-DNN: every network-to-sub assignment; single DNN: each layer on its
    fastest sub)."""
    nets, mode = _as_workloads(workloads)
    tech = get_technology(design.technology)
    clock = as_float(clock_mhz or tech.clock_mhz, "clock_mhz")
    names = [s.name for s in design.subs]
    if mode == "multi":
        unknown = sorted(set(design.assignment) - set(nets))
        if unknown:
            raise ConfigError(f"The assignment names networks {unknown} that are not among {sorted(nets)}.",
                              "Assign only the networks given.")
        costs = {(net, s.name): _cost_or_none(s, w, tech, clock) for net, w in nets.items() for s in design.subs}
        best: tuple[float, float] | None = None
        chosen: dict[str, str] = {}
        for combo in itertools.product(names, repeat=len(nets)):
            mapping = dict(zip(nets, combo))
            if any(design.assignment.get(n, s) != s for n, s in mapping.items()):
                continue
            if any(costs[(n, s)] is None for n, s in mapping.items()):
                continue
            busy = {s: sum(costs[(n, x)].latency_ms for n, x in mapping.items() if x == s) for s in names}
            key = (max(busy.values()), sum(costs[(n, x)].energy_mj for n, x in mapping.items()))
            if best is None or key < best:
                best, chosen = key, mapping
        if best is None:
            raise HardwareError("No assignment of the networks to this chip's sub-accelerators can map every layer.",
                                "Add a sub-accelerator whose template maps the refused layers (e.g. shidiannao for "
                                "depthwise convolutions).")
        networks = {n: costs[(n, s)] for n, s in chosen.items()}
        busy_ms = {s: sum(networks[n].latency_ms for n, x in chosen.items() if x == s) for s in names}
        latency = max(busy_ms.values())
    else:
        (net, workload), = nets.items()
        chosen, layers = _layer_assignment(workload, design, tech, clock)
        busy_ms = {s: sum(lc.latency_ms for lc in layers if chosen[lc.name] == s) for s in names}
        networks = {net: AsicNetworkCost(
            template="hetero", device=tech.name, design=_chip_dict(design), clock_mhz=clock, layers=tuple(layers),
            uncosted=LayerTable.from_workload(workload).uncosted, area_mm2=_area(design, tech),
            notes=("layers run in order, each on its sub-accelerator (engine); latency = their sum",),
            technology=tech.name)}
        latency = networks[net].latency_ms
    energy = sum(c.energy_mj for c in networks.values())
    return SystemCost(design=HeteroDesign(design.subs, design.technology, chosen), assignment=chosen,
                      networks=networks, sub_busy_ms=busy_ms, latency_ms=latency, energy_mj=energy,
                      area_mm2=_area(design, tech), pes=int(sum(_pes(s, tech) for s in design.subs)),
                      dram_bw=sum(s.dram_bw for s in design.subs), clock_mhz=clock, mode=mode)


def _chip_dict(design: HeteroDesign) -> dict[str, Any]:
    """The chip without its per-layer assignment (each layer record names its sub in ``engine``)."""
    return {"technology": design.technology, "sub_accelerators": [s.to_dict() for s in design.subs]}


def _cost_or_none(sub: SubAccelerator, workload: Workload, tech: Technology, clock: float) -> AsicNetworkCost | None:
    """``workload`` on ``sub``, or None when the sub cannot map one of its layers."""
    try:
        return _template(sub.template).cost(workload, sub.design, tech.name, clock_mhz=clock)
    except HardwareError:
        return None


def _area(design: HeteroDesign, tech: Technology) -> float:
    return float(sum(_template(s.template).footprint([s.design], tech).area_mm2[0] for s in design.subs))


def _pes(sub: SubAccelerator, tech: Technology) -> float:
    return float(_template(sub.template).footprint([sub.design], tech).pes[0])


def _layer_assignment(workload: Workload, design: HeteroDesign, tech: Technology,
                      clock: float) -> tuple[dict[str, str], list[LayerCost]]:
    """HERALD-style: each layer on its fixed or fastest sub (ties: lower energy, first sub);
    per-layer records whose ``engine`` names the sub."""
    table = LayerTable.from_workload(workload)
    unknown = sorted(set(design.assignment) - set(table.names))
    if unknown:
        raise ConfigError(f"The assignment names layers {unknown[:5]} that {workload.name!r} does not have.",
                          "Assign conv/linear layer names from `nn2hw analyze`.")
    per_sub = []
    for sub in design.subs:
        template = _template(sub.template)
        arrays = template.evaluate(table, [sub.design], tech)
        ok = arrays.mappable()[0] & (template.maps_depthwise | np.array([t != "depthwise" for t in table.conv_types]))
        records = network_cost(sub.template, tech, sub.design.to_dict(), table, arrays, 0, clock).layers
        per_sub.append((sub, records, ok))
    chosen: dict[str, str] = {}
    layers: list[LayerCost] = []
    for i, name in enumerate(table.names):
        options = [(records[i].cycles, records[i].energy_mj, k) for k, (s, records, ok) in enumerate(per_sub)
                   if ok[i] and design.assignment.get(name, s.name) == s.name]
        if not options:
            raise HardwareError(f"Layer {name!r} ({table.conv_types[i]}) cannot run on any sub-accelerator allowed for "
                                f"it ({', '.join(s.name for s, _, _ in per_sub)}).",
                                "Add a sub-accelerator that maps it (shidiannao, systolic or eyeriss map depthwise "
                                "layers) or change its assignment.")
        sub, records, _ = per_sub[min(options)[2]]
        layers.append(replace(records[i], engine=sub.name))
        chosen[name] = sub.name
    return chosen, layers


# --- the registered template --------------------------------------------------------------------
class HeteroTemplate(HardwareTemplate):
    """``hetero`` for ``nn2hw analyze``: one network's layers over a chip's sub-accelerators.

    A chip comes from a hardware file (``--hardware-file``; see ``nn2hw.hardware.asic.hwfile``) or
    ``parse_design`` parameters ``subs=TEMPLATE[:PRESET],...``; ``explore`` searches the chip
    under ``budgets`` (``SystemBudgets``) and ``specs``. Several networks: ``hetero.explore``.
    """

    bottlenecks = AsicTemplate.bottlenecks
    remedies = AsicTemplate.remedies
    honours_specs = True

    name = "hetero"
    description = "heterogeneous chip of dataflow sub-accelerators (NASAIC multi-DNN / HERALD layer assignment)"

    def devices(self) -> Sequence[str]:
        return tuple(load_technologies())

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        return {}

    OPTION_KEYS = ("clock_mhz", "objective", "n_subs", "templates", "max_pes", "max_dram_bw", "max_area_mm2",
                   "latency_ms", "energy_mj", "area_mm2")

    def split_params(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(chip parameters ``subs``/``technology``, options): budgets ``max_*`` become a
        ``SystemBudgets``, specs ``latency_ms``/``energy_mj``/``area_mm2`` a ``Specs``."""
        design = {k: v for k, v in params.items() if k in ("subs", "technology")}
        options = {k: v for k, v in params.items() if k not in design}
        unknown = sorted(set(options) - set(self.OPTION_KEYS))
        if unknown:
            raise ConfigError(f"Unknown hetero parameter {unknown[0]!r}.{suggest(unknown[0], list(self.OPTION_KEYS))}",
                              f"Chip: subs=, technology=; options: {', '.join(self.OPTION_KEYS)}.")
        budgets = {k: options.pop(k) for k in ("max_pes", "max_dram_bw", "max_area_mm2") if k in options}
        specs = {k: options.pop(k) for k in ("latency_ms", "energy_mj", "area_mm2") if k in options}
        if budgets:
            options["budgets"] = SystemBudgets(**budgets)
        if specs:
            options["specs"] = Specs(**specs)
        if "templates" in options:
            options["templates"] = tuple(t.strip() for t in str(options["templates"]).split(",") if t.strip())
        return design, options

    def design_from_params(self, params: Mapping[str, Any]) -> HeteroDesign | None:
        """The chip named by ``subs=`` (None without it: the chip is searched)."""
        return self.parse_design(params) if params.get("subs") else None

    def parse_design(self, params: Mapping[str, Any]) -> HeteroDesign:
        """``subs=systolic,shidiannao:default`` (TEMPLATE[:PRESET] per sub) and ``technology=``; or
        ``design=`` a ``HeteroDesign``."""
        params = dict(params)
        given = params.pop("design", None)
        if isinstance(given, HeteroDesign):
            return given
        spec = params.pop("subs", None)
        technology = params.pop("technology", "45nm")
        params.pop("dw_design", None)
        if params:
            raise ConfigError(f"Unknown hetero parameter(s) {', '.join(sorted(params))}.",
                              "Use subs=TEMPLATE[:PRESET],... and technology=, or describe the chip in "
                              "--hardware-file.")
        if not spec:
            raise ConfigError("A hetero chip needs its sub-accelerators.",
                              "Give --hw-param subs=nvdla,shidiannao or a --hardware-file describing them.")
        subs = []
        for k, item in enumerate(str(spec).split(",")):
            template, _, preset = item.strip().partition(":")
            design = _template(template).design_type.from_params({"preset": preset} if preset else {})
            subs.append(SubAccelerator(f"sub{k}", template, design))
        return HeteroDesign(tuple(subs), technology)

    def cost(self, workload: Workload, design: Any = None, device: str | None = None,
             **options: Any) -> AsicNetworkCost:
        """One network on a chip: each layer on its (assigned or fastest) sub; latency = sum. The
        chip's PEs, DRAM bandwidth and area are reported against ``budgets`` when given."""
        if not isinstance(design, HeteroDesign):
            design = self.parse_design(design or {})
        if device is not None and device != design.technology:
            design = HeteroDesign(design.subs, device, design.assignment)
        system = cost_system({workload.name: workload}, design, clock_mhz=options.get("clock_mhz"))
        return replace(system.networks[workload.name], resources=_budget_use(system, options.get("budgets")))

    def explore(self, workload: Workload, device: str | None = None, grid: Any = None, **options: Any) -> Exploration:
        """Search a chip for one network (HERALD-style). ``grid`` maps sub templates to their grid
        axes (e.g. ``{"nvdla": {"atomic_c": [16, 32]}}``); ``technology`` in it picks the technology."""
        grid = dict(grid or {})
        technology = str(grid.pop("technology", device or "45nm"))
        bad = sorted(set(grid) - set(SUB_TEMPLATES))
        if bad:
            raise ConfigError(f"Unknown hetero grid key(s) {bad}.",
                              f"Give per-template grids under {', '.join(SUB_TEMPLATES)}, or subs= to cost one chip.")
        found = explore(workload, options.get("budgets"), options.get("specs"), n_subs=options.get("n_subs", 2),
                        templates=options.get("templates", SUB_TEMPLATES), space=grid or None,
                        technology=technology, clock_mhz=options.get("clock_mhz"),
                        objective=options.get("objective", "latency_ms"))
        budgets = options.get("budgets")

        def record(system: SystemCost) -> AsicNetworkCost:
            return self.cost(workload, system.design, technology, clock_mhz=system.clock_mhz, budgets=budgets)

        return Exploration(best=record(found.best), pareto=tuple(record(s) for s in found.pareto),
                           n_designs=found.n_chips, n_feasible=found.n_feasible,
                           seconds=found.seconds, objective=found.objective)

    # --- several networks on one chip (NASAIC) --------------------------------------------------
    def explore_networks(self, workloads: Mapping[str, Workload], device: str | None = None, grid: Any = None,
                         **options: Any) -> Exploration:
        """Search a chip for several networks at once: each runs on one sub-accelerator, in
        parallel with the others (``system_record`` says how the result reads)."""
        grid = dict(grid or {})
        technology = str(grid.pop("technology", device or "45nm"))
        budgets = options.get("budgets")
        found = explore(dict(workloads), budgets, options.get("specs"), n_subs=options.get("n_subs", 2),
                        templates=options.get("templates", SUB_TEMPLATES), space=grid or None,
                        technology=technology, clock_mhz=options.get("clock_mhz"),
                        objective=options.get("objective", "latency_ms"))
        return Exploration(best=system_record(found.best, budgets),
                           pareto=tuple(system_record(s, budgets) for s in found.pareto), n_designs=found.n_chips,
                           n_feasible=found.n_feasible, seconds=found.seconds, objective=found.objective)

    def cost_networks(self, workloads: Mapping[str, Workload], design: HeteroDesign, device: str | None = None,
                      **options: Any) -> AsicNetworkCost:
        """Several networks on one given chip (its assignment kept, missing entries searched)."""
        if device is not None and device != design.technology:
            design = HeteroDesign(design.subs, device, design.assignment)
        system = cost_system(dict(workloads), design, clock_mhz=options.get("clock_mhz"))
        return system_record(system, options.get("budgets"))


def _budget_use(system: SystemCost, budgets: Any) -> tuple[ResourceUse, ...]:
    """The chip's PEs, DRAM bandwidth and area against the budgets that are set."""
    if not isinstance(budgets, SystemBudgets):
        return ()
    pairs = (("pes", system.pes, budgets.max_pes, "PEs"), ("dram_bw", system.dram_bw, budgets.max_dram_bw,
             "words/cycle"), ("area", system.area_mm2, budgets.max_area_mm2, "mm^2"))
    return tuple(ResourceUse(n, float(u), float(a), unit) for n, u, a, unit in pairs if a is not None)


def system_record(system: SystemCost, budgets: Any = None) -> AsicNetworkCost:
    """A multi-network chip as one cost record: layers named 'network/layer', each tagged with the
    sub-accelerator that runs it (``engine``); engines run in parallel, so the latency is the
    busiest sub's time while energy adds up; the design is the chip with its assignment."""
    layers = tuple(replace(layer, name=f"{net}/{layer.name}", engine=sub)
                   for net, sub in system.assignment.items() for layer in system.networks[net].layers)
    uncosted = tuple(replace(u, name=f"{net}/{u.name}")
                     for net in system.assignment for u in system.networks[net].uncosted)
    where = "; ".join(f"{net} on {sub} ({system.design.sub(sub).label()})" for net, sub in system.assignment.items())
    return AsicNetworkCost(
        template="hetero", device=system.design.technology, design=system.design, clock_mhz=system.clock_mhz,
        layers=layers, uncosted=uncosted, resources=_budget_use(system, budgets), area_mm2=system.area_mm2,
        notes=(f"networks run in parallel, each on its sub-accelerator: {where}; latency = the busiest sub's time, "
               "energy and area = sums",), technology=system.design.technology, parallel_engines=True)


TEMPLATES.register("hetero", HeteroTemplate())
