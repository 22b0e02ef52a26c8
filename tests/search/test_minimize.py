"""Minimal plans (issue 13 part 2): every change of a minimized candidate is needed (removing any one
misses a spec or fits no design), every removal kept the specs met, removals follow the accuracy
risk, passes repeat until nothing more can go, and a search reports what it removed."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from types import SimpleNamespace

import numpy as np
import pytest

from nn2hw.api import zoo_workload
from nn2hw.compress import SpaceContext, apply_plan, with_cut, with_quantization
from nn2hw.errors import HardwareError, InfeasibleError, PlanError
from nn2hw.plan import Plan
from nn2hw.search import minimize
from nn2hw.search.context import MemberContext, SearchContext, _bottlenecks
from nn2hw.search.minimize import (
    accuracy_risk,
    minimize_plan,
    minimize_vector,
    missed,
    plan_changes,
)
from nn2hw.search.settings import Member, SearchSettings
from nn2hw.search.target import HardwareTarget
from nn2hw.space import HARDWARE, JointSpace, build_space
from nn2hw.spec import Spec

MODEL, DATASET = "resnet20", "fashion-mnist"


def context(hardware: str, **spec: float) -> SearchContext:
    """A search context for the Fashion-MNIST ResNet-20 (baked workload, no torch): its space on
    ``hardware`` with kernel patterns chosen from seeded random weights (the patterns' identity
    does not matter to the cost)."""
    workload = zoo_workload(MODEL, DATASET)
    target = HardwareTarget.parse(hardware, {}, {}, spec)
    base = target.best(workload)
    bottlenecks = _bottlenecks(base, [MODEL])
    rng = np.random.default_rng(0)

    def weights(name: str) -> np.ndarray:
        layer = workload.layer(name)
        return rng.standard_normal((layer.out_channels, layer.in_channels // layer.groups, layer.kernel_h,
                                    layer.kernel_w))

    space = build_space(workload, bottlenecks[MODEL], Plan.for_workload(workload, MODEL, DATASET),
                        remedies=target.template.remedies, vocabulary=target.template.bottlenecks,
                        context=SpaceContext(weights=weights), space_options=target.template.space_options,
                        hardware=target.knob_dimensions(workload))
    settings = SearchSettings(model=MODEL, dataset=DATASET, spec=Spec(**spec), hardware=hardware)
    members = (MemberContext(Member(MODEL, DATASET), None, workload, None, ""),)  # type: ignore[arg-type]
    return SearchContext(settings, members, target, base, bottlenecks, JointSpace(((MODEL, space),)), ())


def meets(ctx: SearchContext, vector: tuple[int, ...]) -> bool:
    """Whether a candidate meets every spec on a design that fits, costed afresh (not by minimize)."""
    candidate = ctx.space.decode(vector)
    try:
        cost = ctx.target.best(ctx.workloads(candidate.plans), candidate.hardware)
    except (PlanError, InfeasibleError, HardwareError):
        return False
    return cost.fits and ctx.spec.met(cost)


def feasible_vectors(ctx: SearchContext, count: int, seed: int) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    found: list[tuple[int, ...]] = []
    while len(found) < count:
        vector = tuple(rng.randrange(n) for n in ctx.space.counts)
        if meets(ctx, vector):
            found.append(vector)
    return found


def dimension_of(ctx: SearchContext, change: minimize.Change) -> int:
    matches = [k for k, d in enumerate(ctx.space.dimensions) if d.technique == change.technique
               and d.layers == change.layers]
    assert len(matches) == 1
    return matches[0]


def zeroed(vector: tuple[int, ...], k: int) -> tuple[int, ...]:
    return (*vector[:k], 0, *vector[k + 1:])


@pytest.mark.parametrize("hardware, spec, count", [
    ("fpga:zcu102", {"latency_ms": 0.3}, 6),
    ("fpga:zcu102", {"latency_ms": 0.26}, 4),
    ("eyeriss", {"latency_ms": 0.6, "energy_mj": 0.23}, 1),  # eyeriss: ~0.1 s per re-costing
])
def test_every_kept_change_is_needed_and_every_removal_kept_the_spec(hardware, spec, count):
    ctx = context(hardware, **spec)
    for vector in feasible_vectors(ctx, count, seed=len(spec) + count):
        result = minimize_vector(ctx, vector)
        changed = {k for k, (d, i) in enumerate(zip(ctx.space.dimensions, vector)) if i and d.technique != HARDWARE}
        removed = [dimension_of(ctx, c) for c in result.removed]
        kept = [dimension_of(ctx, c) for c in result.kept]
        assert sorted(removed + kept) == sorted(changed)
        state = vector
        for k in removed:  # replayed in the order removed: the specs held after each removal
            state = zeroed(state, k)
            assert meets(ctx, state), (vector, k)
        assert state == result.indices
        assert all(result.indices[k] == vector[k] for k in kept)
        for k, change in zip(kept, result.kept):  # the guarantee: removing any one remaining change misses
            assert not meets(ctx, zeroed(state, k)), (vector, k)
            assert change.needed
        assert ctx.spec.met(result.after) and result.after.fits
        for sweep in range(1, result.passes + 1):  # within a pass, removals go by falling risk
            risks = [c.risk for c in result.removed if c.sweep == sweep]
            assert risks == sorted(risks, reverse=True)
        assert result.passes == 1 + max((c.sweep for c in result.removed), default=0)


def test_minimizing_a_minimal_candidate_removes_nothing():
    """Random feasible candidates of the FPGA space carry changes their spec does not need; their
    minimal candidates are fixpoints: minimizing one again removes nothing."""
    ctx = context("fpga:zcu102", latency_ms=0.3)
    results = [minimize_vector(ctx, v) for v in feasible_vectors(ctx, 4, seed=1)]
    assert all(r.removed for r in results)
    for r in results:
        again = minimize_vector(ctx, r.indices)
        assert not again.removed and again.passes == 1 and again.after.latency_ms == pytest.approx(r.after.latency_ms)


def test_accuracy_risk_counts_the_parameters_a_change_takes_away():
    workload = zoo_workload(MODEL, DATASET)
    base = Plan.for_workload(workload, MODEL, DATASET)
    bases = {MODEL: workload}

    def risk(plan: Plan) -> float:
        return accuracy_risk(bases, {MODEL: apply_plan(plan, workload)}, bases)

    cut, consumer = workload.layer("layer1.0.conv1"), workload.layer("layer1.0.conv2")
    assert risk(with_cut(base, workload, "layer1.0.conv1", 8)) == pytest.approx(
        cut.parameters / 2 + consumer.parameters / 2)  # its filters and its consumer's input channels
    conv = workload.layer("layer3.0.conv2")
    assert risk(with_quantization(base, workload, 8, "layer3.0.conv2")) == 0  # 8 bits: no informative bit lost
    assert risk(with_quantization(base, workload, 4, "layer3.0.conv2")) == pytest.approx(conv.parameters / 2)
    assert risk(with_quantization(base, workload, 4, "layer3.0.conv2", act_bits=4)) == pytest.approx(
        conv.parameters * 3 / 4)


def test_a_loose_spec_removes_every_change_in_order_of_risk():
    workload = zoo_workload(MODEL, DATASET)
    plan = with_cut(Plan.for_workload(workload, MODEL, DATASET), workload, "layer3.0.conv1", 16)
    plan = with_quantization(plan, workload, 4, "layer2.0.conv1")
    plan = with_quantization(plan, workload, 8, "layer1.0.conv1")
    target = HardwareTarget.parse("fpga:zcu102")
    spec = Spec(latency_ms=target.best(workload).latency_ms * 1.001)  # the base model meets it
    result = minimize_plan(plan, workload, target, spec)
    assert [(c.technique, c.layers) for c in result.removed] == [
        ("channel_cut", ("layer3.0.conv1",)), ("quantize", ("layer2.0.conv1",)), ("quantize", ("layer1.0.conv1",))]
    assert result.plan.choices == {} and result.plan.hardware["template"] == "fpga"
    assert not result.kept and result.passes == 2


def test_passes_repeat_when_a_removal_makes_an_earlier_one_possible(monkeypatch):
    """Removing a change can lower the cost (int8 on a few channels on a CPU): A cannot go first,
    B can and makes the candidate cheaper, then A can go in the next pass; C is needed throughout."""
    latency = {frozenset("ABC"): 1.0, frozenset("BC"): 1.2, frozenset("AC"): 0.9, frozenset("C"): 1.0}
    risk = {"A": 3.0, "B": 2.0, "C": 1.0}
    monkeypatch.setattr(minimize, "accuracy_risk",
                        lambda bases, now, without: sum(risk[u] for u in now["n"] - without["n"]))
    problem = minimize._Problem(
        ("n",), {}, lambda state: [minimize._Unit(u, "t", (u,), u) for u in sorted(state)],
        lambda state, key: state - {key}, lambda state: {"n": state},
        lambda networks: SimpleNamespace(latency_ms=latency.get(networks["n"], 1.5), resources=(), fits=True),
        Spec(latency_ms=1.0))
    state, done = minimize._greedy(problem, frozenset("ABC"), "The candidate")
    assert [(c.layers, c.sweep) for c in done.removed] == [(("B",), 1), (("A",), 2)]
    assert [c.layers for c in done.kept] == [("C",)] and done.kept[0].needed.startswith("latency 1.5")
    assert state == frozenset("C") and done.passes == 3


def test_a_candidate_that_misses_the_spec_is_refused():
    ctx = context("fpga:zcu102", latency_ms=0.3)
    with pytest.raises(InfeasibleError, match="does not meet the spec to begin with: latency 0.4167"):
        minimize_vector(ctx, (0,) * len(ctx.space.dimensions))


def test_a_coupling_group_is_one_change_of_a_plan():
    workload = zoo_workload("mobilenetv2_fmnist", DATASET)
    group = next(g for g in workload.coupling_groups if len(g.layers) == 3 and g.cuttable)
    plan = with_cut(Plan.for_workload(workload, "mobilenetv2_fmnist", DATASET), workload, group.layers[0], 8)
    plan = with_quantization(plan, workload, 6, group.layers[0])
    assert [(t.name, layers) for t, layers in plan_changes(plan, workload)] == [
        ("channel_cut", group.layers), ("quantize", (group.layers[0],))]


def test_missed_names_resources_before_specs():
    cost = SimpleNamespace(resources=(SimpleNamespace(name="DSP", used=3000.0, available=2520.0, fits=False),),
                           latency_ms=1.0)
    assert missed(Spec(latency_ms=0.5), cost) == "design exceeds DSP 3000 > 2520"


# --- over real searches ----------------------------------------------------------------------------
SEARCHES = [("fpga:zcu102", 0.3, True), ("fpga:zcu102", 0.27, True), ("eyeriss", 0.6, True),
            ("fpga:zcu102", 0.3, False)]


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    from tests.data.helpers import install_fake_fmnist, write_files

    root = tmp_path_factory.mktemp("fmnist")
    with pytest.MonkeyPatch.context() as mp:
        write_files(root / "data" / "fashion-mnist", install_fake_fmnist(mp, root, 40))
        yield root


def score(model) -> dict[str, float]:
    """More parameters score higher: quick, deterministic, and the search's ranking means something."""
    return {"top1": 50.0 + sum(p.numel() for p in model.parameters()) / 1e4, "top5": 90.0}


