"""Persistent, resumable, multi-worker studies on an Optuna RDB storage.

A study lives in any SQLAlchemy URL (a SQLite file in the run folder by default, PostgreSQL for
workers on several machines). It records who it is (model, dataset, hardware, specs, strategy,
space): resuming with different settings is refused with the differences named. Trials of a
worker that died (SIGKILL, power loss) stop heart-beating and are failed on the next start, so a
resume repeats none of the completed trials and loses none. A trial whose owner process on this
host is gone is failed at once, without waiting for the heartbeat grace period.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from nn2hw._liveness import every, owner_dead
from nn2hw.errors import StudyError
from nn2hw.evaluate.store import sqlite_pragmas

IDENTITY_ATTR = "nn2hw_identity"
HEARTBEAT_S = 10
GRACE_S = 40
_CREATE_ATTEMPTS = 5


def storage_url_for(path: str) -> str:
    """'runs/x/study.db' -> 'sqlite:///runs/x/study.db'; URLs pass through."""
    return path if "://" in path else f"sqlite:///{path}"


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S) -> RDBStorage:
    """An RDB storage with heartbeats; an unreachable or malformed URL, or a PostgreSQL one without
    its driver, is a ``StudyError``."""
    _check_postgres_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are 'experimental' in Optuna; we rely on them knowingly
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
                                     grace_period=grace_s)
            if url.startswith("sqlite"):
                sa.event.listen(storage.engine, "connect", sqlite_pragmas)
                storage.engine.dispose()  # reconnect: every connection from now on gets the pragmas
            return storage
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
            # Workers starting together on a fresh database race to create Optuna's tables
            # (SQLite reports it as an OperationalError "... already exists").
            creation_race = not isinstance(exc, sa.exc.OperationalError) or "already exists" in str(exc)
            if not creation_race or attempt + 1 == _CREATE_ATTEMPTS:
                raise _unreachable(url, exc) from None
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # SQLAlchemy raises many kinds: bad URL, refused connection, auth...
            raise _unreachable(url, exc) from None
    raise AssertionError("unreachable")


def _check_postgres_driver(url: str) -> None:
    """A PostgreSQL URL whose driver is missing: name it and the extra that installs psycopg2 (Optuna
    reports only a generic import failure). SQLAlchemy picks the driver of a bare postgresql:// URL
    (psycopg2 up to 2.0, psycopg 3 from 2.1), so the fix names the URL form that psycopg2 serves."""
    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() != "postgresql":
            return
        driver = parsed.get_driver_name()
        dialect = parsed.get_dialect()
    except sa.exc.ArgumentError:
        return  # malformed or unknown: reported when the storage is opened
    try:
        dialect.import_dbapi()
    except ImportError:
        psycopg2 = 'Install psycopg2 with pip install "nn2hw[postgres]"'
        bare = "+" not in parsed.drivername
        raise StudyError(
            f"The storage URL {_redact(url)} is a PostgreSQL database, but its driver {driver} is not installed"
            + (f" (SQLAlchemy {sa.__version__} reads a bare postgresql:// URL with {driver})." if bare else "."),
            (f"{psycopg2}." if driver == "psycopg2" else
             f"{psycopg2} and write the URL as postgresql+psycopg2://..., or install {driver}.")
            + " Or use a local file with --storage sqlite:///study.db.") from None


def _unreachable(url: str, exc: BaseException) -> StudyError:
    return StudyError(
        f"Cannot open the study storage {_redact(url)}: {type(exc).__name__}: {_first_line(exc)}.",
        "Check the URL (dialect://user:password@host:port/database), that the server is running and "
        "reachable, and the credentials; or use a local file with --storage sqlite:///study.db.",
    )


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def study_exists(storage: RDBStorage, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def identity_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """'key: stored -> wanted' for every setting that differs (JSON-normalized)."""
    norm = lambda v: json.loads(json.dumps(v, sort_keys=True))  # noqa: E731
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in keys if norm(stored.get(k)) != norm(wanted.get(k))]


Direction = Literal["minimize", "maximize"]
"""How Optuna reads one objective."""


def open_study(storage: RDBStorage, name: str, identity: Mapping[str, Any], sampler: optuna.samplers.BaseSampler,
               directions: Sequence[Direction], mode: str) -> optuna.Study:
    """Create (``mode='new'``), resume (``'resume'``) or join (``'join'``: create or resume) a study.

    A new study whose name is taken, or a resumed one whose identity differs, is refused with a
    ``StudyError`` naming the fix. Stale trials of dead workers are failed so they are re-run.
    """
    if mode not in ("new", "resume", "join"):
        raise ValueError(mode)
    exists = study_exists(storage, name)
    if exists and mode == "new":
        raise StudyError(f"A study named {name!r} already exists in this storage.",
                         "Pass --resume to continue it, or choose a new name with --study.")
    if not exists and mode == "resume":
        raise StudyError(f"There is no study named {name!r} to resume in this storage.",
                         "Drop --resume to start it, or check --study and --storage.")
    with warnings.catch_warnings():  # "heartbeat is meant for Study.optimize": we beat in ask/tell ourselves
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    directions=list(directions), load_if_exists=True)
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if stored is None:
        study.set_user_attr(IDENTITY_ATTR, json.loads(json.dumps(dict(identity))))
    else:
        diffs = identity_differences(stored, identity)
        if diffs:
            raise StudyError(
                f"Study {name!r} was started with different settings: {'; '.join(diffs)}.",
                "Resume it with its original settings, or start a new study with another --study name.",
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    fail_orphaned_trials(study)
    return study


def fail_orphaned_trials(study: optuna.Study) -> int:
    """Fail running trials whose owner process on this host is gone (a SIGKILLed run), at once;
    returns how many. Trials of live or remote workers are left alone."""
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_dead(trial.user_attrs.get("owner")):
            try:
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                failed += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another process failed it first
    return failed


def count_trials(study: optuna.Study) -> dict[str, int]:
    """Trials by state, for budgets and progress."""
    trials = study.get_trials(deepcopy=False)
    return {
        "total": len(trials),
        "complete": sum(t.state is TrialState.COMPLETE for t in trials),
        "running": sum(t.state is TrialState.RUNNING for t in trials),
        "failed": sum(t.state is TrialState.FAIL for t in trials),
    }


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat while the block runs (ask/tell gets none from Optuna itself),
    so that a worker that dies leaves a trial the next start recognizes as stale."""
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or (interval := storage.get_heartbeat_interval()) is None:
        yield
        return
    with every(interval, lambda: storage.record_heartbeat(trial._trial_id), first=True):
        yield
