"""Optuna samplers for every strategy, so storage, resume and multi-worker are uniform.

``StrategySampler`` adapts an ``nn2hw`` ``Strategy``: before each ask it replays the study's
newly completed trials into ``Strategy.tell`` in slot order, then asks for the trial's candidate.

Exact resume: every trial has a slot (user attribute ``slot``), its position in the study as an
uninterrupted run numbers it. A fresh trial takes the next slot; an interrupted trial (SIGINT,
SIGTERM, SIGKILL, a dead worker) is failed and its candidate queued to run again at its slot
(``requeue``: user attribute ``rerun_of``, its parameters fixed). Strategies draw their randomness
from (seed, slot) and replay trials in slot order; Optuna's samplers are rebuilt per trial with a
seed from (seed, slot). A resumed study therefore re-runs the interrupted candidate first and then
proposes what the uninterrupted study proposed.

Latency first: with a ``check`` (the cost model, milliseconds per candidate) a trial may go through
up to ``attempts`` proposals; those that miss a spec are told to the strategy as rejections and
recorded on the trial (user attribute ``rejected``), so a resume replays them. TPE and NSGA-II are
Optuna's own samplers; they read the constraints the runner sets on each trial with
``Trial.set_constraint`` (feasible when every value is <= 0). ``PrefilteredSampler`` gives TPE the
same latency-first prefilter.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import STRATEGIES, Observation, RewardConfig, Strategy, StrategyInfo

if TYPE_CHECKING:
    from nn2hw.space import Dimension


@dataclass(frozen=True)
class SamplerContext:
    """Everything a strategy needs: the space (names, choice counts), reward, seed, options.

    ``observe`` turns a finished trial into an ``Observation``; ``check`` says whether a
    candidate meets every spec (and its latency) without training it; ``attempts`` bounds the
    proposals per trial. ``dimensions`` say what each choice means (technique, plan fields, labels)
    for a strategy that reads them (``uniform``); a driver may leave them out.
    """

    names: tuple[str, ...]
    counts: tuple[int, ...]
    reward: RewardConfig
    seed: int
    observe: Callable[[FrozenTrial], Observation]
    options: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[tuple[int, ...]], tuple[bool, float | None]] | None = None
    attempts: int = 1
    dimensions: tuple[Dimension, ...] = ()

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
    """Keep a trial's rejected proposals on it (user attribute ``rejected``) for replay and reports
    (replacing those a re-run copied from the trial it repeats)."""
    if rejected or "rejected" in trial.user_attrs:
        study._storage.set_trial_user_attr(trial._trial_id, "rejected", [[list(i), lat] for i, lat in rejected])


SLOT = "slot"
"""User attribute: the trial's position in the study as an uninterrupted run numbers it."""
RERUN_OF = "rerun_of"
"""User attribute of a re-run: the number of the interrupted trial whose candidate it runs again."""
ERROR = "error"
"""User attribute of a trial that failed with an error (a result, not an interruption: never re-run)."""


def exhausted(study: optuna.Study) -> bool:
    """Whether the study's sampler has proposed every candidate it has (a finite strategy, e.g.
    ``uniform``'s grid, defines ``exhausted(study)``; the search loop then starts no new trial)."""
    check = getattr(study.sampler, "exhausted", None)
    return bool(check(study)) if callable(check) else False


def slot_of(trial: FrozenTrial) -> int:
    """The trial's slot (its number in a study that never had a re-run)."""
    return int(trial.user_attrs.get(SLOT, trial.number))


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the candidate of ``trial``, failed by an interruption, to run next at its slot: with the
    parameters it had (those it was re-run with too) fixed and its rejected proposals; parameters
    it never received are proposed again at that slot, as the uninterrupted study proposed them."""
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    attrs = {SLOT: slot_of(trial), RERUN_OF: trial.number}
    if "rejected" in trial.user_attrs:
        attrs["rejected"] = trial.user_attrs["rejected"]
    study.enqueue_trial(params, user_attrs=attrs)


def _fresh_slot(study: optuna.Study, trial: FrozenTrial) -> int:
    """A fresh trial's slot: its number less the re-runs numbered before it."""
    reruns = sum(RERUN_OF in t.user_attrs for t in study.get_trials(deepcopy=False) if t.number < trial.number)
    return trial.number - reruns


class _SlotSampler(BaseSampler):
    """Gives every trial its slot before it samples (a re-run brings its own)."""

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if SLOT not in trial.user_attrs:
            slot = _fresh_slot(study, trial)
            study._storage.set_trial_user_attr(trial._trial_id, SLOT, slot)
            trial.user_attrs[SLOT] = slot  # the frozen trial Optuna hands on to sample_relative


def slot_seed(seed: int, slot: int) -> int:
    """The seed of an Optuna sampler built for ``slot``: the same on a resume or another worker."""
    return int(np.random.SeedSequence([seed, slot]).generate_state(1)[0])