@pytest.mark.parametrize("hardware, latency, minimized", SEARCHES)
def test_every_change_of_a_searched_plan_is_needed(fake_fmnist, hardware, latency, minimized):
    """A search, its winner minimized in finalize: removing any one change of the returned plan
    misses the spec; the report lists what was removed. (10-17 s each on this shared two-core box: loading,
    tracing and applying plans to the torch model dominate, not minimizing, 0.3-3 s.)"""
    from nn2hw.search import run_search

    out = fake_fmnist / f"run-{hardware}-{latency}-{minimized}"
    result = run_search(SearchSettings(model=MODEL, dataset=DATASET, spec=Spec(latency_ms=latency), hardware=hardware,
                                       strategy="random", trials=3, seed=3, out=str(out), minimize=minimized),
                        evaluator=score, progress=False, log=lambda _: None)
    report = json.loads((out / "report.json").read_text())
    plan = result.solution.plan
    workload = zoo_workload(MODEL, DATASET)
    target = HardwareTarget.parse(hardware, {}, {}, {"latency_ms": latency})
    needed = []
    for transform, layers in plan_changes(plan, workload):
        without = plan
        for name in layers:
            without = without.with_choice(name, **dict.fromkeys(transform.fields()))
        cost = target.best(apply_plan(without, workload))
        needed.append(bool(missed(target.spec, cost)))
    if not minimized:
        assert "removed_changes" not in report["solution"]
        assert not any("Minimal plan" in note for note in report["notes"])
        return
    assert all(needed) and needed, report["solution"]
    removed = report["solution"]["removed_changes"]
    assert isinstance(removed, list) and all({"technique", "layers", "label", "risk"} <= set(c) for c in removed)
    assert report["solution"]["minimization"]["latency_ms_after"] == pytest.approx(result.solution.cost.latency_ms)
    assert any(note.startswith(f"Minimal plan of trial {result.solution.trial}") for note in report["notes"])
    assert len(report["solution"]["minimization"]["kept"]) == len(needed)


