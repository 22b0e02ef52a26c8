"""Search strategies, one registry: each module registers the strategies it defines; an entry
builds an Optuna sampler from a ``SamplerContext``. Plugins add strategies through the
``nn2hw.strategies`` entry-point group (a ``StrategyInfo`` or a ``Strategy`` subclass)."""

from __future__ import annotations

from nn2hw.search.strategies.base import STRATEGIES, Observation, RewardConfig, Strategy, StrategyInfo
from nn2hw.search.strategies.sampler import SamplerContext, build_sampler, own

__all__ = ["STRATEGIES", "Observation", "RewardConfig", "SamplerContext", "Strategy", "StrategyInfo",
           "build_sampler", "own"]
