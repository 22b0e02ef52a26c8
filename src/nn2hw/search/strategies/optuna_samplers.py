"""Optuna's own samplers as strategies: multivariate TPE (with nn2hw's latency-first prefilter) and
NSGA-II on (accuracy, latency); both read the specs as Optuna constraints (feasible when <= 0).
Each is rebuilt for every trial with a seed from (seed, slot) (``PrefilteredSampler``,
``SlotSeededSampler``), so a resumed study samples exactly as the uninterrupted one did."""

from __future__ import annotations

import optuna

from nn2hw.search.strategies.base import STRATEGIES, StrategyInfo, checked_options
from nn2hw.search.strategies.sampler import PrefilteredSampler, SamplerContext, SamplerFactory, SlotSeededSampler


def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    options = {"n_startup_trials": 10, **checked_options("tpe", ctx.options, (optuna.samplers.TPESampler,))}
    return PrefilteredSampler(_checked(lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                                              **options), ctx.seed), ctx)


def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    options = {"population_size": 16, **checked_options("nsga2", ctx.options, (optuna.samplers.NSGAIISampler,))}
    return SlotSeededSampler(_checked(lambda seed: optuna.samplers.NSGAIISampler(seed=seed, **options), ctx.seed),
                             ctx.seed)


def _checked(build: SamplerFactory, seed: int) -> SamplerFactory:
    """``build``, once called: an option the sampler does not take fails now (a ``TypeError``)."""
    build(seed)
    return build


STRATEGIES.register("tpe", StrategyInfo(
    "tpe", "Optuna TPE (multivariate) with the specs as constraints, latency-first prefilter", _tpe))
STRATEGIES.register("nsga2", StrategyInfo(
    "nsga2", "Optuna NSGA-II on (accuracy, latency) with the specs as constraints", _nsga2, 2))
