"""How well an nn2hw template ranks architectures the way a HW-NAS-Bench device does.

A co-search only needs its cost model to *order* candidates as the device would, so the figure
that matters is rank agreement: Kendall's tau-b and Spearman's rho between the template's cost of
a seeded sample of FBNet architectures and one of HW-NAS-Bench's metrics for the same
architectures (``query_fbnet``). The template costs each architecture on the design that
``hw_params`` fix, or on its best design (its design-space exploration) when they fix none, as
``nn2hw analyze`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn2hw.bench.fbnet import fbnet_workload, random_arch
from nn2hw.bench.hwnasbench import FBNET_METRICS, Tables, load_fbnet_tables, query_fbnet
from nn2hw.errors import ConfigError
from nn2hw.hardware import get_template
from nn2hw.hardware.base import HardwareTemplate
from nn2hw.predict.check import kendall_tau
from nn2hw.workload import Workload

MIN_SAMPLES = 3


@dataclass(frozen=True)
class ArchCost:
    """One sampled architecture: its encoding, the template's value and the benchmark's."""

    arch: tuple[int, ...]
    template_value: float
    benchmark_value: float


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of ``hardware`` with HW-NAS-Bench's ``metric`` over ``samples`` architectures."""

    hardware: str
    metric: str
    dataset: str
    seed: int
    kendall_tau: float
    spearman_rho: float
    samples: tuple[ArchCost, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"hardware": self.hardware, "metric": self.metric, "dataset": self.dataset, "seed": self.seed,
                "kendall_tau": self.kendall_tau, "spearman_rho": self.spearman_rho, "count": len(self.samples),
                "samples": [{"arch": list(s.arch), "template": s.template_value, "hwnasbench": s.benchmark_value}
                            for s in self.samples]}


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the average ranks (ties share their mean rank); NaN when either
    is constant."""
    rx, ry = _average_ranks(x), _average_ranks(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def rank_agreement(hardware: str, metric: str, samples: int = 50, seed: int = 0, dataset: str = "cifar100",
                   hw_params: Mapping[str, Any] | None = None, tables: Tables | None = None) -> Agreement:
    """Kendall's tau and Spearman's rho between ``hardware``'s cost and HW-NAS-Bench's ``metric``
    (e.g. ``eyeriss_latency``, ``fpga_energy``) over ``samples`` seeded random FBNet architectures."""
    if metric not in FBNET_METRICS:
        raise ConfigError(f"HW-NAS-Bench has no FBNet metric {metric!r}.",
                          f"Choose one of {', '.join(FBNET_METRICS)}.")
    if samples < MIN_SAMPLES:
        raise ConfigError(f"A rank agreement needs at least {MIN_SAMPLES} architectures, got {samples}.",
                          "Pass --samples 50 or more for a tau worth quoting.")
    template, device = get_template(hardware)
    if template.measured:
        raise ConfigError(f"The {template.name} template measures this machine; HW-NAS-Bench's devices are others.",
                          "Compare an analytical template (fpga, eyeriss, systolic, ...).")
    design_params, options = template.split_params(dict(hw_params or {}))
    design = template.design_from_params(design_params)
    tables = load_fbnet_tables() if tables is None else tables
    rng = np.random.default_rng(seed)
    costed = []
    for _ in range(samples):
        arch = random_arch(rng)
        value = _template_value(template, device, design, design_params, options, fbnet_workload(arch, dataset),
                                metric)
        costed.append(ArchCost(arch, value, query_fbnet(arch, dataset, tables)[metric]))
    ours = np.array([c.template_value for c in costed])
    theirs = np.array([c.benchmark_value for c in costed])
    return Agreement(f"{template.name}:{device}" if device else template.name, metric, dataset, seed,
                     kendall_tau(ours, theirs), spearman_rho(ours, theirs), tuple(costed))


def _template_value(template: HardwareTemplate, device: str | None, design: Any, grid: Mapping[str, Any],
                    options: Mapping[str, Any], workload: Workload, metric: str) -> float:
    """The template's latency (ms) or energy (mJ) of ``workload``, as ``metric`` asks."""
    if design is not None:
        cost = template.cost(workload, design, device, **options)
    else:
        cost = template.explore(workload, device, grid=dict(grid) or None, **options).best
    if metric.endswith("_latency"):
        return cost.latency_ms
    if cost.energy_mj is None:
        raise ConfigError(f"The {template.name} template models no energy, so it cannot be ranked against {metric}.",
                          "Compare it with a latency metric, or use a template with an energy model "
                          "(eyeriss, systolic, nvdla, shidiannao).")
    return cost.energy_mj
