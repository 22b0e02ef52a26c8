"""A shared study is finalized once (issue 14): two workers on one SQLite study, one bundle, the
other worker says where it is; the claim-once store behind it; and a study Optuna's own tools
read as a person would (named objectives, each parameter's meaning)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from nn2hw.evaluate.store import EvaluationStore
from nn2hw.search.trial import human_values
from nn2hw.space import Dimension

WORKER = textwrap.dedent("""
    import json, sys, time
    from nn2hw.search import SearchSettings, Spec, run_search
    from nn2hw.evaluate.settings import FinetuneSettings

    def slow(model):
        time.sleep(0.3)
        return {"top1": 50.0, "top5": 90.0}

    out, storage, spec, mode = sys.argv[1:5]
    result = run_search(SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", select_on_test=True,
                                       strategy="random",
                                       spec=Spec(latency_ms=float(spec)), trials=12, out=out, storage=storage,
                                       study="shared", resume=mode == "resume"),
                        evaluator=slow, progress=False, log=lambda _: None)
    print(json.dumps({"kind": type(result).__name__, "out": str(getattr(result, "out_dir", "")),
                      "message": getattr(result, "message", str)()}))
""")


@pytest.fixture(scope="module")
def spec_ms(shared_data, tmp_path_factory):
    from nn2hw.search import SearchSettings, Spec
    from nn2hw.search.context import prepare

    ctx = prepare(SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", spec=Spec(latency_ms=1.0),
                                 out=str(tmp_path_factory.mktemp("b"))), evaluator=lambda m: {"top1": 0.0})
    return 0.5 * (ctx.base_cost.latency_ms + ctx.bound_cost.latency_ms)


def _start(out: Path, storage: str, spec: float, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(out), storage, str(spec), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


@pytest.mark.data
@pytest.mark.slow  # two short searches in parallel processes (about 30 s)
def test_two_workers_of_one_study_finalize_it_once(tmp_path, spec_ms):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = _start(tmp_path / "a", storage, spec_ms, "new")
    deadline = time.time() + 120
    while time.time() < deadline and "shared" not in _studies(storage):
        time.sleep(0.2)
    second = _start(tmp_path / "b", storage, spec_ms, "resume")
    results = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    kinds = sorted(r["kind"] for r in results)
    assert kinds == ["FinalizedElsewhere", "SearchResult"], results
    finalizer = next(r for r in results if r["kind"] == "SearchResult")
    other = next(r for r in results if r["kind"] == "FinalizedElsewhere")
    bundles = [d.name for d in (tmp_path / "a", tmp_path / "b") if (d / "bundle.json").exists()]
    assert bundles == [Path(finalizer["out"]).name]  # one bundle, in the finalizer's folder
    assert not (Path(tmp_path / ("a" if bundles == ["b"] else "b")) / "trials.csv").exists()
    assert str(Path(finalizer["out"]).resolve()) in other["message"] and "finalized" in other["message"]
    study = optuna.load_study(study_name="shared", storage=storage)
    assert sum(t.state is optuna.trial.TrialState.COMPLETE for t in study.trials) >= 12
    assert study.metric_names == ["top1"]
    changed = [(name, t.user_attrs[name]) for t in study.trials for name, index in t.params.items() if index]
    assert changed and all("(base: " in text for _, text in changed)


def _studies(storage: str) -> list[str]:
    try:
        return optuna.get_all_study_names(storage)
    except Exception:  # the file or its tables are being created
        return []


def test_once_computes_a_record_in_one_process_and_names_it_to_the_others(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}", connect_args={"timeout": 30})
    a, b = EvaluationStore(engine, "host:1:a"), EvaluationStore(engine, "host:2:b")
    started, seen = threading.Event(), []

    def slow():
        started.set()
        time.sleep(0.5)
        return {"out_dir": "/runs/x"}

    worker = threading.Thread(target=lambda: seen.append(a.once("k", slow)))
    worker.start()
    started.wait(10)
    running = b.once("k", lambda: pytest.fail("computed twice"))
    assert running.record is None and running.owner == "host:1:a" and not running.computed
    worker.join()
    assert seen[0].computed and seen[0].record == {"out_dir": "/runs/x"}
    done = b.once("k", lambda: pytest.fail("computed twice"))
    assert done.record == {"out_dir": "/runs/x"} and done.owner == "host:1:a" and not done.computed
    with pytest.raises(RuntimeError):
        b.once("failing", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert a.once("failing", lambda: {"ok": 1}).computed  # a failure released its claim


def test_each_parameter_is_stored_with_its_meaning():
    cut = Dimension("channel_cut:layer1.0.conv1", "channel_cut", ("layer1.0.conv1",),
                    (None, {"out_channels": 12}), ("16 ch", "12 ch"), leanest=1)
    pattern = Dimension("kernel_pattern:conv1", "kernel_pattern", ("conv1",),
                        (None, {"patterns": [3, 4, 23, 29], "pattern_zeros": 4}), ("dense", "4 patterns, 5/9 kept"),
                        leanest=1)
    assert human_values([cut, pattern], [1, 1]) == {
        "channel_cut:layer1.0.conv1": "12 ch (base: 16 ch)",
        "kernel_pattern:conv1": "4 patterns, 5/9 kept (base: dense); patterns 3, 4, 23, 29"}
    assert human_values([cut, pattern], [0, 0]) == {"channel_cut:layer1.0.conv1": "16 ch",
                                                    "kernel_pattern:conv1": "dense"}
