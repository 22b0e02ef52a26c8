"""The hardware side of the relaxation: exact costs of index vectors on one accelerator design, and
per-choice cost tables (FBNet's lookup tables, built with the template's own cost model).

NumPy only, no torch: the cost model stays torch-free and the supernet's loss reads these arrays.
A table entry is what one choice alone changes on the current design (every other relaxed
dimension at its base choice); the tables' sum is exact where the changes do not interact
(one changed dimension, or changes on layers the template costs independently) and an estimate
where they do (a channel cut and a bit width on the same layer, a pipeline's slowest stage),
which is why the supernet's hardware term takes its value from the exact cost and only its
gradient from the tables, and why every derived candidate reports the tables' estimate next to its
exact cost (the relaxed vs exact gap).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nn2hw.errors import ConfigError, HardwareError, InfeasibleError, PlanError
from nn2hw.hardware.records import NetworkCost

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext
    from nn2hw.space import Dimension

RELAXED_TECHNIQUES = ("kernel_pattern", "quantize", "channel_cut")
"""The techniques the supernet relaxes; every other dimension stays at its choice 0 (unchanged)."""
HW_METRICS = ("latency_ms", "energy_mj")
"""The spec'd metrics the hardware term carries (area depends on the design, not the choices)."""
FAILED_PENALTY = 10.0
"""A choice that no design can run costs this many times the base network in the tables."""


def relaxed_positions(dimensions: Sequence[Dimension]) -> tuple[int, ...]:
    """The indices of the space's dimensions the supernet relaxes."""
    return tuple(i for i, d in enumerate(dimensions) if d.technique in RELAXED_TECHNIQUES)


def weighed_metrics(limits: Mapping[str, float], modelled: Callable[[str], bool], hardware: str) -> tuple[str, ...]:
    """The spec'd metrics (``limits``) the hardware term weighs, those of ``HW_METRICS`` the hardware
    models; a ``ConfigError`` when there is none."""
    found = tuple(m for m in HW_METRICS if m in limits and modelled(m))
    if not found:
        raise ConfigError(f"The differentiable strategy puts latency or energy into its loss, and this search's specs "
                          f"({', '.join(limits)}) name neither on {hardware}.",
                          "Give --latency-ms (or --energy-mj on a template that models energy), or use a discrete "
                          "strategy.")
    return found


def hardware_metrics(ctx: SearchContext) -> tuple[str, ...]:
    """The spec'd metrics the hot-start relaxation weighs (those the base network's cost has)."""
    return weighed_metrics(ctx.spec.limits, lambda m: getattr(ctx.base_cost, m) is not None, ctx.settings.hardware)


class ExactCosts:
    """The cost-model values (``metrics``) of index vectors over the whole space on a given design,
    memoized: the non-relaxed model a derived candidate is judged by, at the supernet's pace."""

    def __init__(self, ctx: SearchContext, metrics: Sequence[str]) -> None:
        self.ctx = ctx
        self.metrics = tuple(metrics)
        self.limits = np.array([ctx.spec.limits[m] for m in self.metrics], dtype=np.float64)
        self._memo: dict[tuple[Any, ...], np.ndarray | None] = {}

    def vector(self, positions: Sequence[int], choices: Sequence[int]) -> tuple[int, ...]:
        """The index vector over every dimension with ``choices`` at the relaxed ``positions`` (others 0)."""
        found = [0] * len(self.ctx.space.dimensions)
        for position, choice in zip(positions, choices):
            found[position] = int(choice)
        return tuple(found)

    def on(self, vector: tuple[int, ...], design: Any) -> np.ndarray | None:
        """The metrics of ``vector`` on ``design`` (None when that design cannot run it)."""
        key = (vector, repr(design))
        if key not in self._memo:
            cost = self._cost(vector, design)
            self._memo[key] = None if cost is None else self.values(cost)
        return self._memo[key]

    def values(self, cost: NetworkCost) -> np.ndarray:
        return np.array([float(getattr(cost, m)) for m in self.metrics], dtype=np.float64)

    def best(self, vector: tuple[int, ...]) -> NetworkCost | None:
        """``vector`` on its own best design (the template's DSE), as a trial costs it."""
        try:
            return self.ctx.target.best(self.ctx.workloads(self.ctx.space.decode(vector).plans))
        except (PlanError, InfeasibleError, HardwareError):
            return None

    def _cost(self, vector: tuple[int, ...], design: Any) -> NetworkCost | None:
        try:
            return self.ctx.target.recost(self.ctx.workloads(self.ctx.space.decode(vector).plans), design)
        except (PlanError, InfeasibleError, HardwareError):
            return None


@dataclass(frozen=True)
class CostTables:
    """Per relaxed position, what each choice alone changes on ``design``: ``deltas[p][c]`` (one
    value per metric) over ``base``, the unchanged network's cost there."""

    metrics: tuple[str, ...]
    design: Any
    base: np.ndarray
    deltas: tuple[np.ndarray, ...]

    def table(self, choices: Sequence[int]) -> np.ndarray:
        """The tables' estimate of an architecture (one choice per position): base plus its deltas."""
        return self.base + sum((d[c] for d, c in zip(self.deltas, choices)), np.zeros_like(self.base))

    def expected(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """The expected cost under independent per-position distributions (FBNet's expectation)."""
        return self.base + sum((p @ d for p, d in zip(probs, self.deltas)), np.zeros_like(self.base))


def build_tables(exact: ExactCosts, positions: Sequence[int], counts: Sequence[int], design: Any) -> CostTables:
    """The cost tables of the relaxed ``positions`` on ``design`` (one exact costing per choice)."""
    zero = exact.vector(positions, [0] * len(positions))
    base = exact.on(zero, design)
    if base is None:
        raise InfeasibleError(f"The design the search picked cannot run the unchanged network ({design!r}).",
                              "Report this: a design found for a network runs its unchanged base.")
    deltas = []
    for p, count in enumerate(counts):
        rows = np.zeros((count, len(base)))
        for c in range(1, count):
            choices = [0] * len(positions)
            choices[p] = c
            found = exact.on(exact.vector(positions, choices), design)
            rows[c] = FAILED_PENALTY * base if found is None else found - base
        deltas.append(rows)
    return CostTables(exact.metrics, design, base, tuple(deltas))
