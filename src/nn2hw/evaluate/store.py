"""The accuracy store: each measurement is made once, claimed atomically, and shared by every
process that uses the same database.

A table ``nn2hw_measurements`` maps an evaluation key (``evaluation_key``: the network, its base
model, the data, the evaluator and its settings) to the metrics and the versions that measured
them. The search keeps it in its study's database, so workers on one machine or many never train
a candidate twice; ``nn2hw evaluate`` keeps it in an SQLite file under the cache root
(``local_store``), so no measurement is repeated.

Claiming a key is an atomic insert: when two processes want the same measurement, one computes it
and the other waits for the result. A claimant refreshes its claim while it computes; a claim that
stops being refreshed, or whose owner process on this host is gone, is taken over. A failed
evaluation (an exception, or metrics that are not finite numbers) releases its claim and writes
nothing, and a stored result is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from nn2hw import __version__
from nn2hw._liveness import every, owner_dead, owner_id
from nn2hw.errors import ConfigError, StudyError
from nn2hw.evaluate.evaluator import checked_metrics

_META = sa.MetaData()
MEASUREMENTS = sa.Table(
    "nn2hw_measurements",
    _META,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # 'running' | 'done'
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),  # unix time of the claimant's last refresh (done: when measured)
    sa.Column("metrics", sa.Text, nullable=True),  # JSON
    sa.Column("versions", sa.Text, nullable=True),  # JSON: nn2hw and torch versions that measured it
)


def evaluation_key(plan_key: str, model: str, dataset: str, evaluator: str) -> str:
    """The one key of a measurement (sha256 hex): the network (``plan_key``, its plan's network
    key) on base ``model``, the ``dataset``, and the evaluator with its settings (``evaluator_id``)."""
    return hashlib.sha256(json.dumps([plan_key, model, dataset, evaluator]).encode()).hexdigest()


@dataclass(frozen=True)
class Evaluated:
    """Metrics of a key and whether this process computed them (False: reused from the store)."""

    metrics: Mapping[str, float]
    computed: bool


@dataclass(frozen=True)
class Once:
    """What ``EvaluationStore.once`` found: the record (None while its owner still computes it),
    who computed (or computes) it, and whether this process did."""

    record: Mapping[str, Any] | None
    owner: str
    computed: bool


class EvaluationStore:
    """The measurements table on an SQLAlchemy engine (a study storage's, or ``local_store``'s)."""

    def __init__(self, engine: sa.engine.Engine, owner: str, stale_after_s: float = 60.0,
                 refresh_s: float = 10.0, poll_s: float = 1.0) -> None:
        self.engine, self.owner = engine, owner
        self.stale_after_s, self.refresh_s, self.poll_s = stale_after_s, refresh_s, poll_s
        self.versions = json.dumps({"nn2hw": __version__, "torch": metadata.version("torch")}, sort_keys=True)
        try:
            _META.create_all(engine, checkfirst=True)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if not sa.inspect(engine).has_table(MEASUREMENTS.name):  # lost a creation race: fine if it exists
                raise

    def lookup(self, key: str) -> Mapping[str, float] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(MEASUREMENTS.c.status, MEASUREMENTS.c.metrics)
                               .where(MEASUREMENTS.c.key == key)).first()
        return json.loads(row.metrics) if row is not None and row.status == "done" else None

    def _try_claim(self, key: str) -> bool:
        """Insert a running claim, or take over a stale one; True when this process owns the key."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(MEASUREMENTS.insert().values(key=key, status="running", owner=self.owner,
                                                          heartbeat=now, metrics=None))
            return True
        except sa.exc.IntegrityError:
            pass
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(MEASUREMENTS.c.owner, MEASUREMENTS.c.status, MEASUREMENTS.c.heartbeat)
                               .where(MEASUREMENTS.c.key == key)).first()
            if row is None or row.status != "running":
                return False
            if row.heartbeat >= now - self.stale_after_s and not owner_dead(row.owner):
                return False
            taken = conn.execute(  # compare-and-set on the owner seen: one taker wins
                MEASUREMENTS.update()
                .where(MEASUREMENTS.c.key == key, MEASUREMENTS.c.status == "running",
                       MEASUREMENTS.c.owner == row.owner)
                .values(owner=self.owner, heartbeat=now)
            ).rowcount
        return taken == 1

    def _refresh(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(MEASUREMENTS.update().where(MEASUREMENTS.c.key == key, MEASUREMENTS.c.owner == self.owner)
                         .values(heartbeat=time.time()))

    def _finish(self, key: str, metrics: Mapping[str, Any] | None) -> None:
        with self.engine.begin() as conn:
            mine = (MEASUREMENTS.c.key == key) & (MEASUREMENTS.c.owner == self.owner)
            if metrics is None:
                conn.execute(MEASUREMENTS.delete().where(mine & (MEASUREMENTS.c.status == "running")))
            else:
                conn.execute(MEASUREMENTS.update().where(mine).values(
                    status="done", metrics=json.dumps(dict(metrics), sort_keys=True), heartbeat=time.time(),
                    versions=self.versions))

    def evaluate(self, key: str, compute: Callable[[], Mapping[str, float]],
                 timeout_s: float = 24 * 3600) -> Evaluated:
        """The metrics of ``key``: stored, computed here (claimed), or awaited from another process.

        ``compute`` must return finite numbers by name (the evaluator contract, ``checked_metrics``);
        anything else is a ``ConfigError`` and, like an exception, stores nothing."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            stored = self.lookup(key)
            if stored is not None:
                return Evaluated(stored, computed=False)
            if self._try_claim(key):
                metrics = self._computed(key, lambda: checked_metrics(compute()))
                return Evaluated(metrics, computed=True)
            time.sleep(self.poll_s)
        raise StudyError(f"Waited {timeout_s:.0f} s for another process to evaluate {key[:12]}.",
                         "Check that the other workers are alive, then run again (a stale claim is taken over).")

    def once(self, key: str, compute: Callable[[], Mapping[str, Any]]) -> Once:
        """Compute ``key``'s JSON record here unless another process has computed it or is computing
        it (then say who, without waiting): a job done once per database, e.g. a study's finalize.
        Claimed and refreshed like an evaluation; a failure releases the claim and stores nothing."""
        while True:
            if self._try_claim(key):
                return Once(self._computed(key, compute), self.owner, computed=True)
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(MEASUREMENTS.c.status, MEASUREMENTS.c.owner, MEASUREMENTS.c.metrics)
                                   .where(MEASUREMENTS.c.key == key)).first()
            if row is not None:  # else released between the claim and the look: claim again
                return Once(json.loads(row.metrics) if row.status == "done" else None, row.owner, computed=False)

    def _computed(self, key: str, compute: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        """Run ``compute`` for a key this process has claimed, refreshing the claim; store the result,
        or release the claim when it raises."""
        try:
            with every(self.refresh_s, lambda: self._refresh(key)):
                record = compute()
        except BaseException:
            self._finish(key, None)
            raise
        self._finish(key, record)
        return record


def sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL journal + synchronous=NORMAL: a commit no longer waits for the disk (Optuna writes every
    parameter and attribute in its own transaction), yet a committed row survives a killed
    process; only an OS crash or power loss can drop the last few commits."""
    import sqlite3

    if isinstance(connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def local_store(path: str | Path, busy_timeout_s: float = 60.0) -> EvaluationStore:
    """The store in the SQLite file ``path`` (created with its folder), shared safely by the
    processes of this machine: WAL journal, a busy timeout, atomic claims."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the folder of the accuracy store {path}: {exc.strerror}.",
                          "Pick a writable path (e.g. set NN2HW_CACHE).") from None
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": busy_timeout_s})
    sa.event.listen(engine, "connect", sqlite_pragmas)
    try:
        return EvaluationStore(engine, owner_id("evaluate"))
    except sa.exc.DatabaseError as exc:
        engine.dispose()
        reason = str(exc.orig) if exc.orig is not None else type(exc).__name__
        raise ConfigError(f"{path} is not a usable nn2hw accuracy store ({reason}).",
                          "Point to another file, or delete it to start an empty store.") from None