def test_finalize_returns_the_winner_whole_when_its_minimal_plan_fails_the_recheck(monkeypatch):
    """As on a measured template whose timing refuses the minimal candidate: the note says so and the
    trial's own candidate is returned, unminimized."""
    from nn2hw.search import finalize

    ctx = context("fpga:zcu102", latency_ms=0.3)
    vector = feasible_vectors(ctx, 1, seed=5)[0]
    plans = ctx.space.decode(vector).plans
    trial = SimpleNamespace(number=7, params=dict(zip(ctx.space.names, vector)),
                            user_attrs={"plans": {n: p.to_dict() for n, p in plans.items()}, "knobs": {}})
    notes: list[str] = []
    checked = finalize.minimal(ctx, trial, notes)
    assert checked.minimized is not None and checked.minimized.removed
    assert len(checked.plans[MODEL].choices) < len(plans[MODEL].choices)
    assert notes[0].startswith("Minimal plan of trial 7:")
    recheck = finalize.recheck
    monkeypatch.setattr(finalize, "recheck", lambda ctx, number, given, knobs: "trial 7: measured 0.31 ms > spec 0.3 ms"
                        if given != plans else recheck(ctx, number, given, knobs))
    notes.clear()
    checked = finalize.minimal(ctx, trial, notes)
    assert checked.minimized is None and checked.plans[MODEL].choices == plans[MODEL].choices
    assert "failed the re-check (trial 7: measured 0.31 ms > spec 0.3 ms)" in notes[0]


