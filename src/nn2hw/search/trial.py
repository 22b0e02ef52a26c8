"""One trial: propose, cost first, train only what meets every spec, tell the study.

A proposal (an index vector over the space) is ``assess``ed: decoded into plans and hardware
knobs, applied to the workloads (no torch) and costed on its best design. The latency-first
prefilter asks the same question of every proposal before it becomes a trial; a trial whose
candidate misses a spec or fits no design is recorded with the reason and never trained.

The strategies are imported where they are used: their package loads torch (REINFORCE's
controller), and importing the search must not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from nn2hw._json import jsonable
from nn2hw.errors import HardwareError, InfeasibleError, PlanError
from nn2hw.evaluate.evaluator import Checkpoints
from nn2hw.evaluate.store import EvaluationStore
from nn2hw.hardware.records import NetworkCost
from nn2hw.plan import Plan
from nn2hw.search.evaluations import evaluate_networks, joint_key, joint_metrics
from nn2hw.search.pruning import (
    Pruned,
    StudyPruner,
    checkpoint_steps,
    pruned_before,
    record_pruned,
    trial_checkpoints,
)
from nn2hw.search.variation import trained_plans
from nn2hw.space import Dimension, JointCandidate
from nn2hw.spec import METRICS

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext
    from nn2hw.search.strategies import Observation, RewardConfig, StrategyInfo

NO_DESIGN_MS = 1e12  # objective value standing in for "no design can run it" (Optuna needs a number)


@dataclass(frozen=True)
class Assessment:
    """A candidate costed on its best design: the cost (None when no design runs it) and why it
    misses ('' when it meets every spec)."""

    candidate: JointCandidate
    cost: NetworkCost | None
    reason: str

    @property
    def feasible(self) -> bool:
        return self.cost is not None and not self.reason


ASSESSMENTS_KEPT = 512
"""How many assessments a search context keeps, the least recently used dropped first (one holds
its plans and per-layer costs: about 36 KB for ResNet-20)."""


def assess(ctx: SearchContext, indices: tuple[int, ...] | list[int]) -> Assessment:
    """Decode ``indices`` and cost the candidate on its best design, from the cost model alone.

    Memoized per index vector on ``ctx`` (``ASSESSMENTS_KEPT`` of them): the latency-first
    prefilter and the trial that takes its accepted proposal ask the same question."""
    key = tuple(int(i) for i in indices)
    kept = ctx.assessments
    found = kept.get(key)
    if found is not None:
        kept.move_to_end(key)
        return found
    candidate = ctx.space.decode(key)
    try:
        cost = ctx.target.best(ctx.workloads(candidate.plans), candidate.hardware)
    except (PlanError, InfeasibleError, HardwareError) as exc:
        found = Assessment(candidate, None, f"no design: {exc.cause}")
    else:
        found = Assessment(candidate, cost, ctx.spec.describe_miss(cost))
        if ctx.measured_base is not None and found.feasible:
            found = _timed(ctx, candidate, cost)
    kept[key] = found
    if len(kept) > ASSESSMENTS_KEPT:
        kept.popitem(last=False)
    return found


def _timed(ctx: SearchContext, candidate: JointCandidate, predicted: NetworkCost) -> Assessment:
    """On a measured template, a candidate the predictor lets through is timed on this machine
    before anything trains it (about a second, once per network: the measurement store keeps it):
    its latency is the measured median, checked with the margin (CANAO's measured loop)."""
    from nn2hw.hardware.cpu import margin_of
    from nn2hw.measured import missed

    timed = ctx.timed(candidate.plans)
    reason = missed(timed, ctx.settings.spec.latency_ms, margin_of(ctx.target.options), predicted.latency_ms)
    return Assessment(candidate, timed.cost, reason)


def observe(names: tuple[str, ...], metric: str) -> Callable[[FrozenTrial], Observation]:
    """How a strategy reads a finished trial: its indices, feasibility, metric and latency. A pruned
    trial's metric is its partial score where it was stopped (pessimistic: its fine-tune stopped early)."""
    from nn2hw.search.strategies import Observation
    from nn2hw.search.strategies.sampler import slot_of

    def to_observation(t: FrozenTrial) -> Observation:
        a = t.user_attrs
        score = a.get(metric) if a.get(metric) is not None else a.get(f"{metric}_partial")
        return Observation(slot_of(t), tuple(int(t.params[n]) for n in names), bool(a.get("feasible")),
                           score, a.get("latency_ms"))

    return to_observation


def _prefilter(ctx: SearchContext) -> Callable[[tuple[int, ...]], tuple[bool, float | None]]:
    """(meets every spec, latency) of a proposal (``assess``, memoized): what the latency-first
    prefilter asks before a proposal becomes a trial."""
    def check(indices: tuple[int, ...]) -> tuple[bool, float | None]:
        found = assess(ctx, indices)
        return found.feasible, found.cost.latency_ms if found.cost is not None else None

    return check


def make_sampler(ctx: SearchContext, reward: RewardConfig, log: Callable[[str], None] = print
                 ) -> tuple[optuna.samplers.BaseSampler, StrategyInfo]:
    """The strategy's Optuna sampler, with the prefilter of ``ctx`` and ``reward``; a sampler that
    needs the search itself (``differentiable``'s supernet) or says things (a finite strategy) is
    handed ``ctx`` and the search's ``log`` (``bind_search``)."""
    from nn2hw.search.strategies import build_sampler
    from nn2hw.search.strategies.sampler import SamplerContext

    s = ctx.settings
    sctx = SamplerContext(ctx.space.names, ctx.space.counts, reward, s.seed, observe(ctx.space.names, s.metric),
                          dict(s.strategy_options), check=_prefilter(ctx), attempts=s.proposals,
                          dimensions=ctx.space.dimensions)
    sampler, info = build_sampler(s.strategy, sctx)
    bind = getattr(sampler, "bind_search", None)
    if callable(bind):
        bind(ctx, log)
    return sampler, info


def human_values(dimensions: Sequence[Dimension], indices: Sequence[int]) -> dict[str, str]:
    """What each chosen index means, by parameter name, for people reading the study in Optuna's
    tools (its parameters are choice indices): 'channel_cut:layer1.0.conv1' -> '12 ch (base: 16 ch)',
    'kernel_pattern:conv1' -> '4 patterns, 5/9 kept (base: dense); patterns 3, 4, 23, 29'."""
    found = {}
    for d, i in zip(dimensions, indices):
        text = d.labels[i] if i == 0 else f"{d.labels[i]} (base: {d.labels[0]})"
        if isinstance(d.choices[i], Mapping):
            text += "".join(f"; {field} {', '.join(map(str, value))}" for field, value in d.choices[i].items()
                            if isinstance(value, (list, tuple)))
        found[d.name] = text
    return found


def objective_names(metric: str, objectives: int) -> tuple[str, ...]:
    """The names of the values ``run_trial`` tells: the metric (percent; 0 when a spec is missed),
    then the latency in ms for a two-objective strategy."""
    return (metric, "latency_ms")[:objectives]


def run_trial(ctx: SearchContext, study: optuna.Study, trial: optuna.Trial, store: EvaluationStore,
              objectives: int) -> None:
    """Cost one candidate; train it only when it meets every spec; tell the study."""
    start = time.perf_counter()  # the loop recorded the trial's owner when it asked for it
    indices = [trial.suggest_categorical(n, list(range(c))) for n, c in zip(ctx.space.names, ctx.space.counts)]
    for name, meaning in human_values(ctx.space.dimensions, indices).items():
        trial.set_user_attr(name, meaning)
    found = assess(ctx, indices)
    cand, cost = found.candidate, found.cost
    plans = trained_plans(ctx, cand.plans, cost)  # variation-aware fine-tuning carries its noise in the plan
    trial.set_user_attr("plans", {net: plan.to_dict() for net, plan in plans.items()})
    trial.set_user_attr("plan_key", joint_key(plans))
    trial.set_user_attr("knobs", dict(cand.hardware))
    if cost is not None:
        trial.set_user_attr("design", jsonable(cost.design))
        for name in METRICS:
            trial.set_user_attr(name, getattr(cost, name))
        for name, g in ctx.spec.violations(cost).items():
            trial.set_constraint(name, g)
    else:
        for name in ctx.spec.limits:
            trial.set_constraint(name, 1.0)
    trial.set_user_attr("feasible", found.feasible)
    trial.set_user_attr("reason", found.reason)
    latency = cost.latency_ms if cost is not None else NO_DESIGN_MS
    if not found.feasible:
        study.tell(trial, [0.0] if objectives == 1 else [0.0, latency])
        return
    checkpoints = _checkpoints(ctx, study, trial)
    if checkpoints is not None and (earlier := pruned_before(study, joint_key(plans))) is not None:
        _pruned_as(study, trial, earlier, ctx.settings.metric)
        return
    try:
        per_network, computed = evaluate_networks(ctx, plans, store, checkpoints)
    except Pruned as stop:
        record_pruned(trial, ctx.settings.metric, stop.step, stop.score)
        trial.set_user_attr("trained_here", True)
        trial.set_user_attr("seconds", time.perf_counter() - start)
        study.tell(trial, state=TrialState.PRUNED)
        return
    metrics = joint_metrics(per_network)
    for name, value in metrics.items():
        trial.set_user_attr(name, value)
    if len(per_network) > 1:
        trial.set_user_attr("networks", per_network)
    trial.set_user_attr("trained_here", computed)
    miss = _under_variation(ctx, trial, plans, cost, store) if ctx.settings.min_accuracy_under_variation else ""
    trial.set_user_attr("seconds", time.perf_counter() - start)
    if miss:
        trial.set_user_attr("feasible", False)
        trial.set_user_attr("reason", miss)
        study.tell(trial, [0.0] if objectives == 1 else [0.0, latency])
        return
    value = metrics[ctx.settings.metric]
    study.tell(trial, [value] if objectives == 1 else [value, latency])


def _under_variation(ctx: SearchContext, trial: optuna.Trial, plans: Mapping[str, Plan], cost: NetworkCost | None,
                     store: EvaluationStore) -> str:
    """Test a scored candidate on its design's crossbars (``nn2hw.search.variation``), record it on
    the trial and as a constraint; why it misses the accuracy spec ('' when it meets it)."""
    from nn2hw.search.variation import VARIATION_METRIC, candidate_variation, variation_miss

    assert cost is not None  # only a feasible candidate is scored
    found = candidate_variation(ctx, plans, cost, store)
    if isinstance(found, str):
        trial.set_constraint("accuracy_under_variation", 1.0)
        return found
    for name, value in found.items():
        trial.set_user_attr(name, value)
    floor = ctx.settings.min_accuracy_under_variation
    trial.set_constraint("accuracy_under_variation", (floor or 0.0) - found[VARIATION_METRIC])
    return variation_miss(ctx, found)


def _checkpoints(ctx: SearchContext, study: optuna.Study, trial: optuna.Trial) -> Checkpoints | None:
    """The checkpoints of ``trial``'s fine-tune when the study prunes (``open_run`` gave it a
    pruner: one objective, one network, an evaluator that reports them, ``study_pruner``)."""
    s = ctx.settings
    if not isinstance(study.pruner, StudyPruner):
        return None
    return trial_checkpoints(trial, s.metric, checkpoint_steps(s.finetune.batches, s.prune_checkpoints),
                             s.prune_images)


def _pruned_as(study: optuna.Study, trial: optuna.Trial, earlier: FrozenTrial, metric: str) -> None:
    """A candidate pruned before, proposed again: pruned where it was, with its partial scores,
    without fine-tuning it again (its seeded fine-tune would score the same)."""
    for step, value in sorted(earlier.intermediate_values.items()):
        trial.report(value, step)
    record_pruned(trial, metric, earlier.user_attrs["pruned_at"], earlier.user_attrs[f"{metric}_partial"])
    trial.set_user_attr("pruned_as", earlier.number)
    trial.set_user_attr("trained_here", False)
    study.tell(trial, state=TrialState.PRUNED)
