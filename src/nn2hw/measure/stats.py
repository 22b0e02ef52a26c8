"""Robust summaries of repeated timings: median, quartiles and Tukey's outliers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TUKEY_K = 1.5
"""Tukey's fence multiplier: runs beyond Q1 - 1.5 IQR or Q3 + 1.5 IQR are outliers."""


@dataclass(frozen=True)
class Spread:
    """The distribution of one network's timed runs, in milliseconds."""

    runs: int
    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    outliers: int


def summarize(times_ms: Sequence[float]) -> Spread:
    """Median, quartiles (NumPy's linear percentiles), extremes and the count outside Tukey's fences."""
    if not times_ms:
        raise ValueError("summarize needs at least one timing")
    values = np.asarray(times_ms, dtype=np.float64)
    q1, median, q3 = (float(v) for v in np.percentile(values, [25.0, 50.0, 75.0]))
    fence = TUKEY_K * (q3 - q1)
    outliers = int(np.count_nonzero((values < q1 - fence) | (values > q3 + fence)))
    return Spread(runs=len(values), median_ms=median, q1_ms=q1, q3_ms=q3, min_ms=float(values.min()),
                  max_ms=float(values.max()), outliers=outliers)
