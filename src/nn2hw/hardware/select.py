"""Picking designs: the Pareto front, the best feasible design, and the designs meeting specs.

Shared by every template's exploration (FPGA, ASIC arrays, heterogeneous chips) and by the
reports, so that "best" and "Pareto-optimal" mean one thing, deterministically (ties go to the
first design in grid order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nn2hw.errors import InfeasibleError
from nn2hw.hardware._types import Mask
from nn2hw.spec import Spec

MAX_PARETO = 32
"""The most Pareto designs an exploration reports by default (the ``max_pareto`` option)."""


def pareto_front(points: np.ndarray, valid: np.ndarray) -> list[int]:
    """Indices of the valid rows of ``points`` (minimize every column) that no other valid row
    dominates; of identical rows only the first is kept. Sorted by index."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return []
    pts = points[idx]
    order = np.lexsort(tuple(pts[:, c] for c in reversed(range(pts.shape[1]))))
    # of rows equal in every column but the first, only the first in lexicographic order can survive
    _, first = np.unique(pts[order][:, 1:], axis=0, return_index=True)
    order = order[np.sort(first)]
    kept = np.empty((len(order), pts.shape[1]))
    keep: list[int] = []
    for j in order:  # in lexicographic order a point can only be dominated by one kept before it
        if keep and np.any(np.all(kept[:len(keep)] <= pts[j], axis=1)):
            continue
        kept[len(keep)] = pts[j]
        keep.append(int(idx[j]))
    return sorted(keep)


def reported_front(points: np.ndarray, ok: np.ndarray, best: int, limit: int) -> list[int]:
    """The Pareto front of the ``ok`` rows of ``points`` as an exploration reports it: at most
    ``limit`` designs, the fastest first (the first column, then index), plus ``best`` always;
    sorted by the first column, then index."""
    def key(i: int) -> tuple[float, int]:
        return float(points[i, 0]), i

    front = sorted(pareto_front(points, ok), key=key)[:limit]
    return sorted(set(front) | {best}, key=key)


def pick_best(keys: Sequence[np.ndarray], ok: np.ndarray, rtol: float = 0.0, atol: float = 0.0) -> int:
    """The ``ok`` design minimizing ``keys`` lexicographically, then the first in grid order.

    Values of the first key within ``rtol``/``atol`` of its minimum count as equal (the FPGA
    template's authors compare cycle counts with a strict ``<`` in loop order).
    """
    first = np.where(ok, keys[0], np.inf)
    best = first.min()
    tied = ok & (first <= best * (1 + rtol) + atol)
    ranked = [np.where(tied, key, np.inf) for key in (np.where(tied, 0.0, np.inf), *keys[1:])]
    return int(np.lexsort((np.arange(ok.size), *reversed(ranked)))[0])


def meeting_specs(spec: Spec, scores: Mapping[str, np.ndarray], ok: Mask, label: str) -> Mask:
    """The designs of ``ok`` that also meet ``spec``; ``InfeasibleError`` with the best reachable
    values when there are none."""
    meets = ok & spec.mask(scores["latency_ms"], scores["energy_mj"], scores["area_mm2"])
    if meets.any():
        return meets
    reach = {k: float(scores[k][ok].min()) for k in ("latency_ms", "energy_mj", "area_mm2")}
    raise InfeasibleError(
        f"No {label} meets the specs ({', '.join(f'{k}={v}' for k, v in spec.limits.items())}); "
        f"the best reachable are {reach['latency_ms']:.4g} ms, {reach['energy_mj']:.4g} mJ and "
        f"{reach['area_mm2']:.4g} mm^2 (each on its own design).",
        "Relax the specs to those values, raise the budgets, or widen the design grid.",
        best_bound=reach["latency_ms"])


def grid_values(value: Any) -> list[Any]:
    """Grid values from a list, a comma-separated string ('16,32') or one value."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
