"""Search strategies, one registry: each entry builds an Optuna sampler from a ``SamplerContext``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import STRATEGIES, Observation, RewardConfig, Strategy
from nn2hw.search.strategies.evolution import RegularizedEvolution
from nn2hw.search.strategies.random import RandomSearch
from nn2hw.search.strategies.reinforce import FnasReinforce, Reinforce
from nn2hw.search.strategies.sampler import PrefilteredSampler, SamplerContext, StrategySampler

__all__ = ["STRATEGIES", "Observation", "RewardConfig", "Strategy", "StrategyInfo", "build_sampler"]


@dataclass(frozen=True)
class StrategyInfo:
    """A registered strategy: how to build its sampler and how many objectives its study has
    (1: maximize accuracy; 2: maximize accuracy and minimize latency, for NSGA-II)."""

    name: str
    description: str
    build: Callable[[SamplerContext], optuna.samplers.BaseSampler]
    objectives: int = 1


def _own(cls: type[Strategy]) -> Callable[[SamplerContext], optuna.samplers.BaseSampler]:
    def build(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
        return StrategySampler(cls(ctx.counts, ctx.reward, ctx.seed, **ctx.options), ctx)

    return build


def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    options = {"n_startup_trials": 10, **ctx.options}
    return PrefilteredSampler(optuna.samplers.TPESampler(seed=ctx.seed, multivariate=True, **options), ctx)


def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    options = {"population_size": 16, **ctx.options}
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, **options)


for _info in (
    StrategyInfo("reinforce", "HotNAS REINFORCE controller (LSTM policy, EMA baseline, HotNAS reward)",
                 _own(Reinforce)),
    StrategyInfo("fnas", "REINFORCE with the FNAS reward (code version: clipped, EMA accuracy baseline)",
                 _own(FnasReinforce)),
    StrategyInfo("random", "uniform random search", _own(RandomSearch)),
    StrategyInfo("evolution", "regularized (aging) evolution, one-dimension mutations", _own(RegularizedEvolution)),
    StrategyInfo("tpe", "Optuna TPE (multivariate) with the specs as constraints, latency-first prefilter", _tpe),
    StrategyInfo("nsga2", "Optuna NSGA-II on (accuracy, latency) with the specs as constraints", _nsga2, 2),
):
    STRATEGIES.register(_info.name, _info)


def build_sampler(name: str, ctx: SamplerContext) -> tuple[optuna.samplers.BaseSampler, StrategyInfo]:
    """The sampler of strategy ``name`` for ``ctx`` (an ``UnknownNameError`` suggests close names)."""
    info = STRATEGIES.get(name)
    try:
        return info.build(ctx), info
    except TypeError as exc:  # an option Optuna's sampler does not take
        raise ConfigError(f"Strategy {name!r} rejects its options {dict(ctx.options)}: {exc}.",
                          "Pass only options that strategy accepts (see docs/search.md).") from None
