"""Searching a heterogeneous chip: candidate sub designs of every ASIC-style template, costed on
all layers at once, pruned, then every chip of ``n_subs`` candidates and every assignment of
networks (or of one network's layers) to its subs enumerated with NumPy (see the package doc)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nn2hw._checks import as_choice, as_float, as_int
from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.hardware._types import Ints
from nn2hw.hardware.asic.arrays import CostArrays, OpTable
from nn2hw.hardware.asic.hetero.chip import (
    HeteroDesign,
    SubAccelerator,
    SystemCost,
    SystemExploration,
    as_workloads,
    op_tables,
    sub_template,
    sub_templates,
)
from nn2hw.hardware.asic.hetero.cost import cost_system
from nn2hw.hardware.asic.technology import Technology, get_technology
from nn2hw.hardware.budgets import Budgets
from nn2hw.hardware.select import MAX_PARETO, meeting_specs, pareto_front, pick_best, reported_front
from nn2hw.spec import Spec
from nn2hw.workload import Layer, Workload

DRAM_BW_CHOICES = (4.0, 8.0, 16.0)
"""Default DRAM bandwidths (words/cycle) a sub may take out of the chip's budget."""
MAX_CHIPS = 2_000_000
"""The most chips a search enumerates (checked before building them)."""

@dataclass(frozen=True, eq=False)
class Candidates:
    """Sub designs with their per-layer cost on the concatenated layers of all workloads."""

    subs: tuple[SubAccelerator, ...]
    latency_ms: np.ndarray  # (C, L), inf where a layer cannot be mapped
    energy_mj: np.ndarray  # (C, L)
    area_mm2: np.ndarray  # (C,)
    pes: np.ndarray
    sram_kib: np.ndarray
    dram_bw: np.ndarray


def candidate_designs(templates: Sequence[str], space: Mapping[str, Mapping[str, Sequence[Any]]] | None,
                      dram_bws: Sequence[float]) -> list[SubAccelerator]:
    """Every sub design of the per-template grids crossed with the DRAM bandwidth choices."""
    subs = []
    for name in templates:
        template = sub_template(name)
        axes = {**template.sub_designs(), **((space or {}).get(name, {})), "dram_bw": tuple(dram_bws)}
        for k, design in enumerate(template.grid_designs(axes, with_defaults=False)):
            subs.append(SubAccelerator(f"{name}{k}", name, design))
    return subs


def cost_candidates(tables: Mapping[str, OpTable], subs: Sequence[SubAccelerator], tech: Technology,
                    clock_mhz: float) -> Candidates:
    """Per-op latency and energy of every candidate, one vectorized call per template."""
    C, L = len(subs), len(next(iter(tables.values())))
    latency, energy = np.full((C, L), np.inf), np.zeros((C, L))
    area, pes, sram = np.zeros(C), np.zeros(C), np.zeros(C)
    for name in dict.fromkeys(s.template for s in subs):
        idx = [i for i, s in enumerate(subs) if s.template == name]
        template, table = sub_template(name), tables[name]
        arrays: CostArrays = template.arrays(table, [subs[i].design for i in idx], tech)
        ok = arrays.mappable()
        if not template.maps_depthwise:
            ok = ok & ~table.depthwise[None, :]
        latency[idx] = np.where(ok, arrays.total / (clock_mhz * 1e3), np.inf)
        energy[idx] = arrays.energy_total_pj * 1e-9
        area[idx], pes[idx], sram[idx] = arrays.area_mm2, arrays.pes, arrays.sram_kib
    bw = np.array([s.dram_bw for s in subs])
    return Candidates(tuple(subs), latency, energy, area, pes, sram, bw)


def prune(keys: np.ndarray) -> np.ndarray:
    """Indices of rows of ``keys`` (minimize every column; inf allowed) not dominated by another
    row; exact duplicates keep their first index. A dominated candidate can be swapped for its
    dominator in any chip without breaking a budget or worsening a metric, so none is lost."""
    return np.array(pareto_front(np.nan_to_num(keys, posinf=1e300), np.ones(len(keys), dtype=bool)), dtype=np.int64)


def _concat(workloads: Mapping[str, Workload], templates: Sequence[str]) -> tuple[dict[str, OpTable], np.ndarray]:
    """The ops of all workloads as each sub template's columns (names prefixed by the network when
    several), and the index of the workload owning each column."""
    several = len(workloads) > 1
    layers: list[Layer] = []
    owner_of: dict[str, int] = {}
    for k, (net, w) in enumerate(workloads.items()):
        for layer in w.layers:
            if several:
                layer = replace(layer, name=f"{net}/{layer.name}", inputs=())
            layers.append(layer)
            owner_of[layer.name] = k
    tables = op_tables(templates, layers)
    return tables, np.array([owner_of[name] for name in next(iter(tables.values())).names], dtype=np.int64)


