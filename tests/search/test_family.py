"""RT3-style families (issue 10 part 5): one search returns one variant per latency level, each
re-checked against its own level, with nested plans, a selector that picks the most accurate
variant meeting a budget, the family in the bundle folder and in report.json, and bad input refused.

The network is the shared CIFAR-10 ResNet-20 on the analytical ZCU102 template, scored on 64
partial-test images without training (quick, deterministic)."""

from __future__ import annotations

import json

import pytest

from nn2hw.api import search
from nn2hw.bundle import load_bundle, load_family
from nn2hw.cli import main
from nn2hw.compress import apply_plan
from nn2hw.errors import CheckpointError, ConfigError, InfeasibleError
from nn2hw.search import SearchSettings, Spec
from nn2hw.search.context import prepare
from nn2hw.search.family import NoLevelMet
from nn2hw.search.settings import Member

pytestmark = pytest.mark.data
BASE = {"model": "resnet20", "dataset": "cifar10", "split": "test-partial", "select_on_test": True}


@pytest.fixture(scope="module")
def ctx(shared_data, tmp_path_factory):
    """A prepared context (base and leanest costs, the base workload and target)."""
    return prepare(SearchSettings(**BASE, spec=Spec(latency_ms=1.0), out=str(tmp_path_factory.mktemp("b"))),
                   evaluator=lambda m: {"top1": 0.0})


def levels_between(ctx, *fractions):
    base, lean = ctx.base_cost.latency_ms, ctx.bound_cost.latency_ms
    return tuple(round(lean + f * (base - lean), 6) for f in fractions)


def run_family(out, partial_cifar_scorer, levels, **kw):
    options = {"strategy": "random", "trials": 8, "seed": 0, **BASE, **kw}
    return search(evaluator=partial_cifar_scorer, progress=False, latency_levels_ms=levels, out=str(out), **options)


@pytest.fixture(scope="module")
def family_run(ctx, partial_cifar_scorer, tmp_path_factory):
    """A family of 3 reachable levels (given unsorted) and one below the leanest candidate."""
    out = tmp_path_factory.mktemp("family")
    levels = levels_between(ctx, 0.8, 0.3, 0.55)
    return run_family(out, partial_cifar_scorer, (*levels, unreachable(ctx))), out, tuple(sorted(levels))


def unreachable(ctx):
    return round(ctx.bound_cost.latency_ms * 0.9, 6)


def choices(plan):
    return {(layer, name): value for layer, choice in plan.choices.items() for name, value in choice.values.items()}


def test_each_level_has_a_variant_that_meets_it_and_their_latencies_are_ordered(family_run, ctx):
    result, out, levels = family_run
    family = load_family(out)
    assert [v.level_ms for v in family.variants] == list(levels)
    workload = ctx.members[0].workload
    plans = []
    for v in family.variants:
        _, plan, hardware = family.load(v)
        assert plan.key == v.plan_key
        again = ctx.target.recost(apply_plan(plan, workload), hardware["design"])  # re-costed from the bundle
        assert again.latency_ms == pytest.approx(v.latency_ms) and again.latency_ms <= v.level_ms and again.fits
        plans.append(plan)
    latencies = [v.latency_ms for v in family.variants]
    assert latencies == sorted(latencies)  # tighter level, lower latency
    for tighter, looser in zip(plans, plans[1:]):  # nested: every change of a looser plan is in the tighter one
        assert choices(looser).items() <= choices(tighter).items()
    assert result.solution.cost.latency_ms == pytest.approx(family.variants[0].latency_ms)  # the tightest level's
    assert len(plans[0].choices) > len(plans[-1].choices)  # the loosest needs fewer changes


