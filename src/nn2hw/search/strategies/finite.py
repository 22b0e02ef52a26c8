"""Strategies that propose a finite list of candidates, each once (``uniform``'s grid, the
differentiable strategy's derived architectures), and the sampler that stops the search once the
list is spent (``sampler.exhausted``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from nn2hw.search.strategies.base import Observation, RewardConfig, Strategy
from nn2hw.search.strategies.sampler import SamplerContext, StrategySampler

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext


class FiniteList(Strategy):
    """Proposes ``proposals`` in order, each once; a proposal counts as used once it was a trial or
    a rejected proposal. With none left, the slot's (a driver that does not ask ``exhausted``
    gets them again)."""

    def __init__(self, choice_counts: Sequence[int], reward: RewardConfig, seed: int = 0, **options: Any) -> None:
        super().__init__(choice_counts, reward, seed, **options)
        self.proposals: tuple[tuple[int, ...], ...] = ()
        self.used: set[tuple[int, ...]] = set()

    def remaining(self) -> int:
        """How many proposals were neither a trial nor a rejected proposal yet."""
        return sum(p not in self.used for p in self.proposals)

    def ask(self, number: int, attempt: int = 0) -> tuple[int, ...]:
        fresh = next((p for p in self.proposals if p not in self.used), None)
        return fresh if fresh is not None else self.proposals[number % len(self.proposals)]

    def tell(self, obs: Observation) -> None:
        self.used.add(tuple(obs.indices))

    def reject(self, obs: Observation) -> None:
        self.used.add(tuple(obs.indices))


class FiniteSampler(StrategySampler):
    """A trial walks at most the proposals left (the last one is the trial even if it misses a
    spec), and ``exhausted`` stops the search loop once none is left (said once through ``log``)."""

    strategy: FiniteList

    def __init__(self, strategy: FiniteList, context: SamplerContext, log: Callable[[str], None] = print) -> None:
        super().__init__(strategy, context)
        self.log = log
        self._said = False

    def bind_search(self, ctx: SearchContext, log: Callable[[str], None] = print) -> None:
        """The search this sampler proposes for; its messages go to the search's ``log``."""
        self.log = log

    def ready(self, study: optuna.Study) -> None:
        """Make the strategy's proposals before the first is asked for (default: they are made)."""

    def spent(self) -> str:
        """What the search is told when every proposal was made."""
        count = len(self.strategy.proposals)
        return f"{self.strategy.name}: all {count} candidates were proposed; no new trial starts."

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        self.ready(study)
        self.catch_up(study)
        full = self.context
        self.context = replace(full, attempts=min(full.attempts, max(1, self.strategy.remaining())))
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            self.context = full

    def exhausted(self, study: optuna.Study) -> bool:
        """Whether every proposal was made (said once, when it first is)."""
        self.ready(study)
        self.catch_up(study)
        done = self.strategy.remaining() == 0
        if done and not self._said:
            self._said = True
            self.log(self.spent())
        return done