class _LatencyFirstSampler(_SlotSampler):
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
                                           lambda i, latency: self._reject(slot_of(trial), i, latency))
        record_rejected(study, trial, rejected)
        return dict(zip(self.context.names, indices))

    def _prepare(self, study: optuna.Study) -> None:
        """Catch up with the study before proposing (default: nothing)."""

    @abstractmethod
    def _propose(self, study: optuna.Study, trial: FrozenTrial, attempt: int) -> tuple[int, ...]:
        """The trial's ``attempt``-th proposal."""

    def _reject(self, slot: int, indices: tuple[int, ...], latency: float | None) -> None:
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
        return self.strategy.ask(slot_of(trial), attempt)

    def _reject(self, slot: int, indices: tuple[int, ...], latency: float | None) -> None:
        self.strategy.reject(Observation(slot, indices, False, None, latency))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # Only reached for parameters outside the space (none in nn2hw studies): draw uniformly.
        rng = self.strategy.rng(slot_of(trial) + 1_000_003 * (hash(param_name) % 997))
        choices = param_distribution.choices  # type: ignore[attr-defined]  # nn2hw spaces are all categorical
        return choices[int(rng.integers(len(choices)))]

    def catch_up(self, study: optuna.Study) -> None:
        """Tell the strategy every completed or pruned trial it has not seen (after the proposals its
        sampling rejected, unless this process told those already), in slot order; of a trial that
        failed with an error only those rejections (the uninterrupted process learned them live)."""
        names = set(self.context.names)
        learned = (TrialState.COMPLETE, TrialState.PRUNED)
        finished = [t for t in study.get_trials(deepcopy=False, states=(*learned, TrialState.FAIL))
                    if t.number not in self._told and names <= set(t.params)
                    and (t.state in learned or ERROR in t.user_attrs)]
        for frozen in sorted(finished, key=lambda t: (slot_of(t), t.number)):
            if frozen.number not in self._rejections_told:
                for indices, latency in frozen.user_attrs.get("rejected", []):
                    self.strategy.reject(Observation(slot_of(frozen), tuple(indices), False, None, latency))
            if frozen.state in learned:  # a pruned trial with its partial score (``observe``)
                self.strategy.tell(self.context.observe(frozen))
            self._told.add(frozen.number)

    def reseed_rng(self) -> None:  # determinism comes from (seed, slot), nothing to reseed
        return None


SamplerFactory = Callable[[int], BaseSampler]
"""Builds one of Optuna's samplers from a seed."""


class _PerSlot(_SlotSampler):
    """One of Optuna's samplers, built afresh for each trial with a seed from (seed, slot): its
    random state then depends on the trial's slot and the stored trials only, not on what this
    process sampled before, so a resumed study samples as the uninterrupted one did."""

    def __init__(self, build: SamplerFactory, seed: int) -> None:
        self.build, self.seed = build, seed
        self._built: tuple[int, BaseSampler] | None = None

    def base(self, trial: FrozenTrial) -> BaseSampler:
        """The sampler of ``trial`` (built at its first use)."""
        if self._built is None or self._built[0] != trial.number:
            self._built = (trial.number, self.build(slot_seed(self.seed, slot_of(trial))))
        return self._built[1]

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.base(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        self.base(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.base(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # determinism comes from (seed, slot), nothing to reseed
        return None


class SlotSeededSampler(_PerSlot):
    """One of Optuna's samplers (NSGA-II) rebuilt per trial from (seed, slot). A re-run, whose
    parameters are fixed, still goes through the sampler once, so that what it records on the
    trial (NSGA-II's generation) is recorded as for the trial it repeats."""

    def __init__(self, build: SamplerFactory, seed: int) -> None:
        super().__init__(build, seed)
        self._sampled: tuple[int, dict[str, Any]] | None = None

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """Once per trial (a second call returns the first one's draw, as the random state moved on)."""
        if self._sampled is None or self._sampled[0] != trial.number:
            self._sampled = (trial.number, self.base(trial).sample_relative(study, trial, search_space))
        return self._sampled[1]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        if RERUN_OF in trial.user_attrs and trial.system_attrs.get("fixed_params"):
            self.sample_relative(study, trial, self.infer_relative_search_space(study, trial))


class PrefilteredSampler(_PerSlot, _LatencyFirstSampler):
    """Latency first for one of Optuna's samplers (TPE, rebuilt per trial from (seed, slot)): each
    trial asks it for up to ``context.attempts`` whole candidates and keeps the first the cost model
    accepts. Dimensions it leaves to independent sampling (TPE's start-up trials) are drawn
    uniformly from (seed, slot, attempt). It learns from the trials only, rejections stay on the trial."""

    def __init__(self, build: SamplerFactory, context: SamplerContext) -> None:
        _PerSlot.__init__(self, build, context.seed)
        _LatencyFirstSampler.__init__(self, context)

    def _propose(self, study: optuna.Study, trial: FrozenTrial, attempt: int) -> tuple[int, ...]:
        base = self.base(trial)
        space = base.infer_relative_search_space(study, trial)
        params = base.sample_relative(study, trial, space) if space else {}
        rng = np.random.default_rng([self.context.seed, slot_of(trial), attempt])
        draws = rng.integers(0, self.context.counts)
        return tuple(int(params.get(n, d)) for n, d in zip(self.context.names, draws))


def own(strategy: type[Strategy] | Callable[[], type[Strategy]]) -> Callable[[SamplerContext], BaseSampler]:
    """The builder of an nn2hw ``Strategy``'s sampler (replay, latency-first prefilter).

    ``strategy`` is the class, or a function of no arguments that returns it: the class is then
    loaded only when a search builds the sampler (REINFORCE's imports torch)."""
    load = (lambda: strategy) if isinstance(strategy, type) else strategy

    def build(ctx: SamplerContext) -> BaseSampler:
        cls: type[Strategy] = load()
        return StrategySampler(cls(ctx.counts, ctx.reward, ctx.seed, **cls.parse_options(ctx.options)), ctx)

    return build


def build_sampler(name: str, ctx: SamplerContext) -> tuple[BaseSampler, StrategyInfo]:
    """The sampler of strategy ``name`` for ``ctx`` (an ``UnknownNameError`` suggests close names)."""
    info = STRATEGIES.get(name)
    try:
        return info.build(ctx), info
    except TypeError as exc:  # an option Optuna's sampler does not take
        raise ConfigError(f"Strategy {name!r} rejects its options {dict(ctx.options)}: {exc}.",
                          "Pass only options that strategy accepts (see docs/search.md).") from None
