"""``hetero``, the registered template: one network's layers over a chip's sub-accelerators, or
several networks on one chip (NASAIC), costed and searched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from nn2hw._checks import as_int
from nn2hw.errors import ConfigError
from nn2hw.hardware.asic.hetero.chip import (
    HeteroDesign,
    SubAccelerator,
    SystemCost,
    SystemExploration,
    sub_template,
    sub_templates,
)
from nn2hw.hardware.asic.hetero.cost import budget_use, cost_system, system_record
from nn2hw.hardware.asic.hetero.search import explore
from nn2hw.hardware.asic.records import AsicNetworkCost
from nn2hw.hardware.asic.technology import load_technologies
from nn2hw.hardware.asic.template import COMMON_OPTIONS, AsicOps
from nn2hw.hardware.base import TEMPLATES, Option
from nn2hw.hardware.records import Exploration
from nn2hw.hardware.select import MAX_PARETO, grid_values
from nn2hw.workload import Workload


def _templates(value: Any) -> tuple[str, ...]:
    """The ``templates`` option: sub-accelerator template names (a list or 'systolic,nvdla'), each checked."""
    names = tuple(dict.fromkeys(str(v).strip() for v in grid_values(value) if str(v).strip()))
    if not names:
        raise ConfigError(f"templates={value!r} names no sub-accelerator template.",
                          f"Give one or more of {', '.join(sub_templates())}, comma-separated.")
    for name in names:
        sub_template(name)
    return names


class HeteroTemplate(AsicOps):
    """``hetero``: a chip of sub-accelerators of any registered ASIC-style template.

    A chip comes from a hardware file (``--hardware-file``; see ``nn2hw.hardware.asic.hwfile``) or
    ``parse_design`` parameters ``subs=TEMPLATE[:PRESET],...``; ``explore`` searches the chip
    under ``budgets`` and ``specs``; ``explore_networks``/``cost_networks`` run several networks.
    """

    name = "hetero"
    description = "heterogeneous chip of dataflow sub-accelerators (NASAIC multi-DNN / HERALD layer assignment)"
    multi_network = True
    options = (
        *COMMON_OPTIONS,
        Option("n_subs", lambda v: as_int(v, "n_subs", 1, 4), "sub-accelerators of a searched chip (1..4, default 2)"),
        Option("templates", _templates,
               "the sub-accelerator templates a searched chip may use (default: all ASIC-style)"),
    )

    def devices(self) -> Sequence[str]:
        return tuple(load_technologies())

    def design_fields(self) -> Sequence[str]:
        return ("subs", "technology")

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
        if isinstance(given, Mapping):
            return HeteroDesign.from_dict(given)
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
            design = sub_template(template).design_type.from_params({"preset": preset} if preset else {})
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
        return replace(system.networks[workload.name], resources=budget_use(system, options.get("budgets")))

    def _search(self, workloads: Mapping[str, Workload] | Workload, device: str | None, grid: Any,
                options: Mapping[str, Any]) -> SystemExploration:
        """The chip search under the options; ``grid`` maps sub templates to their grid axes (e.g.
        ``{"nvdla": {"atomic_c": [16, 32]}}``) and may name the ``technology``."""
        grid = dict(grid or {})
        technology = str(grid.pop("technology", device or "45nm"))
        bad = sorted(set(grid) - set(sub_templates()))
        if bad:
            raise ConfigError(f"Unknown hetero grid key(s) {bad}.",
                              f"Give per-template grids under {', '.join(sub_templates())}, or subs= to cost one chip.")
        return explore(workloads, options.get("budgets"), options.get("specs"), n_subs=options.get("n_subs", 2),
                       templates=options.get("templates"), space=grid or None, technology=technology,
                       clock_mhz=options.get("clock_mhz"), objective=options.get("objective", "latency_ms"),
                       max_pareto=options.get("max_pareto", MAX_PARETO))

    def explore(self, workload: Workload, device: str | None = None, grid: Any = None, **options: Any) -> Exploration:
        """Search a chip for one network (HERALD-style: each layer on its fastest sub)."""
        found = self._search(workload, device, grid, options)

        def record(system: SystemCost) -> AsicNetworkCost:  # what ``cost`` returns for the chip, costed once
            return replace(system.networks[workload.name], resources=budget_use(system, options.get("budgets")))

        return Exploration(best=record(found.best), pareto=tuple(record(s) for s in found.pareto),
                           n_designs=found.n_chips, n_feasible=found.n_feasible,
                           seconds=found.seconds, objective=found.objective)

    def explore_networks(self, workloads: Mapping[str, Workload], device: str | None = None, grid: Any = None,
                         **options: Any) -> Exploration:
        """Search a chip for several networks at once: each runs on one sub-accelerator, in
        parallel with the others (``system_record`` says how the result reads)."""
        found = self._search(dict(workloads), device, grid, options)
        budgets = options.get("budgets")
        return Exploration(best=system_record(found.best, budgets),
                           pareto=tuple(system_record(s, budgets) for s in found.pareto), n_designs=found.n_chips,
                           n_feasible=found.n_feasible, seconds=found.seconds, objective=found.objective)

    def cost_networks(self, workloads: Mapping[str, Workload], design: Any, device: str | None = None,
                      **options: Any) -> AsicNetworkCost:
        """Several networks on one given chip (its assignment kept, missing entries searched)."""
        if device is not None and device != design.technology:
            design = HeteroDesign(design.subs, device, design.assignment)
        system = cost_system(dict(workloads), design, clock_mhz=options.get("clock_mhz"))
        return system_record(system, options.get("budgets"))


TEMPLATES.register("hetero", HeteroTemplate())