def test_shared_weights_are_the_same_bundle_and_own_weights_a_bundle_of_their_own(family_run, partial_cifar_scorer):
    _, out, _ = family_run
    family = load_family(out)
    for v in family.variants:
        owner = next((w for w in family.variants if w.level_ms == v.shares_weights_with), v)
        assert family.path(v) == family.path(owner) and v.plan_key == owner.plan_key
        model, _, _ = family.load(v)
        assert partial_cifar_scorer(model)["top1"] == v.metrics["top1"]  # the bundle holds the variant that was scored
    own = {family.path(v) for v in family.variants}
    assert len(own) == len({v.plan_key for v in family.variants})


def test_select_picks_the_most_accurate_variant_meeting_the_budget(family_run):
    _, out, levels = family_run
    family = load_family(out)
    for v in family.variants:
        for budget in (v.latency_ms, v.latency_ms * 1.001, levels[-1] * 2):
            meeting = [w for w in family.variants if w.latency_ms <= budget]
            chosen = family.select(budget)
            assert chosen in meeting
            assert chosen.metrics["top1"] == max(w.metrics["top1"] for w in meeting)
    fastest = min(family.variants, key=lambda v: v.latency_ms)
    with pytest.raises(InfeasibleError, match=f"fastest is level {fastest.level_ms:g} ms") as info:
        family.select(fastest.latency_ms * 0.99)
    assert info.value.best_bound == pytest.approx(fastest.latency_ms)
    for bad in (0, -1.0, float("nan"), "0.2"):
        with pytest.raises(ConfigError, match="positive number"):
            family.select(bad)


def test_report_and_summary_show_every_level(family_run, ctx):
    result, out, levels = family_run
    report = json.loads((out / "report.json").read_text())
    section = report["family"]
    assert section["levels_ms"] == sorted([*levels, unreachable(ctx)]) and section["metric"] == "top1"
    assert [v["level_ms"] for v in section["variants"]] == list(levels)
    assert all({"latency_ms", "metrics", "shares_weights_with", "bundle"} <= set(v) for v in section["variants"])
    assert section == load_family(out).to_dict() == result.family
    html = (out / "summary.html").read_text()
    assert all(f"family level {level:g} ms" in html for level in levels)


def test_the_bundle_of_the_tightest_level_is_the_output_folders_own(family_run):
    result, out, _ = family_run
    _, plan, _ = load_bundle(out)
    assert plan.key == load_family(out).variants[0].plan_key == result.solution.plan.key


def test_cli_select_prints_the_choice_and_refuses_a_budget_below_the_fastest(family_run, capsys, tmp_path):
    _, out, _ = family_run
    family = load_family(out)
    budget = family.variants[1].latency_ms
    assert main(["bundle", "select", str(out), "--latency-ms", str(budget), "--json", str(tmp_path / "c.json")]) == 0
    chosen = json.loads((tmp_path / "c.json").read_text())["selected"]
    assert chosen["level_ms"] == family.select(budget).level_ms
    assert "selected level" in capsys.readouterr().out
    assert main(["bundle", "select", str(out), "--latency-ms", str(family.variants[0].latency_ms / 2)]) == 2
    assert "fastest is level" in capsys.readouterr().err
    assert main(["bundle", "select", str(tmp_path), "--latency-ms", "1"]) == 2
    assert "no family.json" in capsys.readouterr().err


def test_a_level_below_the_leanest_candidate_is_reported_missing(family_run, ctx):
    result, out, levels = family_run
    missing, = load_family(out).missing
    assert missing["level_ms"] == unreachable(ctx) and "leanest candidate" in missing["reason"]
    assert result.spec["latency_ms"] == levels[0]  # the search targeted the tightest reachable level
    assert "MISSING" in (out / "summary.html").read_text()


def test_no_reachable_level_is_an_error_naming_each(ctx, partial_cifar_scorer, tmp_path):
    lean = ctx.bound_cost.latency_ms
    with pytest.raises(NoLevelMet, match="No level of the family") as info:
        run_family(tmp_path / "run", partial_cifar_scorer, (round(lean * 0.8, 6), round(lean * 0.9, 6)))
    assert "0.8" not in info.value.fix and info.value.cause.count("leanest candidate") == 2


