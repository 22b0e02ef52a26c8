"""The hardware side of a candidate: its best design on a template, found by the vectorized DSE.

``HardwareTarget`` wraps a registered template, a device and cost options; ``best`` runs the
template's design-space exploration on a candidate workload (or on several networks sharing one
heterogeneous chip) with the grid axes the strategy fixed (hardware knobs), so every candidate is
costed on the best design for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.hardware.base import HardwareTemplate, NetworkCost, get_template
from nn2hw.space import Dimension
from nn2hw.workload import Workload


@dataclass(frozen=True)
class HardwareTarget:
    """A template + device + options (+ grid overrides) that costs workloads on their best design."""

    spec: str
    template: HardwareTemplate
    device: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Any] = field(default_factory=dict)
    specs: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str, options: Mapping[str, Any] | None = None, grid: Mapping[str, Any] | None = None,
              specs: Mapping[str, float] | None = None) -> HardwareTarget:
        template, device = get_template(spec)
        return cls(spec, template, device, dict(options or {}), dict(grid or {}), dict(specs or {}))

    def best(self, workloads: Workload | Mapping[str, Workload], knobs: Mapping[str, Any] | None = None) -> NetworkCost:
        """The cost on the best feasible design (knobs pin grid axes) of one workload, or of
        several networks sharing one chip (templates with ``explore_networks``, e.g. hetero).

        With latency, energy or area ``specs`` on a template that honours them, the best design
        *meeting* them; when none does, the objective's best, whose miss the search records."""
        grid = {**self.grid, **{k: [v] for k, v in (knobs or {}).items()}} or None
        if self.specs and self.template.honours_specs:
            from nn2hw.hardware.asic._common import Specs

            try:
                return self._explore(workloads, grid, {**self.options, "specs": Specs(**self.specs)})
            except InfeasibleError:
                pass  # no design meets every spec
        return self._explore(workloads, grid, self.options)

    def _explore(self, workloads: Workload | Mapping[str, Workload], grid: Any, options: Mapping[str, Any]
                 ) -> NetworkCost:
        several = self._several(workloads)
        if several is None:
            single = workloads if isinstance(workloads, Workload) else next(iter(workloads.values()))
            return self.template.explore(single, self.device, grid, **options).best
        return self.template.explore_networks(several, self.device, grid, **options).best

    def recost(self, workloads: Workload | Mapping[str, Workload], design: Any) -> NetworkCost:
        """The cost on one exact design (the guarantee re-check)."""
        several = self._several(workloads)
        if several is None:
            single = workloads if isinstance(workloads, Workload) else next(iter(workloads.values()))
            return self.template.cost(single, design, self.device, **self.options)
        return self.template.cost_networks(several, design, self.device, **self.options)

    def _several(self, workloads: Workload | Mapping[str, Workload]) -> dict[str, Workload] | None:
        """The networks when there are several (checking the template can host them), else None."""
        if isinstance(workloads, Workload) or len(workloads) == 1:
            return None
        if not hasattr(self.template, "explore_networks"):
            raise ConfigError(
                f"Several networks ({', '.join(workloads)}) share one chip only on a heterogeneous template; "
                f"{self.template.name!r} runs one network.",
                "Use --hardware hetero (sub-accelerators under shared PE, bandwidth and area budgets), or search "
                "one model at a time.")
        return dict(workloads)

    def knob_dimensions(self, workload: Workload) -> list[Dimension]:
        """One dimension per grid axis with several values: 'auto' (the DSE picks) or one value."""
        ranges = self.template.default_grid(workload)
        dims = []
        for name, values in ranges.items():
            if name in self.grid or len(values) < 2:
                continue  # the user fixed it, or there is nothing to choose
            dims.append(Dimension(f"hw:{name}", "hardware", (), (None, *({name: v} for v in values)),
                                  ("auto", *(f"{name}={v}" for v in values)), leanest=0))
        return dims

    def identity(self) -> dict[str, Any]:
        return {"hardware": self.spec, "options": dict(self.options), "grid": {k: _plain(v) for k, v in
                                                                                self.grid.items()}}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
