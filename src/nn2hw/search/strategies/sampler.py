"""Optuna samplers for every strategy, so storage, resume and multi-worker are uniform.

``StrategySampler`` adapts an ``nn2hw`` ``Strategy``: before each ask it replays the study's
newly completed trials into ``Strategy.tell`` in trial-number order, then asks for the trial's
candidate. Latency first: with a ``check`` (the cost model, milliseconds per candidate) a trial
may go through up to ``attempts`` proposals; those that miss a spec are told to the strategy as
rejections and recorded on the trial (user attribute ``rejected``), so a resume replays them.
TPE and NSGA-II are Optuna's own samplers; they read the constraints the runner sets on each trial
with ``Trial.set_constraint`` (feasible when every value is <= 0). ``PrefilteredSampler`` gives
TPE the same latency-first prefilter.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import STRATEGIES, Observation, RewardConfig, Strategy, StrategyInfo


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


Rejected = list[tuple[tuple[int, ...], float | None]]


def first_feasible(context: SamplerContext, propose: Callable[[int], tuple[int, ...]],
                   on_reject: Callable[[tuple[int, ...], float | None], None] = lambda i, lat: None
                   ) -> tuple[tuple[int, ...], Rejected]:
    """Latency first: the first of up to ``context.attempts`` proposals (``propose(attempt)``)
    that ``context.check`` accepts, else the last one; and the rejected ones with their latencies."""
    rejected: Rejected = []
    for attempt in range(max(1, context.attempts)):
        indices = propose(attempt)
        if context.check is None or attempt >= context.attempts - 1:
            return indices, rejected
        feasible, latency = context.check(indices)
        if feasible:
            return indices, rejected
        rejected.append((indices, latency))
        on_reject(indices, latency)
    raise AssertionError("unreachable")


def record_rejected(study: optuna.Study, trial: FrozenTrial, rejected: Rejected) -> None:
    """Keep a trial's rejected proposals on it (user attribute ``rejected``) for replay and reports."""
    if rejected:
        study._storage.set_trial_user_attr(trial._trial_id, "rejected", [[list(i), lat] for i, lat in rejected])


class _LatencyFirstSampler(BaseSampler):
    """What both sampler kinds share: the space is the context's, and a trial's candidate is the
    first proposal the cost model accepts (``first_feasible``), its rejections kept on the trial."""

    def __init__(self, context: SamplerContext) -> None:
        self.context = context

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.context.distributions()

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        self._prepare(study)
        indices, rejected = first_feasible(self.context, lambda attempt: self._propose(study, trial, attempt),
                                           lambda i, latency: self._reject(trial.number, i, latency))
        record_rejected(study, trial, rejected)
        return dict(zip(self.context.names, indices))

    def _prepare(self, study: optuna.Study) -> None:
        """Catch up with the study before proposing (default: nothing)."""

    @abstractmethod
    def _propose(self, study: optuna.Study, trial: FrozenTrial, attempt: int) -> tuple[int, ...]:
        """The trial's ``attempt``-th proposal."""

    def _reject(self, number: int, indices: tuple[int, ...], latency: float | None) -> None:
        """Learn from a rejected proposal (default: nothing)."""


class StrategySampler(_LatencyFirstSampler):
    """An Optuna sampler driven by an ``nn2hw`` strategy, rebuilt from the study's history."""

    def __init__(self, strategy: Strategy, context: SamplerContext) -> None:
        super().__init__(context)
        self.strategy = strategy
        self._told: set[int] = set()
        self._rejections_told: set[int] = set()  # trials whose rejections this process told live

    def _prepare(self, study: optuna.Study) -> None:
        self.catch_up(study)

    def _propose(self, study: optuna.Study, trial: FrozenTrial, attempt: int) -> tuple[int, ...]:
        self._rejections_told.add(trial.number)
        return self.strategy.ask(trial.number, attempt)

    def _reject(self, number: int, indices: tuple[int, ...], latency: float | None) -> None:
        self.strategy.reject(Observation(number, indices, False, None, latency))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # Only reached for parameters outside the space (none in nn2hw studies): draw uniformly.
        rng = self.strategy.rng(trial.number + 1_000_003 * (hash(param_name) % 997))
        choices = param_distribution.choices  # type: ignore[attr-defined]  # nn2hw spaces are all categorical
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


class PrefilteredSampler(_LatencyFirstSampler):
    """Latency first for one of Optuna's samplers (TPE): each trial asks ``base`` for up to
    ``context.attempts`` whole candidates and keeps the first the cost model accepts. Dimensions
    ``base`` leaves to independent sampling (TPE's start-up trials) are drawn uniformly from
    (seed, trial, attempt). ``base`` learns from the trials only, rejections stay on the trial."""

    def __init__(self, base: BaseSampler, context: SamplerContext) -> None:
        super().__init__(context)
        self.base = base

    def _propose(self, study: optuna.Study, trial: FrozenTrial, attempt: int) -> tuple[int, ...]:
        space = self.base.infer_relative_search_space(study, trial)
        params = self.base.sample_relative(study, trial, space) if space else {}
        rng = np.random.default_rng([self.context.seed, trial.number, attempt])
        draws = rng.integers(0, self.context.counts)
        return tuple(int(params.get(n, d)) for n, d in zip(self.context.names, draws))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def own(strategy: type[Strategy] | Callable[[], type[Strategy]]) -> Callable[[SamplerContext], BaseSampler]:
    """The builder of an nn2hw ``Strategy``'s sampler (replay, latency-first prefilter).

    ``strategy`` is the class, or a function of no arguments that returns it: the class is then
    loaded only when a search builds the sampler (REINFORCE's imports torch)."""
    load = (lambda: strategy) if isinstance(strategy, type) else strategy

    def build(ctx: SamplerContext) -> BaseSampler:
        cls = load()
        return StrategySampler(cls(ctx.counts, ctx.reward, ctx.seed, **ctx.options), ctx)

    return build


def build_sampler(name: str, ctx: SamplerContext) -> tuple[BaseSampler, StrategyInfo]:
    """The sampler of strategy ``name`` for ``ctx`` (an ``UnknownNameError`` suggests close names)."""
    info = STRATEGIES.get(name)
    try:
        return info.build(ctx), info
    except TypeError as exc:  # an option Optuna's sampler does not take
        raise ConfigError(f"Strategy {name!r} rejects its options {dict(ctx.options)}: {exc}.",
                          "Pass only options that strategy accepts (see docs/search.md).") from None
