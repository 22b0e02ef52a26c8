"""Regularized (aging) evolution (Real et al., AAAI 2019) over the categorical space.

The population is the last ``population`` observed trials; a child mutates one dimension of the
fittest of ``sample`` random members. Fitness is the accuracy for candidates that met every spec
and a penalty below any accuracy otherwise, so the search climbs towards feasibility first.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import STRATEGIES, Observation, RewardConfig, Strategy, StrategyInfo
from nn2hw.search.strategies.sampler import own


class RegularizedEvolution(Strategy):
    name = "evolution"
    option_ranges = {"population": "an integer >= 2", "sample": "an integer in 1..population"}

    def __init__(self, choice_counts, reward: RewardConfig, seed: int = 0, population: int = 16, sample: int = 4,
                 **options: Any) -> None:
        super().__init__(choice_counts, reward, seed, **options)
        if population < 2 or not 1 <= sample <= population:
            raise ConfigError(f"Evolution needs population >= 2 and 1 <= sample <= population, got "
                              f"{population} and {sample}.", "Pick e.g. population=16, sample=4.")
        self.population: deque[tuple[tuple[int, ...], float]] = deque(maxlen=population)
        self.population_size = population
        self.sample = sample

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ("population", "sample")

    def fitness(self, obs: Observation) -> float:
        if obs.feasible and obs.metric is not None:
            return obs.metric
        if obs.latency_ms is None:
            return -1e9
        return -100.0 * obs.latency_ms / self.reward.spec_ms  # below every accuracy, better when closer

    def tell(self, obs: Observation) -> None:
        self.population.append((obs.indices, self.fitness(obs)))

    def ask(self, number: int, attempt: int = 0) -> tuple[int, ...]:
        rng = self.rng(number, attempt)
        if len(self.population) < self.population_size:
            return self.random_indices(rng)
        members = [self.population[i] for i in rng.choice(len(self.population), self.sample, replace=False)]
        parent = max(members, key=lambda m: m[1])[0]
        mutable = [d for d, n in enumerate(self.counts) if n > 1]
        if not mutable:
            return parent
        dim = mutable[int(rng.integers(len(mutable)))]
        choice = int(rng.integers(self.counts[dim] - 1))
        child = list(parent)
        child[dim] = choice if choice < parent[dim] else choice + 1  # a different value, uniformly
        return tuple(child)


STRATEGIES.register("evolution", StrategyInfo("evolution", "regularized (aging) evolution, one-dimension mutations",
                                              own(RegularizedEvolution)))
