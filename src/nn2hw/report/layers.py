"""The per-layer table of a search, in the style of HotNAS: what limited each layer on the base
design, which technique the search applied, the choice, and the latency it saved. Each
registered transform names itself (``label``) and describes its choice (``describe``)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from nn2hw.compress import Transform, ordered_transforms
from nn2hw.hardware.records import NetworkCost
from nn2hw.plan import LayerChoice, Plan
from nn2hw.workload import Workload


@dataclass(frozen=True)
class LayerRow:
    """One layer: base and solution latency on their own best designs, and what changed."""

    layer: str
    bottleneck: str
    technique: str
    choice: str
    base_ms: float
    solution_ms: float

    @property
    def saved_ms(self) -> float:
        return self.base_ms - self.solution_ms

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "saved_ms": self.saved_ms}


def describe_choice(choice: LayerChoice, before: Workload, after: Workload, name: str) -> str:
    """'64->48 ch; 4 patterns, 6/9 kept; 8-bit weights' from each transform the choice selects (a
    layer the plan removed, e.g. with its block, is described by what removed it: a cut or a bit
    width of a layer that is gone changes nothing)."""
    old = before.layer(name)
    new = after.layer(name) if name in after else old
    selected = [t for t in ordered_transforms() if t.selects(choice)]
    if name not in after:
        selected = [t for t in selected if _removes_layers(t)] or selected
    parts = [t.describe(t.read(choice, name), old, new) for t in selected]
    if not parts and old.in_channels != new.in_channels:
        parts.append(f"{old.in_channels}->{new.in_channels} input ch (follows a cut)")
    return "; ".join(p for p in parts if p) or "-"


def layer_rows(base: NetworkCost, solution: NetworkCost, bottlenecks: Mapping[str, str], plan: Plan,
               before: Workload, after: Workload, prefix: str = "") -> list[LayerRow]:
    """Rows for every layer the cost model costed, in network order. ``prefix`` selects one
    network's layers of a multi-network chip (named 'network/layer')."""
    solved = {c.name: c for c in solution.layers}
    known = {layer.name for layer in before.layers}
    rows = []
    for cost in base.layers:
        if not cost.name.startswith(prefix):
            continue
        name = cost.name[len(prefix):]
        if name not in known:  # a runtime's own kernel or overhead (a measured CPU), not a layer
            after_ms = solved[cost.name].latency_ms if cost.name in solved else 0.0
            rows.append(LayerRow(cost.name, cost.bottleneck, "-", "-", cost.latency_ms, after_ms))
            continue
        choice = plan.choices.get(name, LayerChoice())
        technique = ", ".join(t.label for t in ordered_transforms() if t.selects(choice)) or _follows(before, after,
                                                                                                     name)
        after_ms = solved[cost.name].latency_ms if cost.name in solved else 0.0
        described = describe_choice(choice, before, after, name) if technique != REMOVED else "-"
        rows.append(LayerRow(cost.name, bottlenecks.get(name, cost.bottleneck), technique, described,
                             cost.latency_ms, after_ms))
    return rows


def _removes_layers(transform: Transform) -> bool:
    """Whether ``transform`` rewrites the workload beyond field changes (removes layers)."""
    return type(transform).rewrite is not Transform.rewrite


REMOVED = "removed with a dropped block"
"""The technique column of a layer the plan removed without choosing it (a dropped block's
softmax, norms, adds and matrix products): it is gone from the solution (0 ms there)."""


def _follows(before: Workload, after: Workload, name: str) -> str:
    """Why a layer the plan does not choose changed: removed with its block, or a cut before it."""
    if name not in after:
        return REMOVED
    return "follows a cut" if before.layer(name).in_channels != after.layer(name).in_channels else "-"


def write_layers_csv(path: str | Path, rows: list[LayerRow]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].to_dict()) if rows else ["layer"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.to_dict().items()})
    return path
