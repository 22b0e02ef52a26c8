"""``--space-kind fbnet|nb201``: the differentiable search over a built-in space from scratch. The
block tables' lookup-sum equals the exact cost on templates that cost layers independently, an
impossible spec is refused naming the leanest architecture's cost before any training, bad input
is refused (exit 2), and a tiny real search meets its spec after exact re-costing through the
zoo's own workload, writes a bundle that rebuilds the network exactly, reports the relaxed vs
exact gap, and resumes without training or scoring again."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.search import SearchSettings, Spec
from nn2hw.search.differentiable.options import RelaxOptions
from nn2hw.search.differentiable.space_costs import SpaceCosts
from nn2hw.search.target import HardwareTarget
from nn2hw.zoo.archs.supernet import FBNetSupernet
from tests.search.data_here import fashion_mnist_here


@pytest.fixture(scope="module")
def fbnet_costs():
    net = FBNetSupernet("fashion-mnist", bits=(32, 8, 4), width_mult=0.25)
    target = HardwareTarget.parse("eyeriss", {}, {}, {"latency_ms": 1.0})
    return SpaceCosts(net, target, ("latency_ms",), {"latency_ms": 1.0}, None, "fbnet")


def test_the_block_tables_sum_to_the_exact_cost_on_a_template_that_costs_layers_independently(fbnet_costs):
    rng = random.Random(0)
    archs = [tuple(rng.randrange(9) for _ in range(22)) + tuple(rng.randrange(3) for _ in range(22)) for _ in range(3)]
    for arch in archs:
        design = fbnet_costs.best(arch).design
        tables = fbnet_costs.tables(design)
        assert tables.table(arch) == pytest.approx(fbnet_costs.values(fbnet_costs.on(arch, design)), rel=1e-9)
        one_hot = [np.eye(n)[c] for n, c in zip(fbnet_costs.supernet.counts, arch)]
        assert tables.expected(one_hot[:22], one_hot[22:]) == pytest.approx(tables.table(arch))
    lean, wide = fbnet_costs.uniform(8, 2), fbnet_costs.uniform(7, 0)  # every block a skip at 4 bits; k5_e6 float
    assert fbnet_costs.best(lean).latency_ms < fbnet_costs.best(wide).latency_ms


def test_the_tables_cost_an_op_the_design_cannot_run_on_its_own_design(fbnet_costs):
    """FPGA: the design of an all-3x3 network has a 3x3 depthwise engine; a 5x5 block is costed on the
    design the DSE picks for it instead of failing (what moving there would cost)."""
    target = HardwareTarget.parse("fpga:zcu102", {}, {}, {"latency_ms": 1.0})
    costs = SpaceCosts(fbnet_costs.supernet, target, ("latency_ms",), {"latency_ms": 1.0}, None, "fbnet")
    design = costs.best(costs.uniform(3, 0)).design
    assert costs.on(costs.uniform(7, 0), design) is None
    tables = costs.tables(design)
    own = costs.best(costs.uniform(7, 0))
    per_block = tables.table(costs.uniform(7, 0)) - tables.fixed
    assert 0 < per_block[0] < 2 * own.latency_ms


def _settings(tmp_path, **changes):
    base = {"model": "fbnet", "dataset": "fashion-mnist", "spec": Spec(latency_ms=0.2), "hardware": "eyeriss",
            "strategy": "differentiable", "space_kind": "fbnet", "out": str(tmp_path / "o")}
    return SearchSettings(**{**base, **changes})


@pytest.mark.parametrize(("changes", "match"), [
    ({"model": "resnet20"}, "Give --model fbnet"),
    ({"checkpoint": "w.pt"}, "--checkpoint"),
    ({"workers": 2}, "--workers above 1"),
    ({"storage": "s.db"}, "--storage"),
    ({"strategy": "reinforce"}, "Add --strategy differentiable"),
])
def test_a_space_search_refuses_what_needs_a_hot_start_a_study_or_several_processes(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        _settings(tmp_path, **changes)


def test_options_of_a_built_in_space_are_refused_on_the_hot_start_space_and_checked(tmp_path):
    with pytest.raises(ConfigError, match="configure.*built-in"):
        SearchSettings(model="resnet20", dataset="fashion-mnist", spec=Spec(latency_ms=0.3), strategy="differentiable",
                       strategy_options={"width_mult": 0.5})
    for bad in ("32/8/8", "1", "8/x", "33"):
        with pytest.raises(ConfigError, match="option bits must be"):
            RelaxOptions.parse({"bits": bad})
    assert RelaxOptions.parse({"bits": 8}).bit_widths() == (8,)
    with pytest.raises(ConfigError, match="option warmup must be a number in"):
        RelaxOptions.parse({"warmup": 1.0})


def test_a_spec_no_architecture_of_the_space_meets_is_refused_with_the_leanest_cost_exit_2(tmp_path, capsys):
    code = main(["search", "--model", "fbnet", "--dataset", "fashion-mnist", "--hardware", "eyeriss",
                 "--latency-ms", "0.0001", "--strategy", "differentiable", "--space-kind", "fbnet",
                 "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "leanest found" in err and "skip x 22" in err and "Relax the spec to at least" in err
    assert not (tmp_path / "o" / "space_search" / "supernet.pt").exists()  # refused before training


def test_a_measured_template_is_refused(tmp_path):
    from nn2hw.search import run_search

    with pytest.raises(ConfigError, match="analytical template"):
        run_search(_settings(tmp_path, hardware="cpu", spec=Spec(latency_ms=1.0)), progress=False, log=lambda _: None)


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist_here(), reason="Fashion-MNIST is not available here")
def test_a_tiny_fbnet_space_search_meets_its_spec_bundles_the_network_and_resumes(tmp_path, capsys):
    """About 60 s (more under load): 13 supernet batches, candidates fine-tuned 2 batches and scored
    on 64 validation images, the winner and the reference tested on 64 images, then resumed."""
    from dataclasses import replace

    from nn2hw import zoo
    from nn2hw.api import minimize_plan
    from nn2hw.bundle import load_bundle
    from nn2hw.compress import apply_plan
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test
    from nn2hw.evaluate.settings import FinetuneSettings
    from nn2hw.search import run_search
    from nn2hw.search.differentiable import scratch
    from nn2hw.search.settings import FINAL_FINETUNE

    settings = _settings(
        tmp_path, spec=Spec(latency_ms=0.2),
        strategy_options={"candidates": 3, "lambda_every": 2, "research_every": 4, "lam": 2.0, "arch_lr": 0.3,
                          "warmup": 0.5, "bits": "32/8"},
        epochs=0.007, trials=2, search_images=64, finetune=FinetuneSettings(batches=2, batch_size=32),
        final_finetune=replace(FINAL_FINETUNE, batches=2), threads=2)
    test_images = zoo.prepare(load_dataset("fashion-mnist", "test"), "fbnet").take(64)

    def final(model):  # the winner and the reference: tested on 64 images (the default tests the whole split)
        metrics = test(model, test_images, progress=False)
        return {"top1": metrics.top1, "n_images": float(metrics.n_images), "partial": 1.0}

    lines: list[str] = []
    result = run_search(settings, final_evaluator=final, progress=False, log=lines.append)
    assert result.solution.cost.latency_ms <= 0.2
    from nn2hw.cli.search import print_result

    print_result(result)  # the CLI's table: no pretrained "base model" here, the float reference trained here
    table = capsys.readouterr().out
    assert "reference (float, trained here)" in table and "base model" not in table
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    section = report["differentiable"]
    batches = math.ceil(0.007 * section["images"] / 32)
    assert section["space_kind"] == "fbnet" and section["batches"] == batches
    assert section["warmup_batches"] == batches // 2
    assert section["lambda"] and section["bits"] == [32, 8] and section["gap"]["candidates_costed"] >= 1
    assert report["solution"]["latency_ms"] <= 0.2 and report["trials"]["complete"] >= 1
    winner = section["candidates"][report["solution"]["trial"]]
    assert winner["feasible"] and winner["exact"]["latency_ms"] == pytest.approx(report["solution"]["latency_ms"])
    for c in section["candidates"]:
        if c["relaxed_vs_exact_pct"] is not None:
            assert c["relaxed_vs_exact_pct"] == pytest.approx(
                100 * (c["relaxed"]["latency_ms"] / c["exact"]["latency_ms"] - 1))
    rows = (tmp_path / "o" / "candidates.csv").read_text().splitlines()
    assert len(rows) == 1 + len(section["candidates"])
    # the bundle is the zoo entry with the architecture as its options, rebuilt exactly
    model, plan, hardware = load_bundle(tmp_path / "o")
    bundle = json.loads((tmp_path / "o" / "bundle.json").read_text())
    ops = winner["indices"][:22]
    assert bundle["base_options"]["arch"] == ops and plan.base_model == "fbnet" and hardware
    assert all(c.values["weight_bits"] == 8 for c in plan.choices.values())
    work = apply_plan(plan, zoo.workload("fbnet", "fashion-mnist", arch=ops, width_mult=0.25))
    assert {layer.weight_bits for layer in work.layers if layer.name in plan.choices} <= {8}
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
    minimized = minimize_plan(tmp_path / "o", hardware="eyeriss", latency_ms=0.2)  # the bundle's options are read
    assert minimized.before.latency_ms == pytest.approx(result.solution.cost.latency_ms, rel=1e-6)
    assert minimized.after.latency_ms <= 0.2

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed search trained its supernet again")

    monkey = pytest.MonkeyPatch()
    monkey.setattr(scratch, "train", no_training)
    try:
        again = run_search(replace(settings, resume=True), final_evaluator=final, progress=False, log=lines.append)
    finally:
        monkey.undo()
    assert again.trials["reused"] == report["trials"]["complete"] and again.trials["trained"] == 0
    assert again.solution.trial == report["solution"]["trial"]


def test_a_built_in_space_fine_tunes_at_the_scratch_rate_with_clipping_unless_told_otherwise():
    from nn2hw.evaluate.settings import FinetuneSettings
    from nn2hw.search.settings import SCRATCH_CLIP_GRAD_NORM, SCRATCH_FINETUNE_LR, default_finetune_lr, scratch_settings

    found = scratch_settings({"space_kind": "fbnet"})
    assert found["finetune"].lr == found["final_finetune"].lr == SCRATCH_FINETUNE_LR == default_finetune_lr("nb201")
    assert found["finetune"].clip_grad_norm == found["final_finetune"].clip_grad_norm == SCRATCH_CLIP_GRAD_NORM
    assert found["final_finetune"].distill == 0.0  # no unmodified model to distill from
    given = FinetuneSettings(lr=0.01)
    assert scratch_settings({"space_kind": "fbnet", "finetune": given})["finetune"] is given
    assert scratch_settings({"strategy": "tpe"}) == {"strategy": "tpe"}


def test_candidates_that_build_the_same_network_share_one_key(fbnet_costs):
    """A bit width chosen for a skip block (no convs) changes nothing: such candidates are scored once."""
    from types import SimpleNamespace

    from nn2hw.search.differentiable.scratch import network_key

    run = SimpleNamespace(supernet=fbnet_costs.supernet)
    ops = [8] * 5 + [0] * 17  # blocks 1-4 skip at equal shapes (identity), block 0 changes width
    arch = ops + [0] * 22
    assert network_key(run, arch) == network_key(run, ops + [0, 0, 2] + [0] * 19)  # block 2 is a skip
    assert network_key(run, arch) != network_key(run, ops + [0] * 5 + [2] + [0] * 16)  # block 5 has convs


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist_here(), reason="Fashion-MNIST is not available here")
def test_an_interrupted_supernet_training_resumes_from_its_last_saved_batch(tmp_path, monkeypatch):
    """About 30 s: 13 supernet batches, interrupted after batch 6 (saved every batch here), resumed."""
    from dataclasses import replace

    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test
    from nn2hw.search import run_search
    from nn2hw.search.differentiable import scratch

    images = zoo.prepare(load_dataset("fashion-mnist", "test"), "fbnet").take(32)

    def score(model):
        metrics = test(model, images, progress=False)
        return {"top1": metrics.top1, "n_images": float(metrics.n_images), "partial": 1.0}

    monkeypatch.setattr(scratch, "CHECKPOINT_S", 0.0)
    monkeypatch.setattr(scratch, "LOG_EVERY", 3)
    settings = _settings(tmp_path, strategy_options={"candidates": 1, "warmup": 0.5}, epochs=0.007, trials=1,
                         threads=2)

    def interrupt(line: str) -> None:
        if "batch 6/" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(settings, evaluator=score, progress=False, log=interrupt)
    lines: list[str] = []
    result = run_search(replace(settings, resume=True), evaluator=score, progress=False, log=lines.append)
    record = json.loads((tmp_path / "o" / "differentiable.json").read_text())
    batches = math.ceil(0.007 * record["images"] / 32)
    resumed = [line for line in lines if "resumed the supernet's training at batch" in line]
    assert resumed and 1 <= int(resumed[0].rsplit(" ", 1)[1]) <= 6 < batches == record["batches"]
    assert result.solution.cost.latency_ms <= 0.2


def test_a_space_search_without_a_latency_or_energy_spec_is_refused_and_always_reports_latency():
    from types import SimpleNamespace

    from nn2hw.search.differentiable.scratch import metrics_for

    target = SimpleNamespace(template=SimpleNamespace(metrics=("latency_ms", "energy_mj", "area_mm2")))
    with pytest.raises(ConfigError, match="name neither on eyeriss"):
        metrics_for(SimpleNamespace(spec=Spec(area_mm2=1.0), hardware="eyeriss"), target)
    assert metrics_for(SimpleNamespace(spec=Spec(energy_mj=1.0), hardware="eyeriss"), target) == ("latency_ms",
                                                                                                   "energy_mj")
