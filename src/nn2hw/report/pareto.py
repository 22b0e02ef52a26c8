"""Accuracy-latency Pareto fronts of a search, as CSV and PNG."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ParetoPoint:
    """A trained candidate: its trial number, latency (ms), top-1 (%) and whether it met every spec."""

    trial: int
    latency_ms: float
    top1: float
    feasible: bool


def pareto_front(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """Points no other point beats on both lower latency and higher accuracy, by latency."""
    front: list[ParetoPoint] = []
    for p in sorted(points, key=lambda p: (p.latency_ms, -p.top1, p.trial)):
        if not front or p.top1 > front[-1].top1:
            front.append(p)
    return front


def write_pareto_csv(path: str | Path, points: Sequence[ParetoPoint]) -> Path:
    path = Path(path)
    on_front = {p.trial for p in pareto_front(points)}
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["trial", "latency_ms", "top1", "feasible", "pareto"])
        writer.writeheader()
        for p in sorted(points, key=lambda p: p.trial):
            writer.writerow({**asdict(p), "pareto": p.trial in on_front})
    return path


def plot_pareto(path: str | Path, points: Sequence[ParetoPoint], spec_ms: float | None,
                base: tuple[float, float] | None = None, solution: tuple[float, float] | None = None,
                title: str = "") -> Path:
    """Scatter of trained candidates (latency vs top-1), the front, the spec, base and solution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    ok = [p for p in points if p.feasible]
    miss = [p for p in points if not p.feasible]
    if miss:
        ax.scatter([p.latency_ms for p in miss], [p.top1 for p in miss], s=14, c="#bbbbbb", label="misses a spec")
    if ok:
        ax.scatter([p.latency_ms for p in ok], [p.top1 for p in ok], s=16, c="#4c72b0", label="meets the specs")
    front = pareto_front(points)
    if front:
        ax.step([p.latency_ms for p in front], [p.top1 for p in front], where="post", c="#dd8452", lw=1.2,
                label="Pareto front")
    if spec_ms is not None:
        ax.axvline(spec_ms, ls="--", c="#c44e52", lw=1, label=f"spec {spec_ms:.4g} ms")
    if base is not None:
        ax.scatter([base[0]], [base[1]], marker="s", s=50, c="black", label="base model")
    if solution is not None:
        ax.scatter([solution[0]], [solution[1]], marker="*", s=140, c="#55a868", label="solution")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
