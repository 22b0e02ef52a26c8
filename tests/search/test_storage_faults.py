"""Storage faults explained (issue 14): the README's bare PostgreSQL URL, missing drivers named,
damaged / non-SQLite / read-only study files, a full disk (injected), a resume under other
settings, readable identity differences, and Optuna's own messages kept out of sight."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from nn2hw.errors import StudyError
from nn2hw.search.study import (
    faults_explained,
    is_disk_full,
    open_storage,
    open_study,
    storage_url_for,
    with_installed_driver,
)
from tests.search.postgres import postgres_server

IDENTITY = {"model": "resnet20", "spec": {"latency_ms": 1.0},
            "finetune": json.dumps({"batches": 20, "lr": 0.003}, sort_keys=True)}


def _sampler():
    return optuna.samplers.RandomSampler(seed=0)


def _one_trial(url: str) -> None:
    """Open the study at ``url`` and record one trial, explaining faults as a search does."""
    with faults_explained(url), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")  # we ask/tell, as the search does
        study = open_study(open_storage(url), "s", IDENTITY, _sampler(), ["maximize"], "join")
        trial = study.ask()
        trial.set_user_attr("x", 1)
        study.tell(trial, 1.0)


def _hide(monkeypatch, *modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails


def test_a_bare_postgresql_url_takes_the_installed_driver(monkeypatch):
    pytest.importorskip("psycopg")
    url = "postgresql://me:pw@127.0.0.1:5/db"
    assert with_installed_driver(url) == "postgresql+psycopg://me:pw@127.0.0.1:5/db"
    _hide(monkeypatch, "psycopg")
    assert with_installed_driver(url).startswith("postgresql+psycopg2://me:pw@")
    _hide(monkeypatch, "psycopg2")
    assert with_installed_driver(url) == url
    with pytest.raises(StudyError) as info:
        open_storage(url)
    text = str(info.value)
    assert 'pip install "nn2hw[postgres]"' in text and "pw" not in text and "appropriate" not in text
    assert with_installed_driver("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"  # explicit stays


def test_a_missing_driver_of_any_dialect_is_named_not_optunas_message(monkeypatch):
    _hide(monkeypatch, "MySQLdb")
    with pytest.raises(StudyError) as info:
        open_storage("mysql://u:secret@127.0.0.1:1/x")
    text = str(info.value)
    assert "mysqldb" in text and "not installed" in text and "appropriate" not in text and "secret" not in text


@pytest.mark.slow
def test_the_readme_postgresql_url_form_runs_a_study():
    with postgres_server() as url:
        assert url.startswith("postgresql://")  # the documented form, no +driver
        _one_trial(url)
        _one_trial(url)
        study = optuna.load_study(study_name="s", storage=url)
        assert [t.value for t in study.trials] == [1.0, 1.0]


def test_a_file_that_is_not_sqlite_is_named_with_the_fix(tmp_path):
    path = tmp_path / "study.db"
    path.write_text("these are notes, not a database\n" * 50)
    with pytest.raises(StudyError) as info:
        _one_trial(storage_url_for(str(path)))
    error = info.value
    assert str(path) in error.cause and "not an SQLite database" in error.cause
    assert f"mv {path} {path}.bad" in error.fix and "server" not in str(error) and "credentials" not in str(error)


def test_a_damaged_study_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "study.db"
    _one_trial(storage_url_for(str(path)))
    data = bytearray(path.read_bytes())
    for i in range(100, len(data), 7):  # keep the header, scramble the pages
        data[i] = 0xAB
    path.write_bytes(bytes(data))
    with pytest.raises(StudyError) as info:
        _one_trial(storage_url_for(str(path)))
    error = info.value
    assert "damaged" in error.cause and str(path) in error.cause
    assert "Move it aside" in error.fix and "--resume" in error.fix and "credentials" not in str(error)


@pytest.mark.parametrize("how", ["chmod", "read-only open"])
def test_a_read_only_study_file_says_chmod_or_copy(tmp_path, how):
    path = tmp_path / "study.db"
    _one_trial(storage_url_for(str(path)))
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes read-only files; the 'read-only open' case covers the message")
        os.chmod(path, 0o444)
        os.chmod(tmp_path, 0o555)
        url = storage_url_for(str(path))
    else:
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    try:
        with pytest.raises(StudyError) as info:
            _one_trial(url)
    finally:
        os.chmod(tmp_path, 0o755)
    error = info.value
    assert "read-only" in error.cause and str(path) in error.cause
    assert "chmod" in error.fix and "COPY.db --resume" in error.fix


def _full(exc_type: type[BaseException] = optuna.exceptions.StorageInternalError) -> BaseException:
    """What Optuna raises when SQLite finds the disk full during a commit."""
    try:
        try:
            raise sa.exc.OperationalError("INSERT INTO trial_user_attributes ...", {},
                                          sqlite3.OperationalError("database or disk is full"))
        except sa.exc.OperationalError as inner:
            raise exc_type("An exception is raised during the commit.") from inner
    except exc_type as outer:
        return outer


def test_full_disk_errors_are_recognized():
    assert is_disk_full(_full())
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device", "x.csv"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied", "x.csv"))
    with pytest.raises(StudyError) as info, faults_explained("sqlite:///runs/x/study.db"):
        raise _full()
    assert "disk is full" in info.value.cause and "completed trial is safe" in info.value.cause
    assert "--resume" in info.value.fix
    with pytest.raises(ValueError), faults_explained("sqlite:///x.db"):  # anything else passes unchanged
        raise ValueError("not a storage fault")


def test_a_resume_under_other_settings_names_the_study_there_and_each_difference(tmp_path):
    storage = open_storage(storage_url_for(str(tmp_path / "s.db")))
    open_study(storage, "resnet20-lat1", IDENTITY, _sampler(), ["maximize"], "new")
    other = {**IDENTITY, "spec": {"latency_ms": 0.5}, "finetune": json.dumps({"batches": 30, "lr": 0.003})}
    with pytest.raises(StudyError) as info:
        open_study(storage, "resnet20-lat0.5", other, _sampler(), ["maximize"], "resume")
    error = info.value
    assert "no study named 'resnet20-lat0.5'" in error.cause and "'resnet20-lat1'" in error.cause
    assert "finetune: batches 20 -> 30" in error.cause and "spec: latency_ms 1.0 -> 0.5" in error.cause
    assert '{"' not in error.cause  # no JSON blobs
    assert "--study" in error.fix
    with pytest.raises(StudyError, match="finetune: batches 20 -> 30;"):
        open_study(storage, "resnet20-lat1", other, _sampler(), ["maximize"], "resume")


FAULTY_RUN = textwrap.dedent("""
    import sqlite3, sys
    import optuna, sqlalchemy as sa
    from nn2hw.cli import main
    calls = [0]
    original = optuna.storages.RDBStorage.set_trial_user_attr

    def full(storage, trial_id, key, value):
        calls[0] += key == "feasible"
        if calls[0] == 3:  # the third trial, after it named its owner
            cause = sa.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from cause
        return original(storage, trial_id, key, value)

    optuna.storages.RDBStorage.set_trial_user_attr = full
    sys.exit(main(sys.argv[1:]))