def test_levels_the_base_meets_share_the_base_network(ctx, partial_cifar_scorer, tmp_path):
    base = ctx.base_cost.latency_ms
    result = run_family(tmp_path / "run", partial_cifar_scorer, (round(base * 1.2, 6), round(base * 1.5, 6)))
    family = load_family(tmp_path / "run")
    assert result.trials["total"] == 0 and [v.changed_layers for v in family.variants] == [0, 0]
    assert family.variants[1].shares_weights_with == family.variants[0].level_ms
    assert family.select(base * 2) == family.variants[0]  # equal accuracy: the faster (here: the same network)


@pytest.mark.parametrize(("levels", "message"), [
    ((0.3,), "at least 2 latency levels"),
    ((0.3, 0.3, 0.2), "more than once"),
    ((0.3, -0.2), "positive numbers"),
    ((0.3, float("inf")), "positive numbers"),
])
def test_bad_levels_are_refused(levels, message):
    with pytest.raises(ConfigError, match=message):
        SearchSettings(**BASE, spec=Spec(latency_ms=0.3), latency_levels_ms=levels)


def test_levels_are_sorted_and_modes_a_family_cannot_serve_are_refused(tmp_path):
    s = SearchSettings(**BASE, spec=Spec(latency_ms=0.2), latency_levels_ms=(0.3, 0.2, 0.25))
    assert s.latency_levels_ms == (0.2, 0.25, 0.3)
    with pytest.raises(ConfigError, match="not one of the family's levels"):
        SearchSettings(**BASE, spec=Spec(latency_ms=0.1), latency_levels_ms=(0.3, 0.2))
    with pytest.raises(ConfigError, match="--with"):
        SearchSettings(**BASE, spec=Spec(latency_ms=0.2), latency_levels_ms=(0.3, 0.2),
                       companions=(Member("mobilenetv2_fmnist", "fashion-mnist"),))
    with pytest.raises(ConfigError, match="--min-accuracy-under-variation"):
        SearchSettings(**BASE, spec=Spec(latency_ms=0.2), hardware="cim:reram", latency_levels_ms=(0.3, 0.2),
                       min_accuracy_under_variation=80.0)
    with pytest.raises(ConfigError, match="Both a latency spec"):
        search(**BASE, latency_ms=0.3, latency_levels_ms=(0.3, 0.2), out=str(tmp_path / "x"))
    with pytest.raises(CheckpointError, match="no family.json"):
        load_family(tmp_path)


@pytest.mark.parametrize(("argv", "message"), [
    (["--latency-levels-ms", "0.3,0.3"], "more than once"),
    (["--latency-levels-ms", "0.3"], "at least 2"),
    (["--latency-levels-ms", "0.3,-1"], "positive"),
    (["--latency-levels-ms", "0.3,0.2", "--latency-ms", "0.3"], "--latency-levels-ms alone"),
    (["--latency-levels-ms", "0.3,fast"], "comma-separated"),
])
def test_cli_bad_levels_exit_2_naming_the_fix(argv, message, capsys, tmp_path):
    try:
        code = main(["search", "--model", "resnet20", "--dataset", "cifar10", "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # argparse refuses what is not a list of numbers
        code = exc.code
    assert code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_level_context_takes_any_latency(ctx):
    """Finalizing and minimizing one level (or a level scaled by a predictor's error) is a single
    search's context: any latency, no levels."""
    from dataclasses import replace

    from nn2hw.search.family import at_level

    family_ctx = replace(ctx, settings=replace(ctx.settings, spec=Spec(latency_ms=0.3), latency_levels_ms=(0.3, 0.4)))
    level = at_level(family_ctx, 0.2712)
    assert level.settings.spec.latency_ms == 0.2712 and level.settings.latency_levels_ms == ()
    assert level.spec.latency_ms == 0.2712 and family_ctx.settings.spec.latency_ms == 0.3
