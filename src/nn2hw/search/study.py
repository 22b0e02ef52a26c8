"""Persistent, resumable, multi-worker studies on an Optuna RDB storage.

A study lives in any SQLAlchemy URL (a SQLite file in the run folder by default, PostgreSQL for
workers on several machines). It records who it is (model, dataset, hardware, specs, strategy,
space): resuming with different settings is refused with the differences named.

Every running trial beats (``heartbeat``). The trial of a worker that is gone is failed and its
candidate queued to run again first, at its slot (``reclaim``), on every start and, by live
workers, between trials: at once when its owner process on this host no longer exists (SIGKILL,
a crash), after the grace period without a beat otherwise (another machine died or hangs). A
resumed study therefore repeats none of the completed trials, loses none, and continues exactly
as the uninterrupted one would (``nn2hw.search.strategies.sampler``).
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from nn2hw._liveness import every, owner_dead
from nn2hw.errors import ConfigError, StudyError
from nn2hw.evaluate.store import sqlite_pragmas
from nn2hw.search.strategies.sampler import ERROR, requeue

IDENTITY_ATTR = "nn2hw_identity"
HEARTBEAT_S = 10
GRACE_BEATS = 4
GRACE_S = GRACE_BEATS * HEARTBEAT_S
HEARTBEAT_ENV = "NN2HW_HEARTBEAT_S"
"""Environment variable: seconds between the heartbeats of a running trial (whole, >= 1; default
``HEARTBEAT_S``); a trial without a beat for ``GRACE_BEATS`` of them is stale. Tests set 1."""
_CREATE_ATTEMPTS = 5


def storage_url_for(path: str) -> str:
    """'runs/x/study.db' -> 'sqlite:///runs/x/study.db'; URLs pass through."""
    return path if "://" in path else f"sqlite:///{path}"


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S) -> RDBStorage:
    """An RDB storage with heartbeats; an unreachable, malformed, damaged or read-only storage, or
    one whose database driver is missing, is a ``StudyError`` naming the fix."""
    url = with_installed_driver(url)
    _check_driver(url)
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
                raise storage_fault(url, exc) or _unreachable(url, exc) from None
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # SQLAlchemy raises many kinds: bad URL, refused connection, auth...
            raise storage_fault(url, exc) or _unreachable(url, exc) from None
    raise AssertionError("unreachable")


POSTGRES_DRIVERS = ("psycopg", "psycopg2")
"""The PostgreSQL drivers a bare postgresql:// URL is served by, the first installed one taken
(``pip install "nn2hw[postgres]"`` installs both: psycopg 3 is SQLAlchemy 2.1's choice for a bare
URL, psycopg2 serves postgresql+psycopg2:// URLs)."""


def with_installed_driver(url: str) -> str:
    """A bare postgresql:// URL made explicit with the first installed driver of ``POSTGRES_DRIVERS``
    (SQLAlchemy's own pick depends on its version: psycopg2 up to 2.0, psycopg 3 from 2.1); any
    other URL, or a bare one when no driver is installed, is returned as given."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url  # malformed: reported when the storage is opened
    if parsed.drivername != "postgresql":
        return url
    for driver in POSTGRES_DRIVERS:
        try:
            importlib.import_module(driver)
        except ImportError:
            continue
        return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
    return url


def _check_driver(url: str) -> None:
    """A URL whose database driver is missing: name the driver and how to install it (Optuna
    reports only a generic import failure)."""
    try:
        parsed = sa.engine.make_url(url)
        driver = parsed.get_driver_name()
        dialect = parsed.get_dialect()
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError):
        return  # malformed or unknown: reported when the storage is opened
    try:
        dialect.import_dbapi()
    except ImportError:
        postgres = parsed.get_backend_name() == "postgresql"
        kind = "PostgreSQL" if postgres else parsed.get_backend_name()
        raise StudyError(
            f"The storage URL {_redact(url)} is a {kind} database, but its driver {driver} is not installed.",
            ('Install the PostgreSQL drivers with pip install "nn2hw[postgres]"' if postgres else
             f"Install the Python package of the {driver} driver, or name an installed one in the URL "
             "(dialect+driver://...)") + "; or use a local file with --storage sqlite:///study.db.") from None


def _unreachable(url: str, exc: BaseException) -> StudyError:
    return StudyError(
        f"Cannot open the study storage {_redact(url)}: {type(exc).__name__}: {_first_line(exc)}.",
        "Check the URL (dialect://user:password@host:port/database), that the server is running and "
        "reachable, and the credentials; or use a local file with --storage sqlite:///study.db.",
    )


DISK_FULL = ("database or disk is full", "no space left on device", "disk full", "could not extend file")
"""What SQLite, PostgreSQL and the OS say when a disk is full (lower case)."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the driver errors SQLAlchemy wraps (``orig``)."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is seen for seen in found):
            continue
        found.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return found


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a full disk or an exhausted quota."""
    chain = _chain(exc)
    return (any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in chain)
            or any(marker in str(e).lower() for e in chain for marker in DISK_FULL))


def _sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL ('sqlite:///x.db', 'sqlite:///file:x.db?mode=ro&uri=true'), else None."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database.removeprefix("file:"))


def storage_fault(url: str, exc: BaseException) -> StudyError | None:
    """What a database or disk fault means, as a ``StudyError`` naming the file and the fix: a full
    disk, an SQLite file that is not a database, is damaged or read-only, or whose folder cannot be
    opened; None for any other error."""
    if is_disk_full(exc):
        written = next((e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename), None)
        return StudyError(
            f"The disk is full: {f'writing {written}' if written else f'the study storage {_redact(url)}'} "
            "failed. Every completed trial is safe in the study (the running one is run again on resume).",
            "Free space on that disk (or move --out / --storage to a disk with room), then run the same command "
            "with --resume: it continues the search, or only finalizes it when the budget is spent.")
    path = _sqlite_file(url)
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if path is None or not isinstance(exc, (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)):
        return None
    aside = f"mv {path} {path}.bad"
    if "file is not a database" in text:
        return StudyError(f"{path} is not an SQLite database (it holds something else), so it cannot hold the study.",
                          f"Move it aside ({aside}) and run again to start a new study, or point --storage (or "
                          "--out) to the study's own database.")
    if "malformed" in text or "corrupt" in text:
        return StudyError(f"{path} is a damaged SQLite database (SQLite: database disk image is malformed).",
                          f"Move it aside ({aside}) and start a new study, or resume from an intact copy of it: "
                          "--storage sqlite:///COPY.db --resume.")
    if "readonly" in text or "read-only" in text:
        return StudyError(f"{path} is read-only: the study cannot record trials in it.",
                          f"Make it and its folder writable (chmod u+w {path} {path.parent}), or resume from a "
                          f"writable copy: cp {path} COPY.db, then --storage sqlite:///COPY.db --resume.")
    if "unable to open database file" in text:
        return StudyError(f"Cannot open the SQLite file {path}: its folder is missing or not writable.",
                          "Create the folder, or give --storage (or --out) a writable location.")
    return None


@contextmanager
def faults_explained(url: str) -> Iterator[None]:
    """Turn a database or disk fault (``storage_fault``: full disk, damaged or read-only SQLite
    file) raised in the block into its ``StudyError``; other errors pass unchanged."""
    try:
        yield
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError) as exc:
        error = storage_fault(url, exc)
        if error is None:
            raise
        raise error from None


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
    """'key: stored -> wanted' for every setting that differs (JSON-normalized); a setting that is
    a record (or its JSON, as the fine-tune's) names its fields that differ: 'finetune: batches 20 -> 30'."""
    diffs = []
    for key in sorted(set(stored) | set(wanted)):
        before, after = _record(stored.get(key)), _record(wanted.get(key))
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            fields = sorted(set(before) | set(after))
            diffs.append(f"{key}: " + ", ".join(f"{f} {_shown(before.get(f))} -> {_shown(after.get(f))}"
                                                 for f in fields if before.get(f) != after.get(f)))
        else:
            diffs.append(f"{key}: {_shown(before)} -> {_shown(after)}")
    return diffs


def _record(value: Any) -> Any:
    """``value`` JSON-normalized; a JSON text of an object is read as the object."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return json.loads(json.dumps(value, sort_keys=True))


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def _other_studies(storage: RDBStorage, identity: Mapping[str, Any]) -> list[str]:
    """"'name' (differs in: ...)" for every study of ``storage`` recorded with an identity."""
    found = []
    for summary in storage.get_all_studies():
        stored = summary.user_attrs.get(IDENTITY_ATTR)
        if isinstance(stored, Mapping):
            diffs = identity_differences(stored, identity)
            found.append(f"{summary.study_name!r} ({'; '.join(diffs) if diffs else 'same settings'})")
    return found


Direction = Literal["minimize", "maximize"]
"""How Optuna reads one objective."""


def open_study(storage: RDBStorage, name: str, identity: Mapping[str, Any], sampler: optuna.samplers.BaseSampler,
               directions: Sequence[Direction], mode: str, metric_names: Sequence[str] = (),
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create (``mode='new'``), resume (``'resume'``) or join (``'join'``: create or resume) a study.

    A new study whose name is taken, or a resumed one whose identity differs, is refused with a
    ``StudyError`` naming the fix (a resume under another name lists the studies there and how
    their settings differ). Stale trials of dead workers are failed so they are re-run.
    ``metric_names`` name the objectives for Optuna's tools (``optuna.load_study``, the dashboard);
    ``pruner`` stops hopeless trials early (``nn2hw.search.pruning``; None: none).
    """
    if mode not in ("new", "resume", "join"):
        raise ValueError(mode)
    exists = study_exists(storage, name)
    if exists and mode == "new":
        raise StudyError(f"A study named {name!r} already exists in this storage.",
                         "Pass --resume to continue it, or choose a new name with --study.")
    if not exists and mode == "resume":
        others = _other_studies(storage, identity)
        if others:
            raise StudyError(
                f"There is no study named {name!r} to resume in this storage; it holds {len(others)} other "
                f"stud{'y' if len(others) == 1 else 'ies'}, with these settings changed (started -> now): "
                f"{', '.join(others)}.",
                "To continue one, give its name with --study and its original settings (the values left of the "
                "arrows); or drop --resume to start a new study under these settings.")
        raise StudyError(f"There is no study named {name!r} to resume in this storage.",
                         "Drop --resume to start it, or check --study and --storage.")
    with warnings.catch_warnings():  # "heartbeat is meant for Study.optimize": we beat in ask/tell ourselves
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    pruner=pruner or optuna.pruners.NopPruner(),  # Optuna's default is a median rule
                                    directions=list(directions), load_if_exists=True)
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if metric_names and study.metric_names != list(metric_names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(metric_names))
    if stored is None:
        study.set_user_attr(IDENTITY_ATTR, json.loads(json.dumps(dict(identity))))
    else:
        diffs = identity_differences(stored, identity)
        if diffs:
            raise StudyError(
                f"Study {name!r} was started with different settings: {'; '.join(diffs)}.",
                "Resume it with its original settings, or start a new study with another --study name.",
            )
    reclaim(study, storage.grace_period or GRACE_S)
    return study


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Keep Optuna's own log lines (new study, every finished trial) out of the block: the search
    shows its own progress, and those lines would break into it. Optuna's errors still show."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.ERROR))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def beat_periods() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds, from ``HEARTBEAT_ENV`` (default 10 and 40)."""
    text = os.environ.get(HEARTBEAT_ENV)
    if text is None:
        return HEARTBEAT_S, GRACE_S
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{HEARTBEAT_ENV}={text!r} is not a whole number of seconds >= 1.",
                          f"Set e.g. {HEARTBEAT_ENV}={HEARTBEAT_S} (the default), or unset it.")
    return int(text), GRACE_BEATS * int(text)