def _timed_as(monkeypatch: pytest.MonkeyPatch, measured_ms: Callable[[float, Mapping[str, Plan]], float]) -> None:
    """Make a search context time a candidate (as a measured template's re-check does) at
    ``measured_ms(predicted_ms, plans)``."""
    def timed(self: SearchContext, plans: Mapping[str, Plan], repeats_factor: int = 1, *,
              against_base: bool = False) -> SimpleNamespace:
        assert against_base and repeats_factor == 2, "a re-check times the finalist anew, against its base"
        cost = self.target.best(self.workloads(plans))
        median = measured_ms(cost.latency_ms, plans)
        return SimpleNamespace(median_ms=median, cost=cost, measurement=SimpleNamespace(median_ms=median, iqr_ms=0.0),
                               drift=None, to_dict=lambda: {"median_ms": median})

    monkeypatch.setattr(SearchContext, "timed", timed)


def _measured_context(latency_ms: float) -> SearchContext:
    """``context`` as on a measured template (the latency spec keeps the search's margin)."""
    from dataclasses import replace

    return replace(context("fpga:zcu102", latency_ms=latency_ms), measured_base={MODEL: None})


def _trial(ctx: SearchContext, vector: tuple[int, ...]) -> SimpleNamespace:
    plans = ctx.space.decode(vector).plans
    return SimpleNamespace(number=7, params=dict(zip(ctx.space.names, vector)),
                           user_attrs={"plans": {n: p.to_dict() for n, p in plans.items()}, "knobs": {}})


