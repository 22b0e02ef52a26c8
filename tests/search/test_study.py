"""Studies: create/resume/identity checks, storage errors, stale trials, shared evaluations,
and two workers on one real PostgreSQL study."""

from __future__ import annotations

import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from nn2hw._liveness import owner_id
from nn2hw.errors import StudyError
from nn2hw.evaluate.store import EvaluationStore
from nn2hw.search.study import (
    GRACE_S,
    count_trials,
    heartbeat,
    open_storage,
    open_study,
    reclaim,
    storage_url_for,
)
from tests.search.postgres import postgres_server

optuna.logging.set_verbosity(optuna.logging.WARNING)
IDENTITY = {"model": "resnet20", "dataset": "fashion-mnist", "spec": {"latency_ms": 1.0}}


def sampler():
    return optuna.samplers.RandomSampler(seed=0)


def test_new_resume_and_identity(tmp_path):
    storage = open_storage(storage_url_for(str(tmp_path / "s.db")))
    open_study(storage, "a", IDENTITY, sampler(), ["maximize"], "new")
    with pytest.raises(StudyError, match="already exists.*--resume"):
        open_study(storage, "a", IDENTITY, sampler(), ["maximize"], "new")
    with pytest.raises(StudyError, match="no study named 'b'"):
        open_study(storage, "b", IDENTITY, sampler(), ["maximize"], "resume")
    other = {**IDENTITY, "spec": {"latency_ms": 2.0}}
    with pytest.raises(StudyError, match=r"spec: .*latency_ms.*1\.0.*2\.0.*new study"):
        open_study(storage, "a", other, sampler(), ["maximize"], "resume")
    assert open_study(storage, "a", IDENTITY, sampler(), ["maximize"], "resume").study_name == "a"


@pytest.mark.parametrize("url", ["postgresql+psycopg2://nobody:secret@127.0.0.1:1/none", "notadialect://x"])
def test_unreachable_storage_is_a_clear_error(url):
    with pytest.raises(StudyError, match="Cannot open the study storage") as info:
        open_storage(url)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("url, driver", [("postgresql+psycopg2://nobody:secret@127.0.0.1:1/none", "psycopg2"),
                                         ("postgresql://nobody:secret@127.0.0.1:1/none", None)])