def interrupted(study: optuna.Study, trial_id: int) -> bool:
    """Fail a trial that was interrupted (its worker stopped or is gone) and queue its candidate to
    run again first, at its slot (``requeue``); False when another worker failed it already."""
    try:
        study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    requeue(study, study._storage.get_trial(trial_id))
    return True


def reclaim(study: optuna.Study, grace_s: float) -> int:
    """Fail the running trials of workers that are gone and queue their candidates to run again
    (``interrupted``); returns how many. Gone: the trial's owner process on this host no longer
    exists (a SIGKILL: at once), its heartbeat is older than ``grace_s`` (any host), or it started
    longer than ``grace_s`` ago and never got an owner (a worker killed inside ``ask``).
    Trials of live workers are left alone."""
    storage = study._storage
    heartbeats = isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None
    stale = set(storage._get_stale_trial_ids(study._study_id)) if heartbeats else set()  # type: ignore[attr-defined]
    now = datetime.now()
    gone = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("owner")
        ownerless = owner is None and trial.datetime_start is not None and \
            (now - trial.datetime_start).total_seconds() > grace_s
        if (trial._trial_id in stale or owner_dead(owner) or ownerless) and interrupted(study, trial._trial_id):
            gone += 1
    return gone


def count_trials(study: optuna.Study) -> dict[str, int]:
    """Trials by state, for budgets and progress; ``errored``: failed with an error of their own (a
    diverged fine-tune: a result, never run again), not interrupted; ``pruned``: stopped early
    (``nn2hw.search.pruning``: a result too)."""
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state is TrialState.FAIL]
    return {
        "total": len(trials),
        "complete": sum(t.state is TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state is TrialState.PRUNED for t in trials),
        "running": sum(t.state is TrialState.RUNNING for t in trials),
        "failed": len(failed),
        "errored": sum(ERROR in t.user_attrs for t in failed),
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
