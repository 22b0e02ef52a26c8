"""Design specs (latency, energy, area) as constraints: feasible when every g = value - limit <= 0.

One record serves the search (scalar violations of one cost, for trials and the guarantee) and
the templates' explorations (a vectorized mask over many designs). A limit left None is not
checked; a template that does not model a metric cannot be held to a spec on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nn2hw._checks import as_float
from nn2hw.errors import ConfigError

METRICS = ("latency_ms", "energy_mj", "area_mm2")
UNITS = {"latency_ms": "ms", "energy_mj": "mJ", "area_mm2": "mm2"}
MASK_RTOL = 1e-12
"""Relative slack of the vectorized mask: a design whose float sum lands a rounding error above a
limit it meets exactly is kept; the scalar ``violations`` (the guarantee) stay strict."""


@dataclass(frozen=True)
class Spec:
    """Upper limits a solution must meet under the cost model; unset limits are not checked."""

    latency_ms: float | None = None
    energy_mj: float | None = None
    area_mm2: float | None = None

    def __post_init__(self) -> None:
        for name in METRICS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_float(value, f"the {name} spec"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Spec:
        """A spec from ``{metric: limit}`` (e.g. ``--hw-param latency_ms=0.5``); unknown metrics are an error."""
        unknown = sorted(set(data) - set(METRICS))
        if unknown:
            raise ConfigError(f"Unknown spec metric(s) {unknown}.", f"Specs may limit: {', '.join(METRICS)}.")
        return cls(**dict(data))

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by metric."""
        return {name: float(getattr(self, name)) for name in METRICS if getattr(self, name) is not None}

    def require(self) -> Spec:
        """This spec, or a ``ConfigError`` when it sets no limit (a search needs at least one)."""
        if not self.limits:
            raise ConfigError("No design spec was given.", "Give at least --latency-ms (or --energy-mj / --area-mm2).")
        return self

    def value(self, cost: Any, name: str) -> float:
        """The metric ``name`` of a cost record; a ``ConfigError`` when its template does not model it."""
        value = getattr(cost, name)
        if value is None:
            raise ConfigError(f"The {cost.template} template does not model {name.split('_')[0]}, so the "
                              f"{name} spec cannot be checked.",
                              f"Drop --{name.replace('_', '-')}, or use a template that models it.")
        return float(value)

    def violations(self, cost: Any) -> dict[str, float]:
        """g per limit: value - limit (<= 0 means met)."""
        return {name: self.value(cost, name) - limit for name, limit in self.limits.items()}

    def met(self, cost: Any) -> bool:
        return all(g <= 0 for g in self.violations(cost).values())

    def mask(self, latency_ms: np.ndarray, energy_mj: np.ndarray, area_mm2: np.ndarray) -> npt.NDArray[np.bool_]:
        """Which of many designs meet every limit (vectorized; see ``MASK_RTOL``)."""
        ok = np.ones(np.shape(latency_ms), dtype=bool)
        for value, limit in ((latency_ms, self.latency_ms), (energy_mj, self.energy_mj), (area_mm2, self.area_mm2)):
            if limit is not None:
                ok &= value <= limit * (1 + MASK_RTOL)
        return ok

    def describe_miss(self, cost: Any) -> str:
        """'latency 0.31 ms > spec 0.25 ms' for every limit missed ('' when all are met)."""
        return "; ".join(f"{name.split('_')[0]} {self.value(cost, name):.6g} {UNITS[name]} > spec {limit:.6g} "
                         f"{UNITS[name]}" for name, limit in self.limits.items() if self.value(cost, name) > limit)

    def to_dict(self) -> dict[str, float]:
        return self.limits
