"""Accuracy results shared by every worker of a study storage: one worker trains each candidate.

A table ``nn2hw_evaluations`` in the study's own database maps an evaluation key (plan key +
dataset + fine-tune settings + seed) to its metrics. Claiming a key is an atomic insert, so
when two workers propose the same candidate one trains it and the other waits for the result.
A claimant refreshes its claim while it trains; a claim that stops being refreshed, or whose
owner process on this host is gone, is taken over. A failed evaluation releases its claim and writes no result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from nn2hw.errors import StudyError
from nn2hw.search.study import every, owner_dead

_META = sa.MetaData()
EVALUATIONS = sa.Table(
    "nn2hw_evaluations",
    _META,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # 'running' | 'done'
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),  # unix time of the claimant's last refresh
    sa.Column("metrics", sa.Text, nullable=True),  # JSON
)


@dataclass(frozen=True)
class Evaluated:
    """Metrics of a key and whether this worker computed them (False: reused from the store)."""

    metrics: Mapping[str, float]
    computed: bool


class EvaluationStore:
    """The shared results table on an SQLAlchemy engine (the study storage's)."""

    def __init__(self, engine: sa.engine.Engine, owner: str, stale_after_s: float = 60.0,
                 refresh_s: float = 10.0, poll_s: float = 1.0) -> None:
        self.engine, self.owner = engine, owner
        self.stale_after_s, self.refresh_s, self.poll_s = stale_after_s, refresh_s, poll_s
        try:
            _META.create_all(engine, checkfirst=True)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if not sa.inspect(engine).has_table(EVALUATIONS.name):  # lost a creation race: fine if it exists
                raise

    def lookup(self, key: str) -> Mapping[str, float] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(EVALUATIONS.c.status, EVALUATIONS.c.metrics)
                               .where(EVALUATIONS.c.key == key)).first()
        return json.loads(row.metrics) if row is not None and row.status == "done" else None

    def _try_claim(self, key: str) -> bool:
        """Insert a running claim, or take over a stale one; True when this worker owns the key."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(EVALUATIONS.insert().values(key=key, status="running", owner=self.owner,
                                                         heartbeat=now, metrics=None))
            return True
        except sa.exc.IntegrityError:
            pass
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(EVALUATIONS.c.owner, EVALUATIONS.c.status, EVALUATIONS.c.heartbeat)
                               .where(EVALUATIONS.c.key == key)).first()
            if row is None or row.status != "running":
                return False
            if row.heartbeat >= now - self.stale_after_s and not owner_dead(row.owner):
                return False
            taken = conn.execute(  # compare-and-set on the owner seen: one taker wins
                EVALUATIONS.update()
                .where(EVALUATIONS.c.key == key, EVALUATIONS.c.status == "running", EVALUATIONS.c.owner == row.owner)
                .values(owner=self.owner, heartbeat=now)
            ).rowcount
        return taken == 1

    def _refresh(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(EVALUATIONS.update().where(EVALUATIONS.c.key == key, EVALUATIONS.c.owner == self.owner)
                         .values(heartbeat=time.time()))

    def _finish(self, key: str, metrics: Mapping[str, float] | None) -> None:
        with self.engine.begin() as conn:
            mine = (EVALUATIONS.c.key == key) & (EVALUATIONS.c.owner == self.owner)
            if metrics is None:
                conn.execute(EVALUATIONS.delete().where(mine & (EVALUATIONS.c.status == "running")))
            else:
                conn.execute(EVALUATIONS.update().where(mine).values(status="done", metrics=json.dumps(dict(metrics)),
                                                                     heartbeat=time.time()))

    def evaluate(self, key: str, compute: Callable[[], Mapping[str, float]],
                 timeout_s: float = 24 * 3600) -> Evaluated:
        """The metrics of ``key``: stored, computed here (claimed), or awaited from another worker."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            stored = self.lookup(key)
            if stored is not None:
                return Evaluated(stored, computed=False)
            if self._try_claim(key):
                try:
                    with every(self.refresh_s, lambda: self._refresh(key)):
                        metrics = compute()
                except BaseException:
                    self._finish(key, None)
                    raise
                self._finish(key, metrics)
                return Evaluated(metrics, computed=True)
            time.sleep(self.poll_s)
        raise StudyError(f"Waited {timeout_s:.0f} s for another worker to evaluate candidate {key[:12]}.",
                         "Check that the other workers are alive, then resume the study.")
