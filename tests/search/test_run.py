"""End-to-end co-search on the shared CIFAR-10 ResNet-20 with a fast evaluator (no training):
specs refused or met up front, the guarantee on random specs, resume after an interrupt or a
SIGKILL, bundle reload, and the CLI's errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from nn2hw.bundle import load_bundle
from nn2hw.cli import main
from nn2hw.compress import apply_plan
from nn2hw.errors import InfeasibleError
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import prepare
from nn2hw.search.study import open_storage

pytestmark = pytest.mark.data
BASE = {"model": "resnet20", "dataset": "cifar10", "split": "test-partial", "select_on_test": True}


@pytest.fixture(scope="module")
def bounds(shared_data, tmp_path_factory):
    ctx = prepare(SearchSettings(**BASE, spec=Spec(latency_ms=1.0), out=str(tmp_path_factory.mktemp("b"))),
                  evaluator=lambda m: {"top1": 0.0})
    return ctx.base_cost.latency_ms, ctx.bound_cost.latency_ms


def run(tmp_path, partial_cifar_scorer, latency, **kw):
    options = {"strategy": "random", "trials": 6, "out": str(tmp_path / "run"), **kw}
    return run_search(SearchSettings(**BASE, spec=Spec(latency_ms=latency), **options), evaluator=partial_cifar_scorer,
                      progress=False, log=lambda _: None)


def test_an_impossible_spec_is_refused_at_once_with_the_bound(tmp_path, partial_cifar_scorer, bounds):
    start = time.perf_counter()
    with pytest.raises(InfeasibleError, match="leanest candidate") as info:
        run(tmp_path, partial_cifar_scorer, bounds[1] * 0.9)
    assert info.value.best_bound == pytest.approx(bounds[1])
    assert time.perf_counter() - start < 60 and not (tmp_path / "run" / "study.db").exists()


def test_a_spec_the_base_meets_returns_the_base_on_its_best_design(tmp_path, partial_cifar_scorer, bounds):
    result = run(tmp_path, partial_cifar_scorer, bounds[0] * 1.5)
    assert "already meets" in result.notes[0]
    assert result.solution.plan.choices == {} and result.solution.cost.latency_ms == pytest.approx(bounds[0])
    assert result.trials["total"] == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["solution"]["latency_ms"] == pytest.approx(bounds[0])


@pytest.mark.slow
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck),
          phases=(Phase.explicit, Phase.reuse, Phase.generate))  # a failing search is slow: report it, do not shrink
@given(fraction=st.floats(0.0, 1.0), strategy=st.sampled_from(["random", "evolution", "tpe"]),
       seed=st.integers(0, 1000))
def test_no_returned_solution_ever_violates_the_spec(tmp_path_factory, partial_cifar_scorer, bounds, fraction, strategy,
                                                     seed):
    base, lean = bounds
    spec = lean + fraction * (base - lean)
    out = tmp_path_factory.mktemp("g")
    try:
        result = run(out, partial_cifar_scorer, spec, strategy=strategy, seed=seed, trials=8)
    except InfeasibleError as exc:
        assert "No candidate" in exc.cause  # nothing feasible found in 8 trials: refused, not returned
        return
    assert result.solution.cost.latency_ms <= spec and result.solution.cost.fits
    plan = result.solution.plan
    ctx = prepare(SearchSettings(**BASE, spec=Spec(latency_ms=spec), out=str(out)), evaluator=partial_cifar_scorer)
    again = ctx.target.recost(apply_plan(plan, ctx.members[0].workload), result.solution.cost.design)
    assert again.latency_ms == pytest.approx(result.solution.cost.latency_ms) and again.latency_ms <= spec


def test_the_bundle_reloads_into_the_same_accuracy(tmp_path, partial_cifar_scorer, bounds):
    result = run(tmp_path, partial_cifar_scorer, 0.5 * (bounds[0] + bounds[1]), strategy="tpe", trials=15)
    model, plan, hardware = load_bundle(tmp_path / "run")
    assert plan.network_key == result.solution.plan.network_key
    assert partial_cifar_scorer(model)["top1"] == result.solution.metrics["top1"]
    assert hardware["design"] == json.loads((tmp_path / "run" / "hardware.json").read_text())["design"]
    for name in ("report.json", "layers.csv", "trials.csv", "pareto.csv", "pareto.png", "summary.html"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(report["spec"]) == {"latency_ms"}
    assert {"latency_ms", "top1"} <= set(report["baseline"]) and {"latency_ms", "top1"} <= set(report["solution"])
    assert report["trials"]["total"] == 15


def _complete(study_db: Path) -> dict[int, dict]:
    """Params of the completed trials ({} while the study is not created yet)."""
    storage = open_storage(f"sqlite:///{study_db}")
    names = [s.study_name for s in storage.get_all_studies()]
    if not names:
        return {}
    study = optuna.load_study(study_name=names[0], storage=storage)
    return {t.number: t.params for t in study.trials if t.state is TrialState.COMPLETE}


def test_an_interrupted_search_resumes_without_losing_or_repeating_trials(tmp_path, partial_cifar_scorer, bounds):
    spec = 0.5 * (bounds[0] + bounds[1])
    trained: list[str] = []

    def interrupting(model):
        if len(trained) == 3:
            raise KeyboardInterrupt
        trained.append("x")
        return partial_cifar_scorer(model)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, interrupting, spec, strategy="evolution", trials=14)
    before = _complete(tmp_path / "run" / "study.db")
    assert before  # completed trials were kept
    result = run(tmp_path, partial_cifar_scorer, spec, strategy="evolution", trials=14, resume=True)
    after = _complete(tmp_path / "run" / "study.db")
    assert all(after[n] == p for n, p in before.items())  # nothing lost, nothing redone
    assert len(after) == 14 and result.trials["failed"] == 1  # the interrupted trial (its candidate ran again)


SLOW_SEARCH = textwrap.dedent("""
    import sys, time
    from nn2hw.search import SearchSettings, Spec, run_search
    def slow(model):
        time.sleep(0.4)
        return {"top1": 50.0, "top5": 90.0}
    run_search(SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", select_on_test=True,
                              strategy="random",
               spec=Spec(latency_ms=float(sys.argv[2])), trials=200, out=sys.argv[1]), evaluator=slow,
               progress=False)