def test_postgres_without_its_driver_names_the_extra(monkeypatch, url, driver):
    for module in ("psycopg2", "psycopg"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import psycopg2` (and psycopg 3) fail
    with pytest.raises(StudyError) as info:
        open_storage(url)
    error = info.value
    assert "PostgreSQL" in error.cause and "not installed" in error.cause and "secret" not in str(error)
    assert 'pip install "nn2hw[postgres]"' in error.fix
    if driver is not None:  # a bare URL takes whichever driver is installed: none here
        assert f"driver {driver} " in error.cause


def test_trials_of_a_dead_worker_are_failed_on_resume(tmp_path):
    url = storage_url_for(str(tmp_path / "s.db"))
    study = open_study(open_storage(url, heartbeat_s=1, grace_s=1), "a", IDENTITY, sampler(), ["maximize"], "new")
    done = study.ask()
    study.tell(done, 1.0)
    with heartbeat(study, study.ask()):
        time.sleep(0.2)  # the worker "dies" here: its trial stays RUNNING and stops heart-beating
    time.sleep(2.5)
    resumed = open_study(open_storage(url, heartbeat_s=1, grace_s=1), "a", IDENTITY, sampler(), ["maximize"],
                         "resume")
    states = [t.state for t in resumed.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]  # its candidate runs again next
    assert count_trials(resumed) == {"total": 3, "complete": 1, "pruned": 0, "running": 0, "failed": 1,
                                     "errored": 0}


def test_one_worker_computes_each_key(tmp_path):
    engine = open_storage(storage_url_for(str(tmp_path / "s.db"))).engine
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return {"top1": 90.0}

    results = []
    workers = [threading.Thread(target=lambda i=i: results.append(
        EvaluationStore(engine, f"w{i}", poll_s=0.05).evaluate("k", compute))) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(calls) == 1
    assert sorted(r.computed for r in results) == [False, False, True]
    assert all(r.metrics == {"top1": 90.0} for r in results)


def test_failed_evaluation_writes_nothing_and_stale_claims_are_taken_over(tmp_path):
    engine = open_storage(storage_url_for(str(tmp_path / "s.db"))).engine
    store = EvaluationStore(engine, "a")
    with pytest.raises(RuntimeError):
        store.evaluate("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert store.lookup("k") is None
    assert store._try_claim("k")  # claimed by 'a', which then "dies"
    late = EvaluationStore(engine, "b", stale_after_s=0.2, poll_s=0.05)
    time.sleep(0.3)
    assert late.evaluate("k", lambda: {"top1": 1.0}).computed


def _worker(url: str, name: str, n_trials: int, trained: list, done_by: list, errors: list) -> None:
    try:
        storage = open_storage(url)
        study = open_study(storage, name, IDENTITY, optuna.samplers.RandomSampler(), ["maximize"], "join")
        me = f"w{threading.get_ident()}"
        store = EvaluationStore(storage.engine, me, poll_s=0.05)
        while count_trials(study)["total"] < n_trials:
            trial = study.ask()
            x = trial.suggest_categorical("x", [0, 1, 2, 3])  # few choices: workers collide often

            def train(x=x):
                trained.append(x)
                time.sleep(0.2)
                return {"top1": float(x)}

            study.tell(trial, store.evaluate(f"x={x}", train).metrics["top1"])
            done_by.append(me)
    except Exception as exc:  # surfaced by the test, not swallowed by the thread
        errors.append(exc)


@pytest.mark.slow
def test_two_workers_on_one_postgres_study():
    with postgres_server() as url:
        trained, done_by, errors = [], [], []
        workers = [threading.Thread(target=_worker, args=(url, "shared", 12, trained, done_by, errors))
                   for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors, errors
        assert len(set(done_by)) == 2  # both workers completed trials
        study = optuna.load_study(study_name="shared", storage=url)
        numbers = [t.number for t in study.trials]
        assert len(numbers) == len(set(numbers)) >= 12
        assert all(t.state is TrialState.COMPLETE for t in study.trials)
        assert sorted(trained) == sorted(set(trained))  # no candidate trained twice


def test_a_killed_local_owner_is_failed_and_its_claim_taken_at_once(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ghost = f"{owner_id().split(':')[0]}:{dead.stdout.strip()}:w0"  # a pid of this host that has exited
    url = storage_url_for(str(tmp_path / "s.db"))
    study = open_study(open_storage(url), "a", IDENTITY, sampler(), ["maximize"], "new")
    alive = study.ask()
    alive.set_user_attr("owner", owner_id())
    orphan = study.ask()
    orphan.set_user_attr("owner", ghost)
    assert reclaim(study, GRACE_S) == 1
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    engine = open_storage(url).engine
    EvaluationStore(engine, ghost)._try_claim("k")
    assert EvaluationStore(engine, "me", stale_after_s=3600).evaluate("k", lambda: {"top1": 2.0}).computed


def test_budget_counts_completed_and_errored_trials_not_interrupted_ones(tmp_path):
    """A trial that failed on its own (a diverged fine-tune) is spent budget; an interrupted one runs again."""
    from nn2hw.search.loop import SearchBudget
    from nn2hw.search.strategies.sampler import ERROR

    study = open_study(open_storage(storage_url_for(str(tmp_path / "b.db"))), "b", IDENTITY, sampler(), ["maximize"],
                       "new")
    budget = SearchBudget(trials=3, deadline=None)
    study.tell(study.ask(), 1.0)
    errored = study.ask()
    errored.set_user_attr(ERROR, "fine-tuning diverged")
    study.tell(errored, state=TrialState.FAIL)
    study.tell(study.ask(), state=TrialState.FAIL)  # interrupted: not counted
    assert count_trials(study)["errored"] == 1 and budget.step(study) == "run"
    running = study.ask()
    assert budget.step(study) == "wait"  # the running trial holds the last unit of budget
    study.tell(running, 2.0)
    assert budget.step(study) == "done"


def test_a_failed_heartbeat_is_one_line_and_the_beating_goes_on(capsys):
    """SQLite's "database is locked" under load used to end the beat thread with a traceback, and
    then no beat came at all; now that beat is reported in one line and the next one is on time."""
    import time

    from nn2hw._liveness import every

    calls = []

    def action():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database is locked\n(more detail)")

    with every(0.02, action, first=True):
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 3
    err = capsys.readouterr().err
    assert "a heartbeat failed (RuntimeError: database is locked)" in err and "Traceback" not in err
