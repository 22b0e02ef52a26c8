"""Fault injection: a small search is killed (SIGKILL), interrupted (SIGINT) or terminated (SIGTERM)
at a seeded random point, then resumed; its completed candidates (trials.csv) and its solution
must equal those of the same search run without a fault. Also: the trial of a worker that is gone
is failed and its candidate run again, by the start of a resume and by live workers as they go
(a dead worker among two on PostgreSQL; a hung worker, by its heartbeat; a remote worker whose
heartbeat stopped).

The searches run the CLI in a subprocess on the CIFAR-10 ResNet-20 with a fake evaluator (a
deterministic score of the compressed weights and a 0.3 s pause, no training), so each run takes seconds."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nn2hw.search.study import open_storage, open_study, reclaim, storage_url_for
from tests.search.postgres import postgres_server

pytestmark = [pytest.mark.data, pytest.mark.slow, pytest.mark.timed]  # timed: runs alone (tests/conftest.py)
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC_MS = 0.34  # between the leanest candidate (0.215 ms) and the base (0.471 ms): most candidates meet it
TRIALS = 10
SEARCH = textwrap.dedent("""
    import sys, time
    import nn2hw.search.context, nn2hw.search.finalize

    def kept_weights(model):  # deterministic, and higher the more weights a candidate keeps
        time.sleep(0.3)  # as a (very) short fine-tune: the faults land in one trial or another
        kept = sum(int((p != 0).sum()) for p in model.parameters())
        return {"top1": kept / 3000.0, "top5": min(100.0, kept / 2500.0)}

    nn2hw.search.context.default_evaluator = nn2hw.search.finalize.default_evaluator = \\
        lambda *args, **kwargs: kept_weights
    from nn2hw.cli import main
    sys.exit(main(["search", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial",
                   "--latency-ms", sys.argv[1], "--quiet", *sys.argv[2:]]))
""")


def _interruptible() -> None:
    """In the child before exec: SIGINT as in a terminal. A test run started in the background of a
    shell (`pytest &`) ignores SIGINT, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def search(out: Path, strategy: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SEARCH, str(SPEC_MS), "--strategy", strategy, "--trials",
                             str(TRIALS), "--seed", "3", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
                            preexec_fn=_interruptible)


def finished(proc: subprocess.Popen, timeout_s: float = 300) -> tuple[int, str]:
    """The exit code, and stdout and stderr together."""
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out + err


def completed_in(db: Path) -> int:
    """Completed trials in the study file (0 before it exists)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not created yet
        return 0


def outcome(out: Path) -> tuple[list[dict[str, str]], dict]:
    """The completed candidates of trials.csv (without which process trained them) and the solution
    of report.json (without its trial number, which shifts after a re-run, and the time minimizing
    its plan took)."""
    with (out / "trials.csv").open() as f:
        rows = [{k: v for k, v in row.items() if k not in ("trial", "trained_here")} for row in csv.DictReader(f)
                if row["state"] == "COMPLETE"]
    solution = json.loads((out / "report.json").read_text())["solution"]
    solution.pop("trial")
    solution.get("minimization", {}).pop("seconds", None)  # how long minimizing took
    return rows, solution


@pytest.fixture(scope="module")
def uninterrupted(shared_data, tmp_path_factory):
    """Each strategy's outcome without a fault (computed once per strategy)."""
    found: dict[str, tuple] = {}

    def get(strategy: str) -> tuple[list[dict[str, str]], dict]:
        if strategy not in found:
            out = tmp_path_factory.mktemp(f"straight-{strategy}")
            code, err = finished(search(out, strategy))
            assert code == 0, err
            found[strategy] = outcome(out)
        return found[strategy]

    return get


