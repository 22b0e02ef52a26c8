"""The differentiable strategy: the hardware term's value is the exact cost at a one-hot
distribution and its gradient reaches every logit, lambda moves toward the spec, the k most likely
architectures are exact, the supernet at one-hot gates is the network the plan builds, bad input is
refused (exit 2), and a tiny real search meets its spec after exact re-costing, reports the relaxed
vs exact gap, and resumes without training again."""

from __future__ import annotations

import itertools
import json

import numpy as np
import optuna
import pytest
import torch

from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.search import SearchSettings, Spec
from nn2hw.search.differentiable.costs import CostTables
from nn2hw.search.differentiable.options import RelaxOptions
from nn2hw.search.differentiable.train import adapted, gumbel_gates, hardware_loss, hardware_value, most_likely
from nn2hw.search.strategies import build_sampler
from nn2hw.testing.strategies import context
from tests.search.data_here import fashion_mnist_here

optuna.logging.set_verbosity(optuna.logging.WARNING)
COUNTS = (3, 4, 2)


def tables(seed: int = 0) -> CostTables:
    rng = np.random.default_rng(seed)
    deltas = tuple(np.vstack([np.zeros((1, 2)), -rng.uniform(0.01, 0.1, (n - 1, 2))]) for n in COUNTS)
    return CostTables(("latency_ms", "energy_mj"), "design", np.array([1.0, 2.0]), deltas)


def one_hot(chosen):
    return [torch.nn.functional.one_hot(torch.tensor(c), n).float().requires_grad_() for c, n in zip(chosen, COUNTS)]


@pytest.mark.parametrize("form", ["table", "straight_through"])
def test_the_hardware_term_is_the_exact_cost_at_a_one_hot_distribution(form):
    t = tables()
    for chosen in itertools.product(*(range(n) for n in COUNTS)):
        exact = t.table(chosen) * 1.07  # the exact model need not be the tables' sum: the value is the exact one
        value = hardware_value(one_hot(chosen), chosen, exact, t, form)
        assert np.allclose(value.detach().numpy(), exact, rtol=1e-6)
    probs = [np.eye(n)[c] for n, c in zip(COUNTS, (2, 1, 0))]  # the tables' expectation at one-hot: their sum
    assert np.allclose(t.expected(probs), t.table((2, 1, 0)))


def test_gradients_reach_every_logit_through_the_tables_and_every_chosen_logit_straight_through():
    t = tables()
    generator = torch.Generator().manual_seed(0)
    logits = [torch.zeros(n, requires_grad=True) for n in COUNTS]
    gates, chosen = gumbel_gates(logits, 1.0, generator)
    assert all(float(g.detach().max()) == 1.0 and float(g.detach().sum()) == pytest.approx(1.0) for g in gates)
    loss = hardware_loss(torch.tensor(1.0), hardware_value(gates, chosen, t.table(chosen), t, "table"),
                         np.array([1.0, 2.0]), 0.5, "add")
    loss.backward()
    assert all(bool((a.grad != 0).all()) for a in logits)
    logits = [torch.zeros(n, requires_grad=True) for n in COUNTS]
    gates, chosen = gumbel_gates(logits, 1.0, generator)
    hardware_loss(torch.tensor(1.0), hardware_value(gates, chosen, t.table(chosen), t, "straight_through"),
                  np.array([1.0, 2.0]), 0.5, "mul").backward()
    assert all(float(a.grad[c]) != 0 for a, c in zip(logits, chosen))


def test_lambda_rises_over_the_spec_falls_well_under_it_and_holds_near_it():
    options = RelaxOptions(lambda_factor=2.0, slack=0.1)
    assert adapted(1.0, 1.2, options) == 2.0
    assert adapted(1.0, 0.5, options) == 0.5
    assert adapted(1.0, 0.95, options) == 1.0
    lam = options.lam
    for _ in range(40):  # far under the spec for long: it stops at lam / 1000, and rises from there
        lam = adapted(lam, 0.1, options)
    assert lam == pytest.approx(options.lam / 1000) and adapted(lam, 1.2, options) == pytest.approx(options.lam / 500)


def test_the_k_most_likely_architectures_are_exact():
    rng = np.random.default_rng(1)
    log_probs = [np.log(p / p.sum()) for p in (rng.uniform(0.1, 1, n) for n in COUNTS)]
    everything = sorted(((sum(lp[c] for lp, c in zip(log_probs, v)), v)
                         for v in itertools.product(*(range(n) for n in COUNTS))), reverse=True)
    found = most_likely(log_probs, 7)
    assert [v for v, _ in found] == [v for _, v in everything[:7]]
    assert len(most_likely(log_probs, 100)) == np.prod(COUNTS)


