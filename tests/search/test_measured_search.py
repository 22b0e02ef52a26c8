"""The co-search on this machine's CPU (``--hardware cpu``): candidates predicted, finalists timed.

The predictor is fitted, as a user would for any device, from measurements: channel-cut variants of
the Fashion-MNIST ResNet-20 timed here. The scorer tests 64 images without training (quick,
deterministic). What must hold on a noisy machine: the returned network's *measured* median keeps
the margin below the spec, the report shows predicted and measured side by side, and a candidate
whose measurement misses is refused, never returned."""

from __future__ import annotations

import csv
import json

import pytest

from nn2hw.errors import InfeasibleError
from nn2hw.search import SearchSettings, Spec, run_search

pytest.importorskip("onnxruntime", reason="the cpu template needs ONNX Runtime (pip install 'nn2hw[measure]')")
pytest.importorskip("sklearn", reason="predictors need scikit-learn (pip install 'nn2hw[predict]')")
pytestmark = [pytest.mark.slow, pytest.mark.timed]  # timed: runs alone (tests/conftest.py)

BASE = {"model": "resnet20", "dataset": "fashion-mnist"}
RANDOM_CUTS = 16  # per-group cuts: the search's candidates cut some groups, not all by one fraction
KEEPS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.4375, 0.375, 0.3125, 0.25, 0.1875, 0.125)


@pytest.fixture(scope="module")
def measured_predictor(module_cache):
    """A whole-network predictor fitted, as a user would, on ResNet-20 variants like those the search
    proposes (uniform channel cuts and per-group random cuts) as timed on this CPU, the base network's
    measured median and its network key (in the module's measurement store)."""
    import random

    from nn2hw import zoo
    from nn2hw.api import load_workload
    from nn2hw.compress import apply_plan, with_cut, with_uniform_cut
    from nn2hw.hardware import get_template
    from nn2hw.measured import measure_models
    from nn2hw.plan import Plan
    from nn2hw.predict import fit

    template, _ = get_template("cpu")
    model = zoo.build("resnet20", "fashion-mnist", pretrained=True).eval()
    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    base = Plan.for_workload(workload, "resnet20", "fashion-mnist")
    plans = [with_uniform_cut(base, workload, keep) if keep < 1 else base for keep in KEEPS]
    rng, groups = random.Random(0), [g for g in workload.coupling_groups if g.cuttable]
    for _ in range(RANDOM_CUTS):
        plan = base
        for group in rng.sample(groups, rng.randint(1, len(groups))):
            plan = with_cut(plan, workload, group.layers[0], max(1, round(group.channels * rng.choice(KEEPS[1:]))))
        plans.append(plan)
    workloads = [apply_plan(plan, workload) for plan in plans]
    timed = measure_models(template, "onnxruntime", {"repeats": 20}, list(zip([model] * len(plans), workloads, plans)))
    path = module_cache / "r20-cuts.json"
    fit(workloads, [t.median_ms for t in timed], device="this cpu", seed=0).save(path)
    base_alone, = measure_models(template, "onnxruntime", {}, [(model, workload, None)])  # as the search will
    return path, base_alone.median_ms, base_alone.measurement.network


@pytest.fixture(scope="module")
def scorer():
    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test

    data = zoo.prepare(load_dataset("fashion-mnist", "test"), "resnet20").take(64)

    def score(model):
        m = test(model, data, progress=False)
        return {"top1": m.top1, "top5": m.top5, "n_images": float(m.n_images), "partial": 1.0}

    return score


def _search(tmp_path, scorer, predictor, latency_ms, trials=12, proposals=32, **options):
    space = tmp_path / "space.yaml"
    space.write_text("techniques:\n  quantize: false\n")  # the predictor saw channel cuts only
    settings = SearchSettings(**BASE, spec=Spec(latency_ms=latency_ms), hardware="cpu",
                              hw_options={"predictor": str(predictor), **options}, strategy="evolution", trials=trials,
                              proposals=proposals,
                              out=str(tmp_path / "run"), space_config=str(space), top_k=5)
    return run_search(settings, evaluator=scorer, progress=False, log=lambda _: None)


