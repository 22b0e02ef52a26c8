"""Exact resume after an interrupted trial, with the latency-first prefilter on (its rejected
proposals are replayed in slot order), for every strategy; the contract's own check
(``StrategyContract``) runs without the prefilter. And the signal deferral that keeps a trial's
creation and its owner together."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nn2hw.search.strategies import STRATEGIES
from nn2hw.testing.strategies import completed, interrupt, run
from tests.search.test_strategies import NEEDS_A_SEARCH

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("sampled", [True, False], ids=["with-its-candidate", "before-sampling"])
@pytest.mark.parametrize("strategy", [n for n in STRATEGIES.names() if n not in NEEDS_A_SEARCH])
def test_an_interrupted_prefiltered_trial_runs_again_first_and_the_study_continues_exactly(tmp_path, strategy,
                                                                                         sampled):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run(strategy, 6, storage=url, checked=True)
    lost = interrupt(strategy, url, sampled, checked=True)
    run(strategy, 9, storage=url, checked=True)
    lost_again = interrupt(strategy, url, sampled, checked=True)  # a second fault, later
    resumed = run(strategy, 16, storage=url, checked=True)
    straight = run(strategy, 16, checked=True)
    assert completed(resumed) == completed(straight)
    assert [t.user_attrs.get("rejected") for t in resumed.trials if t.state is TrialState.COMPLETE] == \
        [t.user_attrs.get("rejected") for t in straight.trials]
    for fault in (lost, lost_again):
        rerun = resumed.trials[fault.number + 1]
        assert rerun.user_attrs["rerun_of"] == fault.number and rerun.state is TrialState.COMPLETE


def test_a_rerun_interrupted_again_keeps_its_slot(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run("reinforce", 5, storage=url, checked=True)
    first = interrupt("reinforce", url, True, checked=True)
    second = interrupt("reinforce", url, True, checked=True)  # the re-run itself is interrupted
    assert second.user_attrs["rerun_of"] == first.number and second.params == first.params
    assert second.user_attrs["slot"] == first.user_attrs["slot"] == 5
    resumed = run("reinforce", 12, storage=url, checked=True)
    assert completed(resumed) == completed(run("reinforce", 12, checked=True))


def test_a_signal_inside_a_deferred_block_arrives_when_it_ends():
    import os
    import signal

    from nn2hw._liveness import interrupts_deferred

    steps = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (`pytest &` ignores it)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)  # e.g. between creating a trial and recording its owner
                steps.append("owner recorded")
            steps.append("not reached")
        assert steps == ["owner recorded"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    finally:
        signal.signal(signal.SIGINT, previous)
