"""Optuna's own samplers as strategies: multivariate TPE (with nn2hw's latency-first prefilter) and
NSGA-II on (accuracy, latency); both read the specs as Optuna constraints (feasible when <= 0).
Their random state lives in the sampler object, so a resumed study continues deterministically but
not as the uninterrupted one would (``exact_resume=False``)."""

from __future__ import annotations

import optuna

from nn2hw.search.strategies.base import STRATEGIES, StrategyInfo
from nn2hw.search.strategies.sampler import PrefilteredSampler, SamplerContext


def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    options = {"n_startup_trials": 10, **ctx.options}
    return PrefilteredSampler(optuna.samplers.TPESampler(seed=ctx.seed, multivariate=True, **options), ctx)


def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    options = {"population_size": 16, **ctx.options}
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, **options)


STRATEGIES.register("tpe", StrategyInfo(
    "tpe", "Optuna TPE (multivariate) with the specs as constraints, latency-first prefilter", _tpe,
    exact_resume=False))
STRATEGIES.register("nsga2", StrategyInfo(
    "nsga2", "Optuna NSGA-II on (accuracy, latency) with the specs as constraints", _nsga2, 2, exact_resume=False))