@pytest.mark.parametrize(("options", "match"), [
    ({"temperature": 0.0}, "temperature must be a number > 0"),
    ({"lam": -1.0}, "lam must be a number > 0"),
    ({"loss": "max"}, "loss must be one of add, mul"),
    ({"temperature": "hot"}, "temperature must be a number > 0"),
    ({"lr": 0.1}, "has no options"),
])
def test_bad_options_are_refused_with_the_fix(options, match):
    with pytest.raises(ConfigError, match=match) as info:
        build_sampler("differentiable", context(**options))
    assert info.value.fix


def test_a_sampler_without_a_search_says_it_needs_one():
    sampler, info = build_sampler("differentiable", context())
    study = optuna.create_study(sampler=sampler, directions=info.directions)
    with pytest.raises(ConfigError, match="without a search"):
        sampler.exhausted(study)  # what the search loop asks before each trial


@pytest.mark.parametrize(("settings", "match"), [
    ({"strategy": "differentiable", "epochs": 0}, "--epochs must be a positive number"),
    ({"strategy": "differentiable", "epochs": float("nan")}, "--epochs must be a positive number"),
    ({"strategy": "differentiable", "space_kind": "fbnet"}, "Give --model fbnet, or --space-kind hotstart"),
    ({"strategy": "differentiable", "space_kind": "darts"}, "Unknown --space-kind"),
    ({"strategy": "random", "space_kind": "nb201"}, "configures the supernet of --strategy differentiable"),
    ({"strategy": "random", "epochs": 1}, "configures the supernet of --strategy differentiable"),
    ({"strategy": "differentiable", "min_accuracy_under_variation": 90.0}, "--min-accuracy-under-variation"),
])
def test_settings_refuse_what_the_strategy_does_not_support(settings, match):
    with pytest.raises(ConfigError, match=match):
        SearchSettings(model="resnet20", dataset="fashion-mnist", spec=Spec(latency_ms=0.3), **settings)


def test_the_cli_offers_the_settings_space_kinds():
    from nn2hw.cli.search import SPACE_KINDS as CLI_SPACE_KINDS
    from nn2hw.search.settings import SPACE_KINDS

    assert CLI_SPACE_KINDS == SPACE_KINDS


