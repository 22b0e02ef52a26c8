"""The hardware side of a candidate: its best design on a template, found by the vectorized DSE.

``HardwareTarget`` wraps a registered template, a device and cost options; ``best`` runs the
template's design-space exploration on a candidate workload (or on several networks sharing one
heterogeneous chip) with the grid axes the strategy fixed (hardware knobs), so every candidate is
costed on the best design for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.hardware.base import TEMPLATES, HardwareTemplate, get_template
from nn2hw.hardware.records import NetworkCost
from nn2hw.space import Dimension, knob_dimension
from nn2hw.spec import Spec
from nn2hw.workload import Workload


@dataclass(frozen=True)
class HardwareTarget:
    """A template + device + options (+ grid overrides) that costs workloads on their best design,
    meeting ``spec`` on templates that honour specs in their exploration."""

    name: str
    template: HardwareTemplate
    device: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Any] = field(default_factory=dict)
    spec: Spec = field(default_factory=Spec)

    @classmethod
    def parse(cls, name: str, options: Mapping[str, Any] | None = None, grid: Mapping[str, Any] | None = None,
              specs: Mapping[str, float] | None = None) -> HardwareTarget:
        """The target 'TEMPLATE[:DEVICE]' with its options; a spec on a metric the template does
        not model is refused here, naming the templates that model it."""
        template, device = get_template(name)
        spec = Spec.from_mapping(specs or {})
        for metric in spec.limits:
            if metric not in template.metrics:
                models = [n for n, t in TEMPLATES.items() if metric in t.metrics]
                raise ConfigError(f"The {template.name} template does not model {metric.split('_')[0]}, so a "
                                  f"{metric} spec cannot be met or checked on it.",
                                  f"Drop --{metric.replace('_', '-')}, or use a template that models it: "
                                  f"{', '.join(models)}.")
        return cls(name, template, device, dict(options or {}), dict(grid or {}), spec)

    def best(self, workloads: Workload | Mapping[str, Workload], knobs: Mapping[str, Any] | None = None) -> NetworkCost:
        """The cost on the best feasible design (knobs pin grid axes) of one workload, or of
        several networks sharing one chip (``multi_network`` templates, e.g. hetero).

        With latency, energy or area specs on a template that honours them, the best design
        *meeting* them; when none does, the objective's best, whose miss the search records."""
        grid = {**self.grid, **{k: [v] for k, v in (knobs or {}).items()}} or None
        if self.spec.limits and self.template.honours_specs:
            try:
                return self._explore(workloads, grid, {**self.options, "specs": self.spec})
            except InfeasibleError:
                pass  # no design meets every spec
        return self._explore(workloads, grid, self.options)

    def _explore(self, workloads: Workload | Mapping[str, Workload], grid: Any, options: Mapping[str, Any]
                 ) -> NetworkCost:
        several = self._several(workloads)
        if several is None:
            return self.template.explore(self._single(workloads), self.device, grid, **options).best
        return self.template.explore_networks(several, self.device, grid, **options).best

    def recost(self, workloads: Workload | Mapping[str, Workload], design: Any) -> NetworkCost:
        """The cost on one exact design (the guarantee re-check)."""
        several = self._several(workloads)
        if several is None:
            return self.template.cost(self._single(workloads), design, self.device, **self.options)
        return self.template.cost_networks(several, design, self.device, **self.options)

    @staticmethod
    def _single(workloads: Workload | Mapping[str, Workload]) -> Workload:
        return workloads if isinstance(workloads, Workload) else next(iter(workloads.values()))

    def _several(self, workloads: Workload | Mapping[str, Workload]) -> dict[str, Workload] | None:
        """The networks when there are several, else None (a one-network template refuses them)."""
        if isinstance(workloads, Workload) or len(workloads) == 1:
            return None
        return dict(workloads)

    def knob_dimensions(self, workload: Workload) -> list[Dimension]:
        """One dimension per knob axis with several values: 'auto' (the DSE picks) or one value."""
        ranges = self.template.knob_axes(workload)
        dims = []
        for name, values in ranges.items():
            if name in self.grid or len(values) < 2:
                continue  # the user fixed it, or there is nothing to choose
            dims.append(knob_dimension(name, values))
        return dims
