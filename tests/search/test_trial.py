"""A candidate is costed once: the latency-first prefilter and the trial share ``assess``'s memo."""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

from nn2hw.search import trial


def test_assess_is_memoized_per_index_vector_and_bounded(monkeypatch):
    costed = []
    ctx = SimpleNamespace(
        space=SimpleNamespace(decode=lambda indices: SimpleNamespace(plans={}, hardware={})),
        target=SimpleNamespace(best=lambda workloads, knobs: costed.append(1) or SimpleNamespace(latency_ms=1.0)),
        spec=SimpleNamespace(describe_miss=lambda cost: ""), workloads=lambda plans: None,
        assessments=OrderedDict(), measured_base=None)
    monkeypatch.setattr(trial, "ASSESSMENTS_KEPT", 2)
    assert trial._prefilter(ctx)((0, 1)) == (True, 1.0)
    assert trial.assess(ctx, [0, 1]) is trial.assess(ctx, (0, 1)) and len(costed) == 1  # the trial reuses it
    for indices in ((1, 1), (0, 1), (2, 2)):  # (1, 1) is then the least recently used: dropped
        trial.assess(ctx, indices)
    assert list(ctx.assessments) == [(0, 1), (2, 2)] and len(costed) == 3