@pytest.mark.parametrize("fault, strategy", [(signal.SIGKILL, "tpe"), (signal.SIGINT, "reinforce"),
                                             (signal.SIGTERM, "reinforce")], ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_a_search_stopped_at_a_random_point_resumes_into_the_uninterrupted_result(
        tmp_path, uninterrupted, fault, strategy):
    rng = random.Random(f"{fault.name}-{strategy}")
    after, delay_s = rng.randint(1, TRIALS - 5), rng.uniform(0.0, 0.4)  # the seeded random point
    out = tmp_path / "run"
    proc = search(out, strategy)
    deadline = time.time() + 240
    while completed_in(out / "study.db") < after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(delay_s)
    if proc.poll() == 0:  # the whole search ran while this process was starved (a loaded machine): no point to stop
        pytest.skip(f"the search finished before {completed_in(out / 'study.db')} >= {after} completed trials were "
                    "seen: this poller was starved of CPU; run it on a quieter machine")
    proc.send_signal(fault)
    code, err = finished(proc)
    if fault is signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:  # one line saying what happens, no traceback; 130 for SIGINT as for Ctrl-C, 128 + 15 for SIGTERM
        assert code == 128 + fault and "Traceback" not in err, err
        said = [line for line in err.splitlines() if "interrupted" in line]
        assert len(said) == 1 and said[0].startswith("interrupted:") and "--resume" in said[0], err
        study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
        assert not [t for t in study.trials if t.state is TrialState.RUNNING]  # failed, not left running
    assert 0 < completed_in(out / "study.db") < TRIALS

    code, err = finished(search(out, strategy, "--resume"))
    assert code == 0, err
    assert outcome(out) == uninterrupted(strategy)
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    for lost, after_it in zip(rows, rows[1:]):  # the interrupted candidate ran again first
        if lost["state"] == "FAIL" and lost["plan_key"]:
            assert after_it["state"] == "COMPLETE" and after_it["plan_key"] == lost["plan_key"]


def test_a_remote_worker_without_heartbeat_is_reclaimed_after_the_grace_period(tmp_path):
    url = storage_url_for(str(tmp_path / "s.db"))
    study = open_study(open_storage(url, heartbeat_s=1, grace_s=2), "a", {"model": "m"},
                       optuna.samplers.RandomSampler(seed=0), ["maximize"], "new")
    remote = study.ask()
    remote.set_user_attr("owner", "another-host:4242:w1")
    x = remote.suggest_categorical("x", [0, 1, 2, 3])
    study._storage.record_heartbeat(remote._trial_id)  # then that machine dies: no more beats
    ownerless = study.ask()  # a worker killed inside ask, before it recorded its owner
    assert reclaim(study, grace_s=2) == 0  # within the grace period both may be alive
    time.sleep(3.0)
    assert reclaim(study, grace_s=2) == 2
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    rerun = study.trials[2]
    assert rerun.user_attrs["rerun_of"] == remote.number and rerun.system_attrs["fixed_params"] == {"x": x}
    assert study.trials[3].user_attrs["rerun_of"] == ownerless.number
    assert reclaim(study, grace_s=2) == 0  # reclaimed once


WORKER_IMAGES = "384"
"""Images each trial scores: slow enough (about a second) that the spawned worker, which starts seconds
after the first, runs trials of its own even on a quiet machine."""
KILLED_WORKER = textwrap.dedent("""
    import sys
    from nn2hw.evaluate.settings import FinetuneSettings
    from nn2hw.search import SearchSettings, Spec, run_search
    run_search(SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", select_on_test=True,
                              strategy="random",
                              spec=Spec(latency_ms=float(sys.argv[3])), trials=int(sys.argv[4]), workers=2,
                              storage=sys.argv[1], study="shared", out=sys.argv[2], search_images=int(sys.argv[5]),
                              finetune=FinetuneSettings(batches=0), final_finetune=FinetuneSettings(batches=0)),
               progress=False)
""")


def test_a_worker_killed_among_two_on_postgres_is_reclaimed_and_the_budget_completed(shared_data, tmp_path):
    """kill -9 of the spawned worker while it runs a trial: the other worker fails that trial at once
    (its owner process is gone; a worker on another machine is failed once its heartbeat is older
    than the grace period) and runs its candidate again; the study completes its budget."""
    trials = 10
    with postgres_server() as url:
        env = {**os.environ, "NN2HW_HEARTBEAT_S": "1"}  # grace period 4 s
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, url, str(tmp_path / "run"), str(SPEC_MS),
                                 str(trials), WORKER_IMAGES], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        victim = None
        deadline = time.time() + 240
        while victim is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="shared", storage=url)
            except KeyError:  # not created yet
                continue
            victim = next((t for t in study.get_trials(states=(TrialState.RUNNING,))
                           if str(t.user_attrs.get("owner", "")).endswith(":w1") and t.params), None)
        assert victim is not None, "the spawned worker never ran a trial"
        os.kill(int(victim.user_attrs["owner"].split(":")[1]), signal.SIGKILL)
        killed_at = time.time()
        code, err = finished(proc)
        assert code == 0, err
        study = optuna.load_study(study_name="shared", storage=url)
        by_state = {s: [t for t in study.trials if t.state is s] for s in TrialState}
        assert len(by_state[TrialState.COMPLETE]) == trials
        assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
        failed = study.trials[victim.number]
        assert failed.state is TrialState.FAIL
        assert failed.datetime_complete.timestamp() - killed_at < 4  # failed within the grace period
        rerun = next(t for t in study.trials if t.user_attrs.get("rerun_of") == victim.number)
        assert rerun.state is TrialState.COMPLETE and failed.params  # it ran the lost candidate again:
        assert failed.params.items() <= rerun.params.items()  # the choices it had drawn, the rest drawn anew
        assert "worker process(es) stopped early" in err and "Traceback" not in err