""")


@pytest.mark.slow
def test_a_sigkilled_search_resumes(tmp_path, bounds):
    spec = 0.2 * bounds[1] + 0.8 * bounds[0]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SEARCH, str(out), str(spec)], env=os.environ.copy())
    db = out / "study.db"
    deadline = time.time() + 240
    while time.time() < deadline and (not db.exists() or len(_complete(db)) < 5):
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _complete(db)
    assert len(before) >= 5
    result = run_search(SearchSettings(**BASE, spec=Spec(latency_ms=spec), strategy="random", trials=len(before) + 3,
                                       out=str(out), resume=True),
                        evaluator=lambda m: {"top1": 50.0, "top5": 90.0}, progress=False, log=lambda _: None)
    after = _complete(db)
    assert all(after[n] == p for n, p in before.items())
    assert len(after) == len(before) + 3
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{db}")
    assert not [t for t in study.trials if t.state is TrialState.RUNNING]  # the killed trial was failed at once
    assert result.trials["complete"] == len(after)


def _cli(args, capsys):
    code = main(["search", *BASE_ARGS, *args])
    return code, capsys.readouterr()


BASE_ARGS = ["--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial", "--select-on-test",
             "--finetune-batches", "0",
             "--final-batches", "0", "--search-images", "64", "--quiet"]


def test_cli_errors_exit_2_with_the_fix(tmp_path, capsys, bounds, monkeypatch):
    out = ["--out", str(tmp_path / "o")]
    code, cap = _cli(["--latency-ms", str(bounds[1] / 2), *out], capsys)
    assert code == 2 and "leanest candidate" in cap.err and "Traceback" not in cap.err
    code, cap = _cli(["--latency-ms", "1", "--energy-mj", "1", *out], capsys)
    assert code == 2 and "does not model energy" in cap.err
    code, cap = _cli(["--latency-ms", "1", "--strategy", "reinforc", *out], capsys)
    assert code == 2 and "Did you mean 'reinforce'" in cap.err
    code, cap = _cli(["--latency-ms", "0.4", "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/x", *out], capsys)
    assert code == 2 and "Cannot open the study storage" in cap.err and "pw" not in cap.err
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "psycopg2", None)  # the postgres extra is not installed
        code, cap = _cli(["--latency-ms", "0.4", "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/x", *out],
                         capsys)
    assert code == 2 and 'pip install "nn2hw[postgres]"' in cap.err and "Traceback" not in cap.err
    code, cap = _cli(["--latency-ms", "1", "--trials", "0", *out], capsys)
    assert code == 2 and "--trials" in cap.err
    code, cap = _cli(out, capsys)
    assert code == 2 and "No design spec" in cap.err and "--latency-ms" in cap.err
    with pytest.raises(SystemExit) as exit_info:
        main(["search", *BASE_ARGS, "--latency-ms", "1", "--no-such-option"])
    assert exit_info.value.code == 2


def test_cli_run_then_name_clash_and_changed_spec(tmp_path, capsys, bounds):
    spec = str(0.5 * (bounds[0] + bounds[1]))
    out = ["--out", str(tmp_path / "o"), "--strategy", "random", "--trials", "8"]
    code, cap = _cli(["--latency-ms", spec, *out], capsys)
    assert code == 0, cap.err
    assert "search result" in cap.out and "per layer" in cap.out
    code, cap = _cli(["--latency-ms", spec, *out], capsys)
    assert code == 2 and "already exists" in cap.err and "--resume" in cap.err
    code, cap = _cli(["--latency-ms", str(float(spec) * 0.99), *out, "--study",
                      json.loads((tmp_path / "o" / "report.json").read_text())["settings"]["study"], "--resume"],
                     capsys)
    assert code == 2 and "different settings" in cap.err and "spec" in cap.err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys, bounds):
    code, cap = _cli(["--latency-ms", str(bounds[0] * 0.9), "--split", "test", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "cifar" in cap.err.lower() and "Traceback" not in cap.err


def test_progress_to_a_file_is_one_plain_line_per_completed_trial(tmp_path, partial_cifar_scorer, bounds, capsys):
    spec = Spec(latency_ms=(bounds[0] + bounds[1]) / 2)
    run_search(SearchSettings(**BASE, spec=spec, strategy="random", trials=3, out=str(tmp_path / "run")),
               evaluator=partial_cifar_scorer, progress=True, log=lambda _: None)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("search ")]
    assert [line.split()[1] for line in lines][:3] == ["1/3", "2/3", "3/3"]
    assert all("feasible" in line for line in lines[:3])
    # what a log needs: the trial that finished (its latency, and its score or the missed spec), time, time left
    assert all(re.search(r"\| trial \d+: [\d.e-]+ ms, (top1 [\d.]+%|missed a spec) \|", line) for line in lines[:3])
    assert all(re.search(r"\d:\d\d:\d\d elapsed, ~\d:\d\d:\d\d left$", line) for line in lines[:3])
