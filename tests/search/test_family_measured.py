"""A family on this machine's CPU (``--hardware cpu``): each level's variant is re-timed against its
own level (the measured median keeps the margin), the levels' measured latencies come out ordered,
and the selector picks by the measured latencies. Slow: the fixtures time ResNet-20's channel cuts
to fit the predictor (as in test_measured_search)."""

from __future__ import annotations

import pytest

from nn2hw.api import search
from nn2hw.bundle import load_family
from tests.search.test_measured_search import BASE, measured_predictor, scorer  # noqa: F401 (fixtures)

pytest.importorskip("onnxruntime", reason="the cpu template needs ONNX Runtime (pip install 'nn2hw[measure]')")
pytest.importorskip("sklearn", reason="predictors need scikit-learn (pip install 'nn2hw[predict]')")
pytestmark = [pytest.mark.slow, pytest.mark.timed]  # timed: runs alone (tests/conftest.py)

MARGIN = 0.1
"""Wide enough for a busy machine's noise."""


def test_a_measured_family_meets_each_level_in_order(tmp_path, scorer, measured_predictor):  # noqa: F811
    predictor, base_ms, _ = measured_predictor
    # the leanest cut is predicted at 0.52-0.67 x base (the predictor is fitted on this run's timings); a
    # level must keep the 15 % of margins above it to be searched
    levels = tuple(round(f * base_ms, 4) for f in (0.95, 0.8, 0.87))
    space = tmp_path / "space.yaml"
    space.write_text("techniques:\n  quantize: false\n")  # the predictor saw channel cuts only
    result = search(**BASE, hardware="cpu", hw_params={"predictor": str(predictor), "margin": str(MARGIN)},
                    latency_levels_ms=levels, evaluator=scorer, progress=False, strategy="evolution", trials=12,
                    space_config=str(space), top_k=5, out=str(tmp_path / "run"))
    family = load_family(tmp_path / "run")
    assert [v.level_ms for v in family.variants] == sorted(levels) and not family.missing
    for v in family.variants:
        assert v.latency_iqr_ms is not None and v.latency_ms * (1 + MARGIN) <= v.level_ms
    latencies = [v.latency_ms for v in family.variants]
    assert latencies == sorted(latencies)
    referred = result.solution.measurement["referred_median_ms"]  # timed beside the base, referred to its timing
    assert result.family["variants"][0]["latency_ms"] == pytest.approx(referred)
    loosest = family.variants[-1]
    assert family.select(loosest.latency_ms) in family.variants
    assert family.select(family.variants[0].latency_ms).latency_ms == family.variants[0].latency_ms  # the fastest