def test_a_hung_worker_is_reclaimed_by_heartbeat_and_goes_on_when_it_wakes(shared_data, tmp_path):
    """SIGSTOP of the spawned worker while it runs a trial: its process lives (as on a machine that
    hangs), so its trial is failed only once its heartbeat is older than the grace period (4 s), and
    the other worker runs its candidate again. Woken (SIGCONT), the worker finds its trial failed and
    goes on; the study completes its budget and finalizes."""
    trials, db = 12, tmp_path / "study.db"
    env = {**os.environ, "NN2HW_HEARTBEAT_S": "1"}  # grace period 4 s
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, f"sqlite:///{db}", str(tmp_path / "run"),
                             str(SPEC_MS), str(trials), WORKER_IMAGES], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    victim, stopped_at = None, 0.0
    deadline = time.time() + 240
    try:
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
            except KeyError:  # not created yet
                continue
            if victim is None:
                victim = next((t for t in study.get_trials(states=(TrialState.RUNNING,))
                               if str(t.user_attrs.get("owner", "")).endswith(":w1") and t.params), None)
                if victim is not None:
                    os.kill(int(victim.user_attrs["owner"].split(":")[1]), signal.SIGSTOP)
                    stopped_at = time.time()
            elif study.trials[victim.number].state is TrialState.FAIL:
                break
    finally:
        if victim is not None:
            os.kill(int(victim.user_attrs["owner"].split(":")[1]), signal.SIGCONT)
    assert victim is not None, "the spawned worker never ran a trial"
    code, err = finished(proc)
    assert code == 0 and "Traceback" not in err, err
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    failed = study.trials[victim.number]
    assert failed.state is TrialState.FAIL
    # Failed by heartbeat, not at once as a gone process would be: its last beat may precede the stop
    # by up to one interval (1 s) and SQLite's clock counts whole seconds, so 4 - 2 s at the earliest.
    assert 4 - 2 <= failed.datetime_complete.timestamp() - stopped_at < 4 + 5
    rerun = next(t for t in study.trials if t.user_attrs.get("rerun_of") == victim.number)
    assert rerun.state is TrialState.COMPLETE and failed.params.items() <= rerun.params.items()
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) >= trials
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert (tmp_path / "run" / "report.json").exists()
