"""A CANAO-style search of a small Transformer on this CPU (``--hardware cpu``), end to end: the
Fashion-MNIST ViT (4 encoder layers of bert.py, hidden 64, 4 heads), candidates predicted by a
whole-network predictor fitted on head/FFN/layer variants of it timed here, the ones that pass
timed, a constant scorer (the accuracy side is not what is tested). What must hold on a noisy
machine: the returned network's re-measured median keeps the margin below the spec, its plan uses
the Transformer techniques the ``cpu`` template offers by default, and the per-layer table names
the technique each changed layer got. About 30-60 s (export and timing of ~20 networks), hence slow."""

from __future__ import annotations

import json

import pytest

from nn2hw.search import SearchSettings, Spec, run_search

pytest.importorskip("onnxruntime", reason="the cpu template needs ONNX Runtime (pip install 'nn2hw[measure]')")
pytest.importorskip("sklearn", reason="predictors need scikit-learn (pip install 'nn2hw[predict]')")
pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.timed]  # timed: runs alone (tests/conftest.py)

BASE = {"model": "vit_fmnist", "dataset": "fashion-mnist"}
TRANSFORMER_TECHNIQUES = {"head removal", "channel cut", "layer drop"}


def _variants(workload):
    """Head, FFN-width and depth variants of the ViT and a few mixes: what the predictor learns from."""
    from nn2hw.compress import with_cut, with_dropped_blocks, with_heads
    from nn2hw.plan import Plan

    base = Plan.for_workload(workload, "vit_fmnist", "fashion-mnist")

    def ffn(plan, width):
        for layer in workload.compute_layers:
            if layer.name.endswith("intermediate.dense"):
                plan = with_cut(plan, workload, layer.name, width)
        return plan

    def drop(plan, count):
        return with_dropped_blocks(plan, workload, [f"encoder.layer.{i}" for i in range(4 - count, 4)])

    plans = [base, *(with_heads(base, workload, k) for k in (3, 2, 1)), *(ffn(base, w) for w in (96, 64, 32)),
             *(drop(base, n) for n in (1, 2, 3)), ffn(with_heads(base, workload, 2), 64),
             drop(with_heads(base, workload, 2), 1), drop(ffn(base, 64), 2)]
    return plans


@pytest.fixture(scope="module")
def measured_predictor(module_cache, shared_data):
    """A whole-network predictor fitted on the ViT's variants as timed on this CPU, and the base's median."""
    from nn2hw import zoo
    from nn2hw.api import load_workload
    from nn2hw.compress import apply_plan
    from nn2hw.hardware import get_template
    from nn2hw.measured import measure_models
    from nn2hw.predict import fit

    template, _ = get_template("cpu")
    model = zoo.build("vit_fmnist", "fashion-mnist", pretrained=True).eval()
    workload = load_workload(**BASE)
    plans = _variants(workload)
    workloads = [apply_plan(plan, workload) for plan in plans]
    timed = measure_models(template, "onnxruntime", {"repeats": 20}, [(model, w, p) for w, p in zip(workloads, plans)])
    path = module_cache / "vit-variants.json"
    fit(workloads, [t.median_ms for t in timed], device="this cpu", seed=0).save(path)
    base_alone, = measure_models(template, "onnxruntime", {}, [(model, workload, None)])  # as the search will
    return path, base_alone.median_ms


def test_a_small_transformer_search_meets_the_spec_as_measured_and_names_its_techniques(tmp_path, measured_predictor):
    predictor, base_ms = measured_predictor
    spec = 0.75 * base_ms
    space = tmp_path / "space.yaml"
    space.write_text("techniques:\n  quantize: false\n")  # the predictor saw no int8 network
    settings = SearchSettings(**BASE, spec=Spec(latency_ms=spec), hardware="cpu",
                              hw_options={"predictor": str(predictor), "margin": "0.1"}, strategy="random",
                              trials=4, out=str(tmp_path / "run"), space_config=str(space), top_k=4)
    result = run_search(settings, evaluator=lambda model: {"top1": 50.0, "top5": 90.0}, progress=False,
                        log=lambda _: None)
    solution = result.solution
    m = solution.measurement
    assert m is not None and m["referred_median_ms"] * 1.1 <= spec  # the margin, on the re-check referred to the base
    used = {row.technique for row in result.rows if row.technique in TRANSFORMER_TECHNIQUES}
    assert used, [(r.layer, r.technique) for r in result.rows]
    for row in result.rows:
        if row.technique in TRANSFORMER_TECHNIQUES:
            assert row.choice not in ("", "-")  # says what it got: '2 heads (64->32 ch)', '128->64 ch', 'dropped'
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert {r["technique"] for r in report["layers"]} >= used
    assert sum(r["saved_ms"] for r in report["layers"]) > 0  # the changed network saves time overall