def test_the_returned_network_meets_the_spec_as_measured(tmp_path, scorer, measured_predictor):
    predictor, base_ms, _ = measured_predictor
    spec = 0.8 * base_ms
    result = _search(tmp_path, scorer, predictor, spec, margin="0.1")  # wide enough for a busy machine's noise
    solution = result.solution
    m = solution.measurement
    assert m is not None and solution.predicted_ms is not None and solution.plan.choices
    assert m["referred_median_ms"] == pytest.approx(m["median_ms"] / m["drift"]["factor"])  # timed beside the base
    assert solution.cost.latency_ms == pytest.approx(m["referred_median_ms"])
    assert m["referred_median_ms"] * 1.1 <= spec  # the margin, on the re-measured median referred to the base
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    for side in ("baseline", "solution"):
        assert {"predicted_latency_ms", "measurement"} <= set(report[side])
    assert report["baseline"]["measurement"]["median_ms"] > report["solution"]["measurement"]["referred_median_ms"]
    html = (tmp_path / "run" / "summary.html").read_text()
    assert "predicted / measured" in html


def test_a_candidate_whose_measurement_misses_is_never_trained_nor_returned(tmp_path, scorer, measured_predictor,
                                                                             monkeypatch):
    """A predictor that calls every changed network 10x faster than it is: every candidate it lets
    through is timed, the measurement refuses it before training, and nothing is returned."""
    from nn2hw.api import load_workload
    from nn2hw.hardware import cpu

    predictor, base_ms, _ = measured_predictor
    base = load_workload(model="resnet20", dataset="fashion-mnist")
    real = cpu.predicted_cost

    def optimistic(template, device, workload, model, *, scale=1.0, **kw):
        changed = workload.layers != base.layers
        return real(template, device, workload, model, scale=scale / 10 if changed else scale, **kw)

    monkeypatch.setattr(cpu, "predicted_cost", optimistic)
    with pytest.raises(InfeasibleError, match="passed the re-check"):
        _search(tmp_path, scorer, predictor, 0.3 * base_ms, trials=4, proposals=2, margin="0.1")
    with (tmp_path / "run" / "trials.csv").open() as f:  # kept for a resume
        trials = list(csv.DictReader(f))
    assert trials and all(t["feasible"] == "False" and "measured median" in t["reason"] for t in trials)
    assert not any(t["trained_here"] == "True" for t in trials)


def test_a_spec_below_the_noise_is_refused_with_the_noise(tmp_path, scorer, measured_predictor):
    from nn2hw.errors import ConfigError

    predictor, base_ms, _ = measured_predictor
    with pytest.raises(ConfigError, match="measurement noise is too large") as info:
        _search(tmp_path, scorer, predictor, 0.8 * base_ms, margin="0.0001")
    assert "IQR" in info.value.cause and "margin" in info.value.fix


def test_a_noisy_stored_base_is_timed_again_before_the_search_refuses(tmp_path, scorer, measured_predictor):
    """The base's stored measurement was taken while another job ran (IQR 60 % of its median, too
    noisy to verify a 10 % margin): the search forgets it, times the base again and goes on."""
    from dataclasses import replace

    from nn2hw.hardware.cpu import measuring_protocol
    from nn2hw.measure import default_store

    predictor, base_ms, key = measured_predictor
    store, protocol = default_store(), measuring_protocol("onnxruntime", {})  # the search's protocol

    def base_row(entry) -> bool:
        return entry.network == key and entry.protocol == protocol.key()

    stored, = filter(base_row, store.entries())
    m = stored.measurement
    noisy = replace(m, q1_ms=0.7 * m.median_ms, q3_ms=1.3 * m.median_ms)
    store.forget(base_row)
    store.put(noisy, protocol)
    result = _search(tmp_path, scorer, predictor, 0.8 * base_ms, trials=4, proposals=8, margin="0.1")
    assert result.solution.measurement["referred_median_ms"] * 1.1 <= 0.8 * base_ms  # re-checked beside the base
    timed_again, = filter(base_row, store.entries())
    assert timed_again.relative_iqr < 0.6 and timed_again.created_at_s > stored.created_at_s
