"""The co-search loop: propose, cost first, train only what meets the specs, record, repeat.

Every trial is one candidate (an index vector over the ``SearchSpace``). It is decoded into a
plan and hardware knobs, the plan is applied to the workload (no torch) and costed on its best
design by the template's vectorized DSE. A candidate that misses a spec or fits no design is
recorded with the reason and never trained. One that meets every spec is fine-tuned briefly and
scored; the result is shared through the study storage so no candidate is trained twice, by this
worker or another. The study is persistent: interrupting loses no completed trial.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from nn2hw import __version__
from nn2hw._liveness import owner_id
from nn2hw.errors import HardwareError, InfeasibleError, Nn2hwError, PlanError
from nn2hw.evaluate import Evaluator, FinetuneEvaluator, FinetuneSettings, evaluator_id
from nn2hw.evaluate.store import EvaluationStore, evaluation_key
from nn2hw.hardware.base import NetworkCost
from nn2hw.compress import SpaceContext, apply_plan
from nn2hw.plan import Plan
from nn2hw.search.settings import Member, SearchSettings
from nn2hw.search.strategies import Observation, RewardConfig, StrategyInfo, build_sampler
from nn2hw.search.strategies.sampler import SamplerContext
from nn2hw.search.study import count_trials, heartbeat, open_storage, open_study
from nn2hw.search.target import HardwareTarget
from nn2hw.space import JointSpace, SpaceConfig, build_space
from nn2hw.workload import Workload

NO_DESIGN_MS = 1e12  # objective value standing in for "no design can run it" (Optuna needs a number)


@dataclass
class MemberContext:
    """One network of the search: its pretrained model, workload and evaluator (with its identity)."""

    member: Member
    model: nn.Module
    workload: Workload
    evaluator: Evaluator
    evaluator_id: str

    @property
    def name(self) -> str:
        return self.member.model


@dataclass
class SearchContext:
    """What every worker prepares once: the networks, costs, space, reward."""

    settings: SearchSettings
    members: tuple[MemberContext, ...]
    target: HardwareTarget
    base_cost: NetworkCost
    bottlenecks: dict[str, dict[str, str]]
    space: JointSpace
    bound_cost: NetworkCost
    reward: RewardConfig | None = None
    base_metric: float | None = None

    @property
    def spec(self):
        return self.settings.spec

    def workloads(self, plans: Mapping[str, Plan] | None = None) -> Workload | dict[str, Workload]:
        """The networks' workloads (rewritten by ``plans``): one workload, or a dict of several."""
        return _workloads(self.members, plans)


def _workloads(members: tuple[MemberContext, ...], plans: Mapping[str, Plan] | None) -> Workload | dict[str, Workload]:
    done = {m.name: apply_plan(plans[m.name], m.workload) if plans else m.workload for m in members}
    return next(iter(done.values())) if len(done) == 1 else done


def default_evaluator(settings: SearchSettings, member: Member, images: int | None, finetune: FinetuneSettings,
                      teacher: nn.Module | None = None, progress: bool = False) -> FinetuneEvaluator:
    """Fine-tune as ``finetune`` says (distilling from ``teacher``, the unmodified model, when it
    asks to), then test on the first ``images`` of the member's split (None: all of it)."""
    from nn2hw import zoo

    return FinetuneEvaluator(member.dataset, split=member.split, data_dir=settings.data_dir, settings=finetune,
                             max_test_images=images, prepare=partial(zoo.prepare, model_name=member.model),
                             threads=settings.threads, progress=progress, teacher=teacher)


def _member_context(settings: SearchSettings, member: Member,
                    evaluator: Evaluator | Mapping[str, Evaluator] | None) -> MemberContext:
    from nn2hw import zoo
    from nn2hw.workload import from_module

    model = zoo.build(member.model, member.dataset, pretrained=True, checkpoint=member.checkpoint)
    model.eval()
    variant = zoo.entry(member.model).variant(member.dataset)
    workload = from_module(model, (1, *variant.input_shape), name=member.model)
    if isinstance(evaluator, Mapping):
        evaluator = evaluator.get(member.model)
    if evaluator is None:
        evaluator = default_evaluator(settings, member, settings.search_images, settings.finetune, teacher=model)
    return MemberContext(member, model, workload, evaluator, evaluator_id(evaluator, member.checkpoint))


