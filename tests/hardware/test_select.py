"""Picking designs (``nn2hw.hardware.select``): the Pareto front an exploration reports."""

from __future__ import annotations

import numpy as np

from nn2hw.hardware.select import pareto_front, reported_front


def test_reported_front_is_capped_by_latency_keeps_the_best_and_is_sorted():
    # (latency, energy): rows 0..3 are on the front; row 4 is dominated by row 1; row 5 is not ok
    points = np.array([[4.0, 1.0], [1.0, 4.0], [3.0, 2.0], [2.0, 3.0], [1.5, 4.5], [0.5, 0.5]])
    ok = np.array([True, True, True, True, True, False])
    assert pareto_front(points, ok) == [0, 1, 2, 3]
    assert reported_front(points, ok, best=1, limit=32) == [1, 3, 2, 0]
    assert reported_front(points, ok, best=1, limit=2) == [1, 3]
    assert reported_front(points, ok, best=0, limit=1) == [1, 0]  # the best is kept beyond the cap
    # ties on the first column go to the lower index
    tied = np.array([[1.0, 2.0, 1.0], [1.0, 1.0, 2.0], [3.0, 0.5, 0.5]])
    assert reported_front(tied, np.ones(3, dtype=bool), best=2, limit=1) == [0, 2]
    assert reported_front(tied, np.ones(3, dtype=bool), best=1, limit=3) == [0, 1, 2]
