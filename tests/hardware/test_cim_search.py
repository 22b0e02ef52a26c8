"""The discrete co-search runs on the crossbar template: a tiny budget on the shared CIFAR-10
ResNet-20 with a fast scorer (no training), every solution within the latency spec.

About 20 s: three trials (each costs a candidate over the template's 1,296-design grid and scores
64 images) and the finalize step; kept because it is the only end-to-end check that the search's
space, prefilter and guarantee accept the template's vocabulary and options."""

from __future__ import annotations

import pytest

from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import prepare

pytestmark = pytest.mark.data
BASE = {"model": "resnet20", "dataset": "cifar10", "split": "test-partial", "hardware": "cim:reram"}


def test_a_tiny_search_on_cim_meets_its_spec(shared_data, tmp_path):
    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test

    data = zoo.prepare(load_dataset("cifar10", "test-partial"), "resnet20").take(64)

    def score(model):
        metrics = test(model, data, progress=False)
        return {"top1": metrics.top1, "n_images": float(metrics.n_images), "partial": 1.0}

    ctx = prepare(SearchSettings(**BASE, spec=Spec(latency_ms=1e3), out=str(tmp_path / "b")),
                  evaluator=lambda m: {"top1": 0.0})
    base, leanest = ctx.base_cost.latency_ms, ctx.bound_cost.latency_ms
    assert leanest < base  # quantizing activations shortens crossbar-bound layers
    spec = (base + leanest) / 2
    result = run_search(SearchSettings(**BASE, spec=Spec(latency_ms=spec), strategy="random", trials=3,
                                       out=str(tmp_path / "run")), evaluator=score, progress=False,
                        log=lambda _: None)
    assert result.solution.cost.template == "cim" and result.solution.cost.latency_ms <= spec < base
    assert {row.bottleneck for row in result.rows} <= {"crossbar", "adc", "array-count", "buffer"}
