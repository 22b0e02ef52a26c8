"""Small training sets for predictor tests: channel-cut variants of a network with latencies ~ MACs."""

from __future__ import annotations

from nn2hw.compress import apply_plan, with_uniform_cut
from nn2hw.plan import Plan
from nn2hw.workload import Workload

KEEPS = (0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0)


def cut(base: Workload, keep: float) -> Workload:
    """``base`` with every cuttable layer keeping ``keep`` of its channels, renamed after it."""
    if keep == 1.0:
        return base
    variant = apply_plan(with_uniform_cut(Plan.for_workload(base, base.name), base, keep), base)
    return Workload(f"{base.name}-keep{keep:g}", variant.layers, variant.input_shape, variant.outputs, variant.source)


def synthetic_ms(workload: Workload) -> float:
    """A device that costs 0.05 ms per network, 1 us per layer and 0.1 ms per million MACs."""
    return 0.05 + 1e-3 * len(workload) + 1e-7 * workload.macs


def cut_variants(base: Workload, keeps: tuple[float, ...] = KEEPS) -> tuple[list[Workload], list[float]]:
    workloads = [cut(base, keep) for keep in keeps]
    return workloads, [synthetic_ms(w) for w in workloads]