""")


def _args(out: Path, spec: float, *extra: str) -> list[str]:
    return ["search", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial", "--select-on-test",
            "--finetune-batches", "0", "--final-batches", "0", "--search-images", "64", "--latency-ms", str(spec),
            "--strategy", "random", "--trials", "6", "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def spec_ms(shared_data, tmp_path_factory):
    from nn2hw.search import SearchSettings, Spec
    from nn2hw.search.context import prepare

    ctx = prepare(SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", spec=Spec(latency_ms=1.0),
                                 out=str(tmp_path_factory.mktemp("b"))), evaluator=lambda m: {"top1": 0.0})
    return 0.5 * (ctx.base_cost.latency_ms + ctx.bound_cost.latency_ms)


def _complete(db: Path) -> dict[int, dict]:
    storage = f"sqlite:///{db}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    return {t.number: t.params for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE}


@pytest.mark.data
@pytest.mark.slow  # three short searches, one in a subprocess (about 30 s)
def test_a_full_disk_is_one_paragraph_and_the_search_resumes(tmp_path, spec_ms, capsys, monkeypatch):
    from nn2hw.cli import main

    out = tmp_path / "run"
    # the study's database fills up during a trial (in a process of its own: it leaves that trial RUNNING)
    failed = subprocess.run([sys.executable, "-c", FAULTY_RUN, *_args(out, spec_ms)], capture_output=True,
                            text=True, timeout=300, env=os.environ.copy())
    assert failed.returncode == 2, failed.stderr
    assert "disk is full" in failed.stderr and "completed trial is safe" in failed.stderr
    assert "--resume" in failed.stderr and "Traceback" not in failed.stderr
    assert "finished with value" not in failed.stderr  # Optuna's own log lines stay out of the display
    before = _complete(out / "study.db")
    assert before
    # the search completes on resume; writing the bundle finds the disk full
    with monkeypatch.context() as patch:
        patch.setattr("nn2hw.search.finalize.save_bundle", _no_space)
        assert main(_args(out, spec_ms, "--resume")) == 2
    err = capsys.readouterr().err
    assert "disk is full: writing" in err and "weights.pt" in err and "Traceback" not in err
    assert main(_args(out, spec_ms, "--resume")) == 0, capsys.readouterr().err
    after = _complete(out / "study.db")
    assert all(after[n] == p for n, p in before.items()) and len(after) == 6
    assert (out / "bundle.json").exists()


def _no_space(folder, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", f"{folder}/weights.pt")


def test_a_bundle_that_fails_on_a_full_disk_is_reported_as_a_full_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    from types import SimpleNamespace

    from nn2hw.search import finalize

    def torch_save_fails(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(finalize, "save_bundle", torch_save_fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 << 30, 100 << 30, 0))
    with pytest.raises(StudyError, match="disk is full: writing .*weights.pt"), faults_explained("sqlite:///x.db"):
        finalize.bundle_saved(tmp_path, None, SimpleNamespace(hardware=None))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 << 30, 50 << 30, 50 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos"), faults_explained("sqlite:///x.db"):
        finalize.bundle_saved(tmp_path, None, SimpleNamespace(hardware=None))  # room left: another failure