def test_the_cli_refuses_a_built_in_space_kind_with_a_hot_start_model_with_exit_2(tmp_path, capsys):
    code = main(["search", "--model", "resnet20", "--dataset", "fashion-mnist", "--latency-ms", "0.3",
                 "--strategy", "differentiable", "--space-kind", "nb201", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Give --model nb201" in err and "Traceback" not in err


def test_the_supernet_at_one_hot_gates_is_the_network_the_plan_builds():
    from nn2hw import zoo
    from nn2hw.compress import apply_plan
    from nn2hw.plan import Plan
    from nn2hw.search.differentiable.supernet import HotStartSupernet
    from nn2hw.space import Dimension
    from nn2hw.workload import from_module

    model = zoo.build("resnet20", "fashion-mnist", pretrained=False).eval()
    workload = from_module(model, (1, 1, 28, 28))
    group = workload.group_of("layer1.0.conv1")
    dims = (Dimension("quantize:layer2.0.conv1", "quantize", ("layer2.0.conv1",),
                      (None, {"weight_bits": 8}, {"weight_bits": 4}), ("32-bit", "8-bit", "4-bit"), 2),
            Dimension("channel_cut:layer1.0.conv1", "channel_cut", group.layers, (None, {"out_channels": 8}),
                      ("16 ch", "8 ch"), 1),
            Dimension("kernel_pattern:layer2.0.conv1", "kernel_pattern", ("layer2.0.conv1",),
                      (None, {"patterns": [0, 5, 9, 40]}), ("dense", "4 patterns"), 1))
    net = HotStartSupernet(model, workload, dims).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    base = Plan.for_workload(workload, "resnet20", "fashion-mnist")
    for q, c, k in itertools.product(range(3), range(2), range(2)):
        plan = base
        if q:
            plan = plan.with_choice("layer2.0.conv1", weight_bits=dims[0].choices[q]["weight_bits"])
        if c:
            plan = plan.with_choice("layer1.0.conv1", out_channels=8)
        if k:
            plan = plan.with_choice("layer2.0.conv1", patterns=[0, 5, 9, 40])
        gates = [torch.eye(3)[q], torch.eye(2)[c], torch.eye(2)[k]]
        with torch.no_grad():
            assert torch.allclose(net(x, gates), apply_plan(plan, model)(x), atol=1e-4), (q, c, k)
    assert net.estimate_bytes(64) > net.estimate_bytes(1) > 0



@pytest.mark.skipif(not fashion_mnist_here(), reason="Fashion-MNIST is not available here")
def test_a_tiny_differentiable_search_meets_its_spec_reports_the_gap_and_resumes_without_training(
        tmp_path, monkeypatch):
    """About 20 s (more under load): preparing the ResNet-20 space twice (8 s each), 6 supernet batches on the fit
    split, candidates scored untrained on 64 test images (an evaluator of the test's own)."""
    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test
    from nn2hw.search import run_search
    from nn2hw.search.differentiable import train
    from nn2hw.search.finalize import FinalizedElsewhere

    data = zoo.prepare(load_dataset("fashion-mnist", "test"), "resnet20").take(64)

    def score(model):
        metrics = test(model, data, progress=False)
        return {"top1": metrics.top1, "n_images": float(metrics.n_images), "partial": 1.0}

    settings = SearchSettings(
        model="resnet20", dataset="fashion-mnist", spec=Spec(latency_ms=0.38), strategy="differentiable",
        strategy_options={"candidates": 4, "lambda_every": 2, "research_every": 4, "lam": 5.0, "arch_lr": 0.3},
        epochs=0.003, trials=20, minimize=False, pruner="none", out=str(tmp_path / "o"), threads=2)
    result = run_search(settings, evaluator=score, progress=False, log=lambda _: None)
    assert result.solution.cost.latency_ms <= 0.38 < result.baseline.cost.latency_ms
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    section = report["differentiable"]
    assert section["batches"] == 6 and section["temperature"][-1][1] == pytest.approx(0.5)
    assert section["lambda"] and section["seed"] == 0 and section["gap"]["candidates_costed"] >= 1
    costed = [c for c in section["candidates"] if c["relaxed_vs_exact_pct"] is not None]
    for c in costed:
        assert c["relaxed_vs_exact_pct"] == pytest.approx(100 * (c["relaxed"]["latency_ms"] / c["latency_ms"] - 1))
    assert json.loads((tmp_path / "o" / "differentiable.json").read_text())["candidates"] == section["candidates"]
    study = optuna.load_study(study_name=None, storage=settings.storage_url)
    proposed = [[int(v) for v in t.params.values()] for t in study.trials]
    assert len(study.trials) <= len(section["candidates"])
    assert all(p in [c["indices"] for c in section["candidates"]] for p in proposed)

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed study trained its supernet again")

    monkeypatch.setattr(train, "train_supernet", no_training)
    again = run_search(SearchSettings(**{**settings.__dict__, "resume": True}), evaluator=score, progress=False,
                       log=lambda _: None)
    assert isinstance(again, FinalizedElsewhere) and again.done  # the same candidates, all proposed: nothing new


def test_a_supernet_that_does_not_fit_the_memory_given_is_refused_before_training():
    from nn2hw.search.differentiable.train import check_memory

    with pytest.raises(ConfigError, match="needs about 2048 MiB to train at batch 32.*1 MiB allowed") as info:
        check_memory(2 << 30, RelaxOptions(memory_mb=1.0), 32)
    assert "batch" in info.value.fix
    check_memory(1 << 20, RelaxOptions(memory_mb=2.0), 32)  # fits: nothing said


def test_a_spec_the_relaxed_techniques_cannot_reach_is_refused_naming_their_bound():
    from types import SimpleNamespace

    from nn2hw.errors import InfeasibleError
    from nn2hw.search.differentiable.costs import ExactCosts
    from nn2hw.search.differentiable.train import check_reachable
    from nn2hw.space import Dimension

    dims = (Dimension("quantize:a", "quantize", ("a",), (None, {"weight_bits": 8}), ("16-bit", "8-bit"), 1),
            Dimension("kernel_expand:b", "kernel_expand", ("b",), (None, {"kernel": 5}), ("3x3", "5x5"), 0),
            Dimension("channel_cut:c", "channel_cut", ("c",), (None, {"out_channels": 4}), ("8 ch", "4 ch"), 1))

    class Exact(ExactCosts):
        def __init__(self, limit):
            self.ctx = SimpleNamespace(space=SimpleNamespace(dimensions=dims))
            self.metrics, self.limits = ("latency_ms",), np.array([limit])

        def best(self, vector):  # 1 ms less per lean choice
            return SimpleNamespace(latency_ms=10.0 - sum(vector))

    ctx = SimpleNamespace(space=SimpleNamespace(dimensions=dims))
    check_reachable(ctx, Exact(8.0), (0, 2))  # both lean: 8 ms
    with pytest.raises(InfeasibleError, match="leanest choices reach 8 ms at best") as info:
        check_reachable(ctx, Exact(7.5), (0, 2))
    assert "--space" in info.value.fix and info.value.best_bound == 8.0