def prepare(settings: SearchSettings, evaluator: Evaluator | Mapping[str, Evaluator] | None = None) -> SearchContext:
    """Load the base models, cost them on their best design, take each layer's bottleneck, build
    the space and check the specs against what it can reach (an impossible spec stops here)."""
    members = tuple(_member_context(settings, m, evaluator) for m in settings.members)
    target = HardwareTarget.parse(settings.hardware, settings.hw_options, settings.hw_grid, settings.spec.limits)
    workloads = {m.name: m.workload for m in members}
    base_cost = target.best(workloads)
    bottlenecks = _bottlenecks(base_cost, [m.name for m in members])
    config = SpaceConfig.load(settings.space_config) if settings.space_config else SpaceConfig()
    knobs = target.knob_dimensions(members[0].workload)
    parts = []
    for i, m in enumerate(members):
        base_plan = Plan.for_workload(m.workload, m.name, m.member.dataset)
        weights = SpaceContext(weights=lambda name, model=m.model: model.get_submodule(name).weight)
        parts.append((m.name, build_space(m.workload, bottlenecks[m.name], base_plan, remedies=target.template.remedies,
                                          vocabulary=target.template.bottlenecks, config=config, context=weights,
                                          hardware=knobs if i == 0 else ())))
    space = JointSpace(tuple(parts))
    bound_cost = target.best(_workloads(members, space.decode(space.leanest()).plans))
    ctx = SearchContext(settings, members, target, base_cost, bottlenecks, space, bound_cost)
    _check_reachable(ctx)
    _check_strategy(settings, space)
    return ctx


def _bottlenecks(cost: NetworkCost, networks: list[str]) -> dict[str, dict[str, str]]:
    """Each network's layer -> bottleneck label (layers of a multi-network chip are 'net/layer')."""
    if len(networks) == 1:
        return {networks[0]: {layer.name: layer.bottleneck for layer in cost.layers}}
    found: dict[str, dict[str, str]] = {net: {} for net in networks}
    for layer in cost.layers:
        net, _, name = layer.name.partition("/")
        found[net][name] = layer.bottleneck
    return found


def _check_strategy(settings: SearchSettings, space: JointSpace) -> None:
    """Build the strategy's sampler once so an unknown name or option fails before any work."""
    probe = RewardConfig(spec_ms=1.0, acc_band=(0.0, 1.0), lat_band=(0.5, 1.0))
    build_sampler(settings.strategy, SamplerContext(space.names, space.counts, probe, settings.seed,
                                                    observe(space.names, settings.metric),
                                                    dict(settings.strategy_options)))


def _check_reachable(ctx: SearchContext) -> None:
    """Refuse a spec below what the leanest candidate reaches, naming that bound."""
    settings, nets = ctx.settings, " + ".join(m.name for m in ctx.members)
    if not ctx.space.dimensions:
        raise InfeasibleError(
            f"The search space of {nets} is empty: no layer has a technique for its bottleneck on "
            f"{settings.hardware}.",
            "Widen it with a --space file (e.g. enable channel cuts or quantization for more bottlenecks).")
    for name, limit in settings.spec.limits.items():
        reach = settings.spec.value(ctx.bound_cost, name)
        if reach > limit:
            unit = {"latency_ms": "ms", "energy_mj": "mJ", "area_mm2": "mm2"}[name]
            raise InfeasibleError(
                f"No candidate can meet {name} <= {limit:g} {unit}: the leanest candidate of the space (every "
                f"layer at its cheapest choice, best design) reaches {reach:.6g} {unit}; the base model needs "
                f"{settings.spec.value(ctx.base_cost, name):.6g} {unit} on {settings.hardware}.",
                f"Relax the spec to at least {reach:.6g} {unit}, widen the space (--space), or use larger hardware.",
                best_bound=reach)


def reward_config(ctx: SearchContext, base_metric: float) -> RewardConfig:
    s = ctx.settings
    latency = s.spec.latency_ms if s.spec.latency_ms is not None else ctx.base_cost.latency_ms
    acc_band = s.acc_band or (base_metric - 10.0, base_metric)
    lat_band = s.lat_band or (0.7 * latency, latency)
    return RewardConfig(spec_ms=latency, acc_band=acc_band, lat_band=lat_band, alpha=s.alpha,
                        lat_penalty=s.lat_penalty)