def test_a_minimal_plan_the_measurement_refuses_loses_only_the_removals_it_must(monkeypatch):
    """A predictor low on some removals (issue 10's MiniLM: minimal plans measured 1.19-1.28x their
    prediction, the trial itself within 5 %) costs those removals, not all of them: the removals are
    undone from the last back (a bisection over how many, each plan re-timed), then each later
    removal is tried alone on top of the plan kept; the most minimized plan the measurement lets
    through comes back, with the undone changes marked as kept."""
    from nn2hw.hardware.cpu import margin_of
    from nn2hw.search import finalize
    from nn2hw.search.minimize import partly_minimized

    ctx = _measured_context(0.35)
    allowed = 0.35 / (1 + margin_of(ctx.target.options))
    vector = feasible_vectors(ctx, 1, seed=0)[0]
    first = minimize_vector(ctx, vector)
    count = len(first.removed)

    def latency_of(made: list[int]) -> float:
        return partly_minimized(ctx, vector, first, made).after.latency_ms

    path = [latency_of(list(range(k))) for k in range(count + 1)]
    assert path == sorted(path) and path[-1] == pytest.approx(first.after.latency_ms)
    fast = max(k for k, ms in enumerate(path) if ms < 0.29)  # the device: any plan predicted above 0.29 ms is over
    assert 0 < fast < count - 1
    _timed_as(monkeypatch, lambda predicted, plans: predicted if predicted < 0.29 else allowed * 1.01)
    timings: list[object] = []
    recheck = finalize.recheck
    monkeypatch.setattr(finalize, "recheck", lambda *args: timings.append(recheck(*args)) or timings[-1])
    notes: list[str] = []
    checked = finalize.minimal(ctx, _trial(ctx, vector), notes)
    assert not isinstance(checked, str) and checked.minimized is not None
    key = [(c.technique, c.layers) for c in first.removed]
    made = [key.index((c.technique, c.layers)) for c in checked.minimized.removed]
    assert made[:fast] == list(range(fast)) and len(made) > fast  # the prefix, and a later removal on its own
    undone = [c for c in checked.minimized.kept if c.needed == minimize.UNDONE]
    assert sorted(made + [key.index((c.technique, c.layers)) for c in undone]) == list(range(count))
    assert checked.cost.latency_ms == pytest.approx(latency_of(made)) and checked.cost.latency_ms < 0.29
    assert all(latency_of([*made, key.index((c.technique, c.layers))]) >= 0.29 for c in undone)
    assert len(timings) <= 1 + math.ceil(math.log2(count)) + count - fast - 1
    refused = sum(isinstance(result, str) for result in timings)
    assert notes[0].startswith(f"Minimal plan of trial 7 ({len(undone)} of its {count} removals undone: "
                               f"the measurement refused {refused} more minimized plan(s)"), notes


def test_the_trial_comes_back_whole_when_the_measurement_refuses_every_removal(monkeypatch):
    """A device on which every plan with a removal measures just over what is allowed: the
    bisection ends at the trial itself, each later removal alone is refused too, and the trial is
    returned with all its changes and a note saying how many plans were refused."""
    from nn2hw.hardware.cpu import margin_of
    from nn2hw.search import finalize

    ctx = _measured_context(0.35)
    vector = feasible_vectors(ctx, 1, seed=0)[0]
    whole = ctx.space.decode(vector).plans
    over = 0.35 / (1 + margin_of(ctx.target.options)) * 1.01
    _timed_as(monkeypatch, lambda predicted, plans: predicted if plans[MODEL].choices == whole[MODEL].choices
              else over)
    notes: list[str] = []
    checked = finalize.minimal(ctx, _trial(ctx, vector), notes)
    assert not isinstance(checked, str) and checked.minimized is None
    assert checked.plans[MODEL].choices == whole[MODEL].choices
    assert notes[0].startswith("The minimal plan of trial 7 failed the re-check (trial 7: measured median"), notes
    assert "and so did 21 plan(s) with fewer of its removals" in notes[0]  # 18 removals: 9, 4, 2, 1, then 17 alone
    assert "returned with all its changes" in notes[0]
