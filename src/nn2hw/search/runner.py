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
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from nn2hw import __version__
from nn2hw.errors import HardwareError, InfeasibleError, Nn2hwError, PlanError
from nn2hw.hardware.base import NetworkCost
from nn2hw.plan import Plan
from nn2hw.search.evaluations import EvaluationStore
from nn2hw.search.settings import SearchSettings
from nn2hw.search.strategies import Observation, RewardConfig, StrategyInfo, build_sampler
from nn2hw.search.strategies.sampler import SamplerContext
from nn2hw.search.study import count_trials, heartbeat, open_storage, open_study, owner_id
from nn2hw.search.target import HardwareTarget
from nn2hw.space import SearchSpace, SpaceConfig, build_space
from nn2hw.workload import Workload

Evaluator = Callable[[nn.Module], Mapping[str, float]]
NO_DESIGN_MS = 1e12  # objective value standing in for "no design can run it" (Optuna needs a number)


@dataclass
class SearchContext:
    """What every worker prepares once: base model, workload, costs, space, evaluator, reward."""

    settings: SearchSettings
    model: nn.Module
    workload: Workload
    target: HardwareTarget
    base_cost: NetworkCost
    bottlenecks: dict[str, str]
    space: SearchSpace
    bound_cost: NetworkCost
    evaluator: Evaluator
    evaluator_id: str
    reward: RewardConfig | None = None
    base_metric: float | None = None

    @property
    def spec(self):
        return self.settings.spec


def _pattern_chooser(model: nn.Module) -> Callable:
    """Pick each kernel size's PATn patterns from the pretrained weights (HotNAS: most often best)."""
    from nn2hw.compress.kernel_pattern import DEFAULT_PATN, top_patterns

    def choose(layers, zeros):
        return top_patterns([model.get_submodule(l.name).weight for l in layers], DEFAULT_PATN, zeros, None)

    return choose


def default_evaluator(settings: SearchSettings, images: int | None, batches: int, progress: bool = False):
    """The HotNAS fast evaluation: fine-tune ``batches`` then test on the first ``images``."""
    from dataclasses import replace

    from nn2hw.evaluate import FinetuneEvaluator

    return FinetuneEvaluator(settings.dataset, model=settings.model, split=settings.split,
                             data_dir=settings.data_dir, settings=replace(settings.finetune, batches=batches),
                             max_test_images=images, threads=settings.threads, progress=progress)


def prepare(settings: SearchSettings, evaluator: Evaluator | None = None) -> SearchContext:
    """Load the base model, cost it on its best design, detect bottlenecks, build the space and
    check the specs against what the space can reach (an impossible spec stops here, at once)."""
    from nn2hw import zoo
    from nn2hw.compress.kernel_pattern import default_zeros
    from nn2hw.workload import from_module

    model = zoo.build(settings.model, settings.dataset, pretrained=True, checkpoint=settings.checkpoint)
    model.eval()
    variant = zoo.entry(settings.model).variant(settings.dataset)
    workload = from_module(model, (1, *variant.input_shape), name=settings.model)
    target = HardwareTarget.parse(settings.hardware, settings.hw_options, settings.hw_grid)
    base_cost = target.best(workload)
    bottlenecks = {layer.name: layer.bottleneck for layer in base_cost.layers}  # each template's own labels
    config = SpaceConfig.load(settings.space_config) if settings.space_config else SpaceConfig()
    base_plan = Plan.for_workload(workload, settings.model, settings.dataset)
    space = build_space(workload, bottlenecks, base_plan, remedies=target.template.remedies, config=config,
                        patterns=_pattern_chooser(model), hardware=target.knob_dimensions(workload),
                        default_zeros=default_zeros)
    bound_cost = target.best(space.decode(space.leanest()).plan.apply(workload))
    _check_reachable(settings, space, base_cost, bound_cost)
    _check_strategy(settings, space)
    if evaluator is None:
        evaluator = default_evaluator(settings, settings.search_images, settings.finetune.batches)
        evaluator_id = json.dumps(["finetune", *evaluator.cache_fields, settings.checkpoint])
    else:
        evaluator_id = f"user:{getattr(evaluator, '__qualname__', type(evaluator).__qualname__)}"
    return SearchContext(settings, model, workload, target, base_cost, bottlenecks, space, bound_cost, evaluator,
                         evaluator_id)


def _check_strategy(settings: SearchSettings, space: SearchSpace) -> None:
    """Build the strategy's sampler once so an unknown name or option fails before any work."""
    probe = RewardConfig(spec_ms=1.0, acc_band=(0.0, 1.0), lat_band=(0.5, 1.0))
    build_sampler(settings.strategy, SamplerContext(space.names, space.counts, probe, settings.seed,
                                                    observe(space.names, settings.metric),
                                                    dict(settings.strategy_options)))


