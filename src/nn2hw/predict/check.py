"""How good a latency predictor is on measurements it never saw: nn-Meter's and HELP's figures.

``Accuracy`` holds the fraction of networks predicted within +-5 % and +-10 % of the measured
latency, the root-mean-square percentage error and Kendall's tau-b between predicted and measured
latencies (what a search needs: the right order). Kernel-level predictors add the same per kernel
type (``kernel_accuracy``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nn2hw.errors import ConfigError
from nn2hw.predict.base import Predictor, check_latencies
from nn2hw.workload import Workload

if TYPE_CHECKING:
    from rich.table import Table

FloatArray = npt.NDArray[np.float64]
_TAU_CHUNK = 512
"""Rows of the pair matrix taken at once by ``kendall_tau`` (memory ~ chunk x n)."""


@dataclass(frozen=True)
class Accuracy:
    """Predicted against measured latencies of ``n`` held-out samples.

    ``within_5_pct``/``within_10_pct`` are fractions (0..1) of samples whose prediction is within
    +-5 %/+-10 % of the measurement; ``rmspe_pct`` is sqrt(mean(((pred - meas) / meas)**2)) in
    percent; ``kendall_tau`` is tau-b (ties counted), NaN when either side is constant;
    ``per_kernel`` the same per kernel type (kernel-level predictors), else ``None``.
    """

    n: int
    within_5_pct: float
    within_10_pct: float
    rmspe_pct: float
    kendall_tau: float
    per_kernel: Mapping[str, Accuracy] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON values (a NaN tau becomes ``None``)."""
        tau = None if math.isnan(self.kendall_tau) else self.kendall_tau
        record: dict[str, Any] = {"n": self.n, "within_5_pct": self.within_5_pct,
                                  "within_10_pct": self.within_10_pct, "rmspe_pct": self.rmspe_pct,
                                  "kendall_tau": tau}
        if self.per_kernel is not None:
            record["per_kernel"] = {name: acc.to_dict() for name, acc in self.per_kernel.items()}
        return record

    def table(self, title: str = "Predictor accuracy") -> Table:
        """A Rich table: one row for all samples, then one per kernel type."""
        from rich.table import Table

        table = Table(title=title)
        for column in ("samples", "n", "within ±5 %", "within ±10 %", "RMSPE", "Kendall τ"):
            table.add_column(column, justify="left" if column == "samples" else "right")
        rows = [("all", self), *sorted((self.per_kernel or {}).items())]
        for name, acc in rows:
            tau = "n/a" if math.isnan(acc.kendall_tau) else f"{acc.kendall_tau:.3f}"
            table.add_row(name, str(acc.n), f"{acc.within_5_pct:.1%}", f"{acc.within_10_pct:.1%}",
                          f"{acc.rmspe_pct:.1f} %", tau)
        return table


def kendall_tau(x: Sequence[float] | FloatArray, y: Sequence[float] | FloatArray) -> float:
    """Kendall's tau-b of two equally long sequences (ties in either counted as scipy does); NaN when
    either is constant. Exact, O(n^2) pairs in row chunks."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"kendall_tau needs two sequences of one length, got {a.shape} and {b.shape}.",
                          "Pass predicted and measured values pairwise.")
    n = len(a)
    concordance = tied_a = tied_b = 0.0
    for start in range(0, n, _TAU_CHUNK):
        stop = min(start + _TAU_CHUNK, n)
        da = np.sign(a[start:stop, None] - a[None, :])
        db = np.sign(b[start:stop, None] - b[None, :])
        upper = np.arange(start, stop)[:, None] < np.arange(n)[None, :]  # each pair once
        concordance += float((da * db)[upper].sum())
        tied_a += float(np.count_nonzero((da == 0) & upper))
        tied_b += float(np.count_nonzero((db == 0) & upper))
    pairs = n * (n - 1) / 2
    denominator = math.sqrt((pairs - tied_a) * (pairs - tied_b))
    return concordance / denominator if denominator > 0 else math.nan


def score(predicted_ms: Sequence[float] | FloatArray, measured_ms: Sequence[float] | FloatArray) -> Accuracy:
    """``Accuracy`` of predictions against measurements (both in milliseconds, pairwise)."""
    predicted = np.asarray(predicted_ms, dtype=np.float64)
    measured = np.asarray(check_latencies(measured_ms, "Measured latency"), dtype=np.float64)
    if predicted.shape != measured.shape:
        raise ConfigError(f"Got {predicted.size} predictions for {measured.size} measurements.",
                          "Pass one prediction per measurement.")
    if measured.size < 2:
        raise ConfigError(f"Accuracy needs at least 2 measurements, got {measured.size}.",
                          "Measure more held-out networks (tens or more for stable figures).")
    relative = np.abs(predicted - measured) / measured
    return Accuracy(n=int(measured.size), within_5_pct=float(np.mean(relative <= 0.05)),
                    within_10_pct=float(np.mean(relative <= 0.10)),
                    rmspe_pct=float(100 * np.sqrt(np.mean(relative ** 2))),
                    kendall_tau=kendall_tau(predicted, measured))


def predict_all(predictor: Predictor, workloads: Sequence[Workload]) -> FloatArray:
    """The predictor's milliseconds for each workload (batched when the predictor offers ``predict_many``)."""
    many = getattr(predictor, "predict_many", None)
    if callable(many):
        return np.asarray(many(workloads), dtype=np.float64)
    return np.asarray([predictor.predict(w) for w in workloads], dtype=np.float64)


def accuracy(predictor: Predictor, workloads: Sequence[Workload], latencies_ms: Sequence[float]) -> Accuracy:
    """How well ``predictor`` predicts measured whole-network latencies of ``workloads``."""
    if len(workloads) != len(latencies_ms):
        raise ConfigError(f"accuracy got {len(workloads)} workloads but {len(latencies_ms)} latencies.",
                          "Give one measured latency per workload, in the same order.")
    return score(predict_all(predictor, workloads), latencies_ms)


def kernel_accuracy(kernel_types: Sequence[str], predicted_ms: Sequence[float] | FloatArray,
                    measured_ms: Sequence[float] | FloatArray) -> Accuracy:
    """Accuracy over kernel measurements, overall and per kernel type (types with one sample are
    counted overall only: a tau needs two)."""
    types = list(kernel_types)
    predicted, measured = np.asarray(predicted_ms, dtype=np.float64), np.asarray(measured_ms, dtype=np.float64)
    if not len(types) == predicted.size == measured.size:
        raise ConfigError(f"kernel_accuracy got {len(types)} kernel types, {predicted.size} predictions and "
                          f"{measured.size} measurements.", "Pass one type, prediction and measurement per kernel.")
    overall = score(predicted, measured)
    labels = np.asarray(types)
    per_kernel = {name: score(predicted[labels == name], measured[labels == name])
                  for name in sorted(set(types)) if np.count_nonzero(labels == name) >= 2}
    return Accuracy(overall.n, overall.within_5_pct, overall.within_10_pct, overall.rmspe_pct, overall.kendall_tau,
                    per_kernel)