def joint_key(plans: Mapping[str, Plan]) -> str:
    """One key for a candidate's networks (the plan's own key when there is one network)."""
    if len(plans) == 1:
        return next(iter(plans.values())).network_key
    text = json.dumps(sorted((net, plan.network_key) for net, plan in plans.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def evaluate_plan(member: MemberContext, plan: Plan) -> Mapping[str, float]:
    """Apply ``plan`` to a copy of the member's base model and score it (fine-tune + test by default)."""
    return member.evaluator(apply_plan(plan, member.model))


def joint_metrics(per_network: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The networks' metrics averaged (one network: its own), over the keys every network has;
    image counts add up and a result is partial when any network's is."""
    shared = set.intersection(*(set(m) for m in per_network.values()))
    combine = {"n_images": sum, "partial": max}
    return {k: combine.get(k, lambda v: sum(v) / len(v))([m[k] for m in per_network.values()]) for k in sorted(shared)}


def evaluate_networks(ctx: SearchContext, plans: Mapping[str, Plan], store: EvaluationStore
                      ) -> tuple[dict[str, dict[str, float]], bool]:
    """Each network's metrics (shared through the store) and whether any was computed here."""
    per_network, computed = {}, False
    for m in ctx.members:
        key = evaluation_key(plans[m.name].network_key, m.name, m.member.dataset, m.evaluator_id)
        result = store.evaluate(key, lambda m=m: evaluate_plan(m, plans[m.name]))
        per_network[m.name] = dict(result.metrics)
        computed |= result.computed
    return per_network, computed


def base_metric(ctx: SearchContext, store: EvaluationStore) -> float:
    """The base models' score under the same evaluation as every candidate (shared, computed once)."""
    per_network, _ = evaluate_networks(ctx, ctx.space.bases, store)
    return joint_metrics(per_network)[ctx.settings.metric]


# --- trials -------------------------------------------------------------------------------------
def observe(names: tuple[str, ...], metric: str) -> Callable[[FrozenTrial], Observation]:
    def to_observation(t: FrozenTrial) -> Observation:
        a = t.user_attrs
        return Observation(t.number, tuple(int(t.params[n]) for n in names), bool(a.get("feasible")),
                           a.get(metric), a.get("latency_ms"))

    return to_observation


def feasibility_check(ctx: SearchContext) -> Callable[[tuple[int, ...]], tuple[bool, float | None]]:
    """(meets every spec, latency) of a candidate from the cost model alone, memoized: what the
    latency-first prefilter asks before a proposal becomes a trial."""
    seen: dict[tuple[int, ...], tuple[bool, float | None]] = {}

    def check(indices: tuple[int, ...]) -> tuple[bool, float | None]:
        key = tuple(int(i) for i in indices)
        if key not in seen:
            cand = ctx.space.decode(key)
            try:
                cost = ctx.target.best(ctx.workloads(cand.plans), cand.hardware)
                seen[key] = (ctx.spec.met(cost), cost.latency_ms)
            except (PlanError, InfeasibleError, HardwareError):
                seen[key] = (False, None)
        return seen[key]

    return check


def make_sampler(ctx: SearchContext) -> tuple[optuna.samplers.BaseSampler, StrategyInfo]:
    s = ctx.settings
    sctx = SamplerContext(ctx.space.names, ctx.space.counts, ctx.reward, s.seed, observe(ctx.space.names, s.metric),
                          dict(s.strategy_options), check=feasibility_check(ctx), attempts=s.proposals)
    return build_sampler(s.strategy, sctx)


def run_trial(ctx: SearchContext, study: optuna.Study, trial: optuna.Trial, store: EvaluationStore,
              objectives: int) -> None:
    """Cost one candidate; train it only when it meets every spec; tell the study."""
    start = time.perf_counter()
    trial.set_user_attr("owner", store.owner)
    indices = [trial.suggest_categorical(n, list(range(c))) for n, c in zip(ctx.space.names, ctx.space.counts)]
    cand = ctx.space.decode(indices)
    trial.set_user_attr("plans", {net: plan.to_dict() for net, plan in cand.plans.items()})
    trial.set_user_attr("plan_key", joint_key(cand.plans))
    trial.set_user_attr("knobs", dict(cand.hardware))
    cost: NetworkCost | None = None
    try:
        cost = ctx.target.best(ctx.workloads(cand.plans), cand.hardware)
    except (PlanError, InfeasibleError, HardwareError) as exc:
        reason = f"no design: {exc.cause}"
    if cost is not None:
        trial.set_user_attr("design", _design(cost))
        for name in ("latency_ms", "energy_mj", "area_mm2"):
            trial.set_user_attr(name, getattr(cost, name))
        violations = ctx.spec.violations(cost)
        for name, g in violations.items():
            trial.set_constraint(name, g)
        reason = ctx.spec.describe_miss(cost)
    else:
        for name in ctx.spec.limits:
            trial.set_constraint(name, 1.0)
    feasible = cost is not None and not reason
    trial.set_user_attr("feasible", feasible)
    trial.set_user_attr("reason", reason)
    latency = cost.latency_ms if cost is not None else NO_DESIGN_MS
    if not feasible:
        study.tell(trial, [0.0] if objectives == 1 else [0.0, latency])
        return
    per_network, computed = evaluate_networks(ctx, cand.plans, store)
    metrics = joint_metrics(per_network)
    for name, value in metrics.items():
        trial.set_user_attr(name, value)
    if len(per_network) > 1:
        trial.set_user_attr("networks", per_network)
    trial.set_user_attr("trained_here", computed)
    trial.set_user_attr("seconds", time.perf_counter() - start)
    value = metrics[ctx.settings.metric]
    study.tell(trial, [value] if objectives == 1 else [value, latency])


def _design(cost: NetworkCost) -> dict[str, Any]:
    from nn2hw.hardware.base import jsonable

    return jsonable(cost.design)


# --- the loop -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    trials: int | None
    deadline: float | None  # time.time() after which no new trial starts

    def more(self, study: optuna.Study) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return False
        if self.trials is None:
            return True
        counts = count_trials(study)
        return counts["complete"] + counts["running"] < self.trials


def open_run(ctx: SearchContext, mode: str, owner: str) -> tuple[optuna.Study, EvaluationStore, StrategyInfo]:
    """The study (created, resumed or joined) and the shared evaluation store; sets the reward."""
    storage = open_storage(ctx.settings.storage_url)
    store = EvaluationStore(storage.engine, owner)
    if ctx.reward is None:
        ctx.base_metric = base_metric(ctx, store)
        ctx.reward = reward_config(ctx, ctx.base_metric)
    sampler, info = make_sampler(ctx)
    directions = ["maximize"] if info.objectives == 1 else ["maximize", "minimize"]
    identity = {**ctx.settings.identity(), "space": ctx.space.key, "nn2hw": __version__.split(".")[0]}
    study = open_study(storage, ctx.settings.study_name, identity, sampler, directions, mode)
    return study, store, info


def work(ctx: SearchContext, study: optuna.Study, store: EvaluationStore, objectives: int, budget: Budget,
         on_trial: Callable[[], None] = lambda: None) -> None:
    """Run trials until the budget is spent; a trial interrupted here is failed (re-run on resume)."""
    import warnings

    while budget.more(study):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        try:
            with heartbeat(study, trial):
                run_trial(ctx, study, trial, store, objectives)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Nn2hwError as exc:  # e.g. fine-tuning diverged: record why, go on
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
        on_trial()


def _worker_main(settings: SearchSettings, index: int, deadline: float | None) -> None:
    """Entry point of a worker process (spawned): prepare, join the study, work."""
    import torch

    torch.set_num_threads(settings.threads or max(1, (os.cpu_count() or 1) // settings.workers))
    ctx = prepare(settings)
    study, store, info = open_run(ctx, "join", owner_id(f"w{index}"))
    try:
        work(ctx, study, store, info.objectives, Budget(settings.trials, deadline))
    except KeyboardInterrupt:
        pass  # the parent reports the interruption


def start_workers(settings: SearchSettings, deadline: float | None) -> list[multiprocessing.Process]:
    """Spawn ``workers - 1`` extra processes on the same study (this process is the first)."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker_main, args=(settings, i, deadline), daemon=False)
             for i in range(1, settings.workers)]
    for p in procs:
        p.start()
    return procs