def _check_reachable(settings: SearchSettings, space: SearchSpace, base: NetworkCost, bound: NetworkCost) -> None:
    """Refuse a spec below what the leanest candidate reaches, naming that bound."""
    if not space.dimensions:
        raise InfeasibleError(
            f"The search space of {settings.model} is empty: no layer has a technique for its bottleneck.",
            "Widen it with a --space file (e.g. enable channel cuts or quantization for more bottlenecks).")
    for name, limit in settings.spec.limits.items():
        reach = settings.spec.value(bound, name)
        if reach > limit:
            unit = {"latency_ms": "ms", "energy_mj": "mJ", "area_mm2": "mm2"}[name]
            raise InfeasibleError(
                f"No candidate can meet {name} <= {limit:g} {unit}: the leanest candidate of the space (every "
                f"layer at its cheapest choice, best design) reaches {reach:.6g} {unit}; the base model needs "
                f"{settings.spec.value(base, name):.6g} {unit} on {settings.hardware}.",
                f"Relax the spec to at least {reach:.6g} {unit}, widen the space (--space), or use larger hardware.",
                best_bound=reach)


def reward_config(ctx: SearchContext, base_metric: float) -> RewardConfig:
    s = ctx.settings
    latency = s.spec.latency_ms if s.spec.latency_ms is not None else ctx.base_cost.latency_ms
    acc_band = s.acc_band or (base_metric - 10.0, base_metric)
    lat_band = s.lat_band or (0.7 * latency, latency)
    return RewardConfig(spec_ms=latency, acc_band=acc_band, lat_band=lat_band, alpha=s.alpha)


def evaluation_key(ctx: SearchContext, plan: Plan) -> str:
    """What identifies an accuracy: the network plan, the evaluator and its data."""
    text = json.dumps([plan.network_key, ctx.settings.model, ctx.settings.dataset, ctx.evaluator_id])
    return hashlib.sha256(text.encode()).hexdigest()


def evaluate_plan(ctx: SearchContext, plan: Plan, evaluator: Evaluator | None = None) -> dict[str, float]:
    """Apply ``plan`` to a copy of the base model and score it (fine-tune + test by default)."""
    model = plan.apply(ctx.model)
    return {k: float(v) for k, v in (evaluator or ctx.evaluator)(model).items()}


def base_metric(ctx: SearchContext, store: EvaluationStore) -> float:
    """The base model's score under the same evaluation as every candidate (shared, computed once)."""
    plan = ctx.space.base
    result = store.evaluate(evaluation_key(ctx, plan), lambda: evaluate_plan(ctx, plan))
    return result.metrics[ctx.settings.metric]


# --- trials -------------------------------------------------------------------------------------
def observe(names: tuple[str, ...], metric: str) -> Callable[[FrozenTrial], Observation]:
    def to_observation(t: FrozenTrial) -> Observation:
        a = t.user_attrs
        return Observation(t.number, tuple(int(t.params[n]) for n in names), bool(a.get("feasible")),
                           a.get(metric), a.get("latency_ms"))

    return to_observation


def make_sampler(ctx: SearchContext) -> tuple[optuna.samplers.BaseSampler, StrategyInfo]:
    s = ctx.settings
    sctx = SamplerContext(ctx.space.names, ctx.space.counts, ctx.reward, s.seed, observe(ctx.space.names, s.metric),
                          dict(s.strategy_options))
    return build_sampler(s.strategy, sctx)


def run_trial(ctx: SearchContext, study: optuna.Study, trial: optuna.Trial, store: EvaluationStore,
              objectives: int) -> None:
    """Cost one candidate; train it only when it meets every spec; tell the study."""
    start = time.perf_counter()
    trial.set_user_attr("owner", store.owner)
    indices = [trial.suggest_categorical(n, list(range(c))) for n, c in zip(ctx.space.names, ctx.space.counts)]
    cand = ctx.space.decode(indices)
    trial.set_user_attr("plan", cand.plan.to_dict())
    trial.set_user_attr("plan_key", cand.plan.network_key)
    trial.set_user_attr("knobs", dict(cand.hardware))
    cost: NetworkCost | None = None
    try:
        cost = ctx.target.best(cand.plan.apply(ctx.workload), cand.hardware)
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
    result = store.evaluate(evaluation_key(ctx, cand.plan), lambda: evaluate_plan(ctx, cand.plan))
    for name, value in result.metrics.items():
        trial.set_user_attr(name, value)
    trial.set_user_attr("trained_here", result.computed)
    trial.set_user_attr("seconds", time.perf_counter() - start)
    value = result.metrics[ctx.settings.metric]
    study.tell(trial, [value] if objectives == 1 else [value, latency])


def _design(cost: NetworkCost) -> dict[str, Any]:
    from nn2hw.hardware.base import _jsonable

    return _jsonable(cost.design)


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