def explore(workloads: Mapping[str, Workload] | Workload, budgets: Budgets | None = None,
            specs: Spec | None = None, *, n_subs: int = 2, templates: Sequence[str] | None = None,
            space: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
            dram_bws: Sequence[float] = DRAM_BW_CHOICES, technology: str = "45nm", clock_mhz: float | None = None,
            objective: str = "latency_ms", max_pareto: int = MAX_PARETO) -> SystemExploration:
    """Search the chip (``n_subs`` sub-accelerators) and the assignment of networks (or of the
    layers of one network) to its subs, under ``budgets`` and ``specs``; see the module doc.

    Raises ``InfeasibleError`` with the smallest reachable PEs, bandwidth and area when no chip
    fits the budgets, when none within them can run the work with every sub used, and with the best
    reachable latency, energy and area when none meets the specs.
    """
    start = time.perf_counter()
    nets, mode = as_workloads(workloads)
    budgets, specs = budgets or Budgets(), specs or Spec()
    templates = sub_templates() if templates is None else tuple(templates)
    n_subs = as_int(n_subs, "n_subs", 1, 4)
    objective = as_choice(objective, "objective", ("latency_ms", "energy_mj", "area_mm2", "edp"))
    tech = get_technology(technology)
    clock = as_float(clock_mhz or tech.clock_mhz, "clock_mhz")
    tables, owner = _concat(nets, templates)
    table = next(iter(tables.values()))
    subs = candidate_designs(templates, space, dram_bws)
    cand = cost_candidates(tables, subs, tech, clock)
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
    limited = [cand.pes, cand.dram_bw, cand.area_mm2] + ([cand.sram_kib] if budgets.max_sram_kib is not None else [])
    keys = np.concatenate([np.stack(limited, axis=1), lat_net, en_net], axis=1)
    usable = np.flatnonzero(np.isfinite(lat_net).any(axis=1))
    kept = usable[prune(keys[usable])]
    n_chips = math.comb(len(kept) + n_subs - 1, n_subs)  # multisets of n_subs of the kept candidates
    if n_chips > MAX_CHIPS:
        raise ConfigError(f"{n_chips} chips to enumerate ({len(kept)} candidate subs after pruning, {n_subs} subs).",
                          "Narrow the space (fewer templates or grid values) or use fewer sub-accelerators.")
    chips = np.array(list(itertools.combinations_with_replacement(kept.tolist(), n_subs)), dtype=np.int64)
    pes = cand.pes[chips].sum(axis=1)
    bw = cand.dram_bw[chips].sum(axis=1)
    area = cand.area_mm2[chips].sum(axis=1)
    sram = cand.sram_kib[chips].sum(axis=1)
    in_budget = budgets.mask(pes, area, sram, bw)
    if not in_budget.any():
        raise InfeasibleError(
            f"No chip of {n_subs} sub-accelerator(s) fits the budgets "
            f"({', '.join(f'{k}={v}' for k, v in budgets.to_dict().items() if v is not None)}); the smallest reachable "
            f"values are {pes.min():.0f} PEs, {bw.min():g} words/cycle, {sram.min():.0f} KiB and "
            f"{area.min():.3f} mm^2.",
            "Raise the budgets to at least those values, add smaller designs to the space, or use fewer subs.",
            best_bound=float(area.min()))
    chips = chips[in_budget]
    pes, bw, area = pes[in_budget], bw[in_budget], area[in_budget]
    lat, en, assign = (_assign_multi(lat_net, en_net, chips) if mode == "multi"
                       else _assign_layers(lat_net, en_net, chips))
    runs = np.isfinite(lat)
    if not runs.any():
        why = ("gives every sub a network and every network a sub that maps all its layers" if mode == "multi" else
               "maps every layer on one of its subs and makes every sub the fastest for at least one layer (a "
               "chip of identical subs leaves all but the first idle)")
        raise InfeasibleError(
            f"None of the {len(chips)} chip(s) of {n_subs} sub-accelerator(s) within the budgets {why}.",
            "Widen the design space (more templates, grid values or DRAM bandwidths, so that the subs differ), "
            "use fewer sub-accelerators, or raise the budgets.")
    feasible = meeting_specs(specs, {"latency_ms": lat, "energy_mj": en, "area_mm2": area}, runs,
                             "chip within the budgets")
    scores = {"latency_ms": lat, "energy_mj": en, "area_mm2": area, "edp": lat * en}
    best = pick_best([scores[objective], lat, en, area], feasible)
    front = reported_front(np.stack([lat, en, area], axis=1), feasible, best, max_pareto)

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


def _argmin2(primary: np.ndarray, secondary: np.ndarray) -> Ints:
    """The first index along axis 1 minimizing ``primary`` then ``secondary``: per row of 2-D
    arrays, per (chip, layer) of 3-D (chips, subs, layers) ones."""
    best = primary.min(axis=1, keepdims=True)
    tied = np.where(primary <= best, secondary, np.inf)
    index: Ints = np.argmin(tied, axis=1)
    return index


def _assign_layers(lat: np.ndarray, en: np.ndarray, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each layer on the sub of the chip that runs it fastest (ties: lower energy, first sub);
    chips on which some sub gets no layer are dropped (infinite latency)."""
    lat_c = lat[chips]  # (chips, subs, L)
    en_c = en[chips]
    choice = _argmin2(lat_c, en_c)  # (chips, L)
    rows = np.arange(len(chips))[:, None]
    cols = np.arange(lat.shape[1])[None, :]
    total = lat_c[rows, choice, cols].sum(axis=1)
    energy = en_c[rows, choice, cols].sum(axis=1)
    used = np.stack([(choice == s).any(axis=1) for s in range(chips.shape[1])], axis=1).all(axis=1)
    return np.where(used, total, np.inf), energy, choice
