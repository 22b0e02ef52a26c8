"""Costing one heterogeneous chip: several networks each on one sub (in parallel), or the layers of
one network each on its fastest sub (in order); and the chip as one cost record."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nn2hw._checks import as_float
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware.asic.hetero.chip import (
    HeteroDesign,
    SubAccelerator,
    SystemCost,
    as_workloads,
    op_tables,
    sub_template,
)
from nn2hw.hardware.asic.records import AsicNetworkCost, network_cost
from nn2hw.hardware.asic.technology import Technology, get_technology
from nn2hw.hardware.budgets import Budgets
from nn2hw.hardware.records import LayerCost, ResourceUse, Uncosted
from nn2hw.workload import Workload


def cost_system(workloads: Mapping[str, Workload] | Workload, design: HeteroDesign,
                clock_mhz: float | None = None) -> SystemCost:
    """Cost ``workloads`` on the chip ``design``; entries of ``design.assignment`` are kept, the
    others searched (multi-DNN: every network-to-sub assignment; single DNN: each layer on its
    fastest sub)."""
    nets, mode = as_workloads(workloads)
    tech = get_technology(design.technology)
    clock = as_float(clock_mhz or tech.clock_mhz, "clock_mhz")
    names = [s.name for s in design.subs]
    if mode == "multi":
        unknown = sorted(set(design.assignment) - set(nets))
        if unknown:
            raise ConfigError(f"The assignment names networks {unknown} that are not among {sorted(nets)}.",
                              "Assign only the networks given.")
        mapped = {(net, s.name): _cost_or_none(s, w, tech, clock) for net, w in nets.items() for s in design.subs}
        costs = {pair: c for pair, c in mapped.items() if c is not None}
        best: tuple[float, float] | None = None
        chosen: dict[str, str] = {}
        for combo in itertools.product(names, repeat=len(nets)):
            mapping = dict(zip(nets, combo))
            if any(design.assignment.get(n, s) != s for n, s in mapping.items()):
                continue
            if any((n, s) not in costs for n, s in mapping.items()):
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
            uncosted=_uncosted(workload, design), area_mm2=_footprint(design, tech, "area_mm2"),
            notes=("layers run in order, each on its sub-accelerator (engine); latency = their sum",),
            technology=tech.name)}
        latency = networks[net].latency_ms
    energy = sum(c.energy_mj for c in networks.values())
    return SystemCost(design=HeteroDesign(design.subs, design.technology, chosen), assignment=chosen,
                      networks=networks, sub_busy_ms=busy_ms, latency_ms=latency, energy_mj=energy,
                      area_mm2=_footprint(design, tech, "area_mm2"), pes=int(_footprint(design, tech, "pes")),
                      sram_kib=_footprint(design, tech, "sram_kib"), dram_bw=sum(s.dram_bw for s in design.subs),
                      clock_mhz=clock, mode=mode)


def _chip_dict(design: HeteroDesign) -> dict[str, Any]:
    """The chip without its per-layer assignment (each layer record names its sub in ``engine``)."""
    return {"technology": design.technology, "sub_accelerators": [s.to_dict() for s in design.subs]}


def _cost_or_none(sub: SubAccelerator, workload: Workload, tech: Technology, clock: float) -> AsicNetworkCost | None:
    """``workload`` on ``sub``, or None when the sub cannot map one of its layers."""
    try:
        return sub_template(sub.template).cost(workload, sub.design, tech.name, clock_mhz=clock)
    except HardwareError:
        return None


def _uncosted(workload: Workload, design: HeteroDesign) -> tuple[Uncosted, ...]:
    """The ops without cycles of their own on the chip (the first sub's template explains them)."""
    return sub_template(design.subs[0].template).op_table(workload.layers).uncosted


def _footprint(design: HeteroDesign, tech: Technology, part: str) -> float:
    """The chip's PEs, buffer KiB or area (``part`` of ``Footprint``): the sum over its subs."""
    return float(sum(getattr(sub_template(s.template).footprint([s.design], tech), part)[0] for s in design.subs))


def _layer_assignment(workload: Workload, design: HeteroDesign, tech: Technology,
                      clock: float) -> tuple[dict[str, str], list[LayerCost]]:
    """HERALD-style: each layer on its fixed or fastest sub (ties: lower energy, first sub);
    per-layer records whose ``engine`` names the sub."""
    tables = op_tables([s.template for s in design.subs], workload.layers)
    names = next(iter(tables.values())).names
    unknown = sorted(set(design.assignment) - set(names))
    if unknown:
        raise ConfigError(f"The assignment names layers {unknown[:5]} that {workload.name!r} does not have.",
                          "Assign names of ops with cycles from `nn2hw analyze` (the 'layer' column).")
    per_sub = []
    for sub in design.subs:
        template, table = sub_template(sub.template), tables[sub.template]
        arrays = template.arrays(table, [sub.design], tech)
        ok = arrays.mappable()[0] & (template.maps_depthwise | ~table.depthwise)
        records = network_cost(sub.template, tech, sub.design.to_dict(), table, arrays, 0, clock).layers
        per_sub.append((sub, records, ok))
    chosen: dict[str, str] = {}
    layers: list[LayerCost] = []
    for i, name in enumerate(names):
        options = [(records[i].cycles, records[i].energy_mj, k) for k, (s, records, ok) in enumerate(per_sub)
                   if ok[i] and design.assignment.get(name, s.name) == s.name]
        if not options:
            raise HardwareError(f"Layer {name!r} ({per_sub[0][1][i].op}) cannot run on any sub-accelerator allowed for "
                                f"it ({', '.join(s.name for s, _, _ in per_sub)}).",
                                "Add a sub-accelerator that maps it (shidiannao, systolic or eyeriss map depthwise "
                                "layers) or change its assignment.")
        sub, records, _ = per_sub[min(options)[2]]
        layers.append(replace(records[i], engine=sub.name))
        chosen[name] = sub.name
    return chosen, layers


def budget_use(system: SystemCost, budgets: Budgets | None) -> tuple[ResourceUse, ...]:
    """The chip's PEs, area, buffers and DRAM bandwidth against the budgets that are set."""
    if budgets is None:
        return ()
    return budgets.resources(system.pes, system.area_mm2, system.sram_kib, system.dram_bw)


def system_record(system: SystemCost, budgets: Budgets | None = None) -> AsicNetworkCost:
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
        layers=layers, uncosted=uncosted, resources=budget_use(system, budgets), area_mm2=system.area_mm2,
        notes=(f"networks run in parallel, each on its sub-accelerator: {where}; latency = the busiest sub's time, "
               "energy and area = sums",), technology=system.design.technology, parallel_engines=True)
