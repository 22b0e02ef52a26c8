"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

from nn2hw.search.strategies.base import STRATEGIES, Strategy, StrategyInfo
from nn2hw.search.strategies.sampler import own


class RandomSearch(Strategy):
    """Each trial draws every dimension uniformly, from (seed, trial number)."""

    name = "random"

    def ask(self, number: int, attempt: int = 0) -> tuple[int, ...]:
        return self.random_indices(self.rng(number, attempt))


STRATEGIES.register("random", StrategyInfo("random", "uniform random search", own(RandomSearch)))
