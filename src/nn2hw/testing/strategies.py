"""The search-strategy conformance suite: deterministic, inside the space, exact resume (also
after an interrupted trial).

Subclass ``StrategyContract`` and give the ``strategy`` fixture (a registered name or a
``StrategyInfo``)::

    class TestMyStrategy(StrategyContract):
        @pytest.fixture
        def strategy(self):
            return "my-strategy"

The checks run on a synthetic space (``toy``: accuracy falls and latency drops as the indices
grow; the latency spec needs their sum to reach 10), so they take seconds, not a training run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from nn2hw.search.strategies import STRATEGIES, Observation, RewardConfig, SamplerContext, StrategyInfo
from nn2hw.search.strategies.sampler import requeue, slot_of

COUNTS = (4, 4, 4, 4, 4, 4)
NAMES = tuple(f"d{i}" for i in range(len(COUNTS)))
REWARD = RewardConfig(spec_ms=7.0, acc_band=(80.0, 95.0), lat_band=(5.0, 7.0))


def toy(indices: Any) -> tuple[float, float]:
    """(accuracy %, latency ms) of an index vector of the synthetic space."""
    idx = np.asarray(indices)
    latency = 10.0 - 0.3 * idx.sum()
    accuracy = 95.0 - 0.6 * idx.sum() - 2.0 * (idx[0] != 1)
    return float(accuracy), float(latency)


def observe(trial: FrozenTrial) -> Observation:
    return Observation(slot_of(trial), tuple(trial.params[n] for n in NAMES), trial.user_attrs["feasible"],
                       trial.user_attrs["metric"], trial.user_attrs["latency_ms"])


def check(indices: Any) -> tuple[bool, float]:
    """The cost model of the toy: (meets the spec, latency)."""
    _, latency = toy(indices)
    return latency <= REWARD.spec_ms, latency


def context(seed: int = 0, checked: bool = False, **options: Any) -> SamplerContext:
    return SamplerContext(NAMES, COUNTS, REWARD, seed, observe, options, check=check if checked else None,
                          attempts=16 if checked else 1)


def info_of(strategy: str | StrategyInfo) -> StrategyInfo:
    return STRATEGIES.get(strategy) if isinstance(strategy, str) else strategy


def run(strategy: str | StrategyInfo, n: int, storage: str | None = None, study_name: str = "toy", seed: int = 0,
        checked: bool = False) -> optuna.Study:
    """A study of ``n`` completed trials of ``strategy`` on the toy (continuing ``study_name`` in
    ``storage``, as a fresh process would: the sampler is built anew)."""
    info = info_of(strategy)
    study = _open(info, storage, study_name, seed, checked)
    while len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < n:
        trial = study.ask()
        idx = [trial.suggest_categorical(name, list(range(c))) for name, c in zip(NAMES, COUNTS)]
        acc, lat = toy(idx)
        feasible = lat <= REWARD.spec_ms
        trial.set_user_attr("feasible", feasible)
        trial.set_user_attr("metric", acc if feasible else None)
        trial.set_user_attr("latency_ms", lat)
        trial.set_constraint("latency_ms", lat - REWARD.spec_ms)
        value = acc if feasible else 0.0
        study.tell(trial, [value] if info.objectives == 1 else [value, lat])
    return study


def _open(info: StrategyInfo, storage: str | None, study_name: str, seed: int, checked: bool) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name=study_name, sampler=info.build(context(seed, checked)),
                               directions=info.directions, load_if_exists=True)


def interrupt(strategy: str | StrategyInfo, storage: str, sampled: bool, study_name: str = "toy", seed: int = 0,
              checked: bool = False) -> FrozenTrial:
    """A process starts the next trial of the study (and samples its candidate when ``sampled``) and
    is interrupted: the trial is failed and its candidate queued to run again at its slot, as the
    search loop does (``requeue``). Returns the interrupted trial."""
    study = _open(info_of(strategy), storage, study_name, seed, checked)
    trial = study.ask()
    if sampled:
        for name, count in zip(NAMES, COUNTS):
            trial.suggest_categorical(name, list(range(count)))
    study.tell(trial, state=TrialState.FAIL)
    failed = study.get_trials(deepcopy=False)[trial.number]
    requeue(study, failed)
    return failed


def completed(study: optuna.Study) -> list[dict[str, Any]]:
    """The parameters of the completed trials, in trial order."""
    return [t.params for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


class StrategyContract:
    """Same seed, same proposals; proposals inside the space; a resumed study continues exactly."""

    def test_declares_itself(self, strategy: str | StrategyInfo) -> None:
        info = info_of(strategy)
        assert info.name and info.description and info.objectives in (1, 2)

    def test_is_deterministic_and_stays_in_the_space(self, strategy: str | StrategyInfo) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        first, again = run(strategy, 20), run(strategy, 20)
        params = [tuple(t.params[n] for n in NAMES) for t in first.trials]
        assert params == [tuple(t.params[n] for n in NAMES) for t in again.trials]
        assert all(0 <= v < c for p in params for v, c in zip(p, COUNTS))

    def test_resume_continues_exactly(self, strategy: str | StrategyInfo, tmp_path: Any) -> None:
        if not info_of(strategy).exact_resume:
            pytest.skip("the strategy declares that its resume is deterministic but not exact")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        url = f"sqlite:///{tmp_path / 'study.db'}"
        run(strategy, 8, storage=url)
        resumed = run(strategy, 20, storage=url)  # a fresh sampler rebuilds its state from the stored trials
        straight = run(strategy, 20)
        assert [t.params for t in resumed.trials] == [t.params for t in straight.trials]

    @pytest.mark.parametrize("sampled", [True, False], ids=["with-its-candidate", "before-sampling"])
    def test_an_interrupted_trial_runs_again_first_and_the_study_continues_exactly(
            self, strategy: str | StrategyInfo, tmp_path: Any, sampled: bool) -> None:
        if not info_of(strategy).exact_resume:
            pytest.skip("the strategy declares that its resume is deterministic but not exact")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        url = f"sqlite:///{tmp_path / 'study.db'}"
        run(strategy, 7, storage=url)
        lost = interrupt(strategy, url, sampled)
        resumed = run(strategy, 20, storage=url)
        straight = run(strategy, 20)
        assert completed(resumed) == completed(straight)
        rerun = resumed.trials[lost.number + 1]
        assert rerun.user_attrs["rerun_of"] == lost.number and rerun.state is TrialState.COMPLETE
        if sampled:
            assert rerun.params == lost.params
