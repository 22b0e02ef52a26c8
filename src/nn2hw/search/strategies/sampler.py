"""Optuna samplers for every strategy, so storage, resume and multi-worker are uniform.

``StrategySampler`` adapts an ``nn2hw`` ``Strategy``: before each ask it replays the study's
newly completed trials into ``Strategy.tell`` in trial-number order, then asks for the trial's
candidate. Latency first: with a ``check`` (the cost model, milliseconds per candidate) a trial
may go through up to ``attempts`` proposals; those that miss a spec are told to the strategy as
rejections and recorded on the trial (user attribute ``rejected``), so a resume replays them.
TPE and NSGA-II are Optuna's own samplers; they read the constraints the runner sets on each trial
with ``Trial.set_constraint`` (feasible when every value is <= 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nn2hw.search.strategies.base import Observation, RewardConfig, Strategy


@dataclass(frozen=True)
class SamplerContext:
    """Everything a strategy needs: the space (names, choice counts), reward, seed, options.

    ``observe`` turns a finished trial into an ``Observation``; ``check`` says whether a
    candidate meets every spec (and its latency) without training it; ``attempts`` bounds the
    proposals per trial.
    """

    names: tuple[str, ...]
    counts: tuple[int, ...]
    reward: RewardConfig
    seed: int
    observe: Callable[[FrozenTrial], Observation]
    options: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[tuple[int, ...]], tuple[bool, float | None]] | None = None
    attempts: int = 1

    def distributions(self) -> dict[str, BaseDistribution]:
        return {n: CategoricalDistribution(tuple(range(c))) for n, c in zip(self.names, self.counts)}


class StrategySampler(BaseSampler):
    """An Optuna sampler driven by an ``nn2hw`` strategy, rebuilt from the study's history."""

    def __init__(self, strategy: Strategy, context: SamplerContext) -> None:
        self.strategy = strategy
        self.context = context
        self._told: set[int] = set()
        self._rejections_told: set[int] = set()  # trials whose rejections this process told live

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.context.distributions()

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        self.catch_up(study)
        indices, rejected = self.propose(trial.number)
        if rejected:
            study._storage.set_trial_user_attr(trial._trial_id, "rejected", [[list(i), lat] for i, lat in rejected])
        self._rejections_told.add(trial.number)
        return dict(zip(self.context.names, indices))

    def propose(self, number: int) -> tuple[tuple[int, ...], list[tuple[tuple[int, ...], float | None]]]:
        """The trial's candidate: the first proposal that passes ``check`` (or the last one), and
        the rejected proposals with their latencies (told to the strategy as they happen)."""
        rejected: list[tuple[tuple[int, ...], float | None]] = []
        for attempt in range(max(1, self.context.attempts)):
            indices = self.strategy.ask(number, attempt)
            if self.context.check is None or attempt == self.context.attempts - 1:
                return indices, rejected
            feasible, latency = self.context.check(indices)
            if feasible:
                return indices, rejected
            rejected.append((indices, latency))
            self.strategy.reject(Observation(number, indices, False, None, latency))
        raise AssertionError("unreachable")

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # Only reached for parameters outside the space (none in nn2hw studies): draw uniformly.
        rng = self.strategy.rng(trial.number + 1_000_003 * (hash(param_name) % 997))
        choices = param_distribution.choices  # type: ignore[attr-defined]
        return choices[int(rng.integers(len(choices)))]

    def catch_up(self, study: optuna.Study) -> None:
        """Tell the strategy every completed trial it has not seen (after the proposals its
        sampling rejected, unless this process told those already), in trial order."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        for frozen in sorted(done, key=lambda t: t.number):
            if frozen.number in self._told or not set(self.context.names) <= set(frozen.params):
                continue
            if frozen.number not in self._rejections_told:
                for indices, latency in frozen.user_attrs.get("rejected", []):
                    self.strategy.reject(Observation(frozen.number, tuple(indices), False, None, latency))
            self.strategy.tell(self.context.observe(frozen))
            self._told.add(frozen.number)

    def reseed_rng(self) -> None:  # determinism comes from (seed, trial number), nothing to reseed
        return None
