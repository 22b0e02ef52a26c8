"""Design specs (latency, energy, area) as constraints: feasible when every g = value - limit <= 0."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nn2hw.errors import ConfigError
from nn2hw.hardware.base import NetworkCost

METRICS = ("latency_ms", "energy_mj", "area_mm2")


@dataclass(frozen=True)
class Spec:
    """Upper limits a solution must meet under the cost model; unset limits are not checked."""

    latency_ms: float | None = None
    energy_mj: float | None = None
    area_mm2: float | None = None

    def __post_init__(self) -> None:
        for name in METRICS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"The {name} spec must be a positive number, got {value!r}.",
                                  f"Give e.g. --{name.replace('_', '-')} 1.5.")
        if not self.limits:
            raise ConfigError("No design spec was given.", "Give at least --latency-ms (or --energy-mj / --area-mm2).")

    @property
    def limits(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in METRICS if getattr(self, name) is not None}

    def value(self, cost: NetworkCost, name: str) -> float:
        """The metric ``name`` of a cost; a ``ConfigError`` when the template does not model it."""
        value = getattr(cost, name)
        if value is None:
            raise ConfigError(f"The {cost.template} template does not model {name.split('_')[0]}, so the "
                              f"{name} spec cannot be checked.",
                              f"Drop --{name.replace('_', '-')}, or use a template that models it "
                              f"(systolic, nvdla, shidiannao, eyeriss, hetero).")
        return float(value)

    def violations(self, cost: NetworkCost) -> dict[str, float]:
        """g per limit: value - limit (<= 0 means met)."""
        return {name: self.value(cost, name) - limit for name, limit in self.limits.items()}

    def met(self, cost: NetworkCost) -> bool:
        return all(g <= 0 for g in self.violations(cost).values())

    def describe_miss(self, cost: NetworkCost) -> str:
        """'latency 0.31 ms > spec 0.25 ms' for every limit missed ('' when all are met)."""
        units = {"latency_ms": "ms", "energy_mj": "mJ", "area_mm2": "mm2"}
        return "; ".join(f"{name.split('_')[0]} {self.value(cost, name):.6g} {units[name]} > spec {limit:.6g} "
                         f"{units[name]}" for name, limit in self.limits.items() if self.value(cost, name) > limit)

    def to_dict(self) -> dict[str, float]:
        return self.limits
