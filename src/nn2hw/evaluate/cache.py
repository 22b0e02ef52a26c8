"""A SQLite accuracy cache, so that no candidate is fine-tuned and tested twice.

Rows are keyed by (plan key, model, dataset, split, settings); the value is the metrics mapping
(JSON) plus when and with which versions it was measured. Several processes can share one file:
WAL journal, a busy timeout, one short connection per operation and ``BEGIN IMMEDIATE``
transactions. A result is written only after the evaluation returned finite metrics, and an
existing row is never replaced unless asked, so a failed or concurrent run cannot overwrite it.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from nn2hw import __version__
from nn2hw.errors import ConfigError
from nn2hw.evaluate.loops import FinetuneSettings

SCHEMA = """
CREATE TABLE IF NOT EXISTS accuracy (
    plan_key TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    settings TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created_unix_s REAL NOT NULL,
    versions TEXT NOT NULL,
    PRIMARY KEY (plan_key, model, dataset, split, settings)
)
"""


@dataclass(frozen=True)
class CacheKey:
    """Identifies one measurement: which plan on which base model, data split and fine-tune settings."""

    plan_key: str
    dataset: str
    split: str
    settings: str
    model: str = ""

    def __post_init__(self) -> None:
        if not self.plan_key:
            raise ConfigError("The cache key has an empty plan key.", "Pass plan.key (or a stable string).")

    def row(self) -> tuple[str, str, str, str, str]:
        return (self.plan_key, self.model, self.dataset, self.split, self.settings)


def make_key(plan_key: str, dataset: str, split: str, settings: FinetuneSettings | str, model: str = "") -> CacheKey:
    """A ``CacheKey``; ``settings`` may be a ``FinetuneSettings`` (its canonical JSON is used)."""
    text = settings.key if isinstance(settings, FinetuneSettings) else str(settings)
    return CacheKey(plan_key, dataset, split, text, model)


class AccuracyCache:
    """Metrics per (plan, model, dataset, split, settings) in a SQLite file shared by processes."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"Cannot create the folder of the accuracy cache {self.path}: {exc.strerror}.",
                              "Pick a writable path.") from None
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)) as conn:
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
                yield conn
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a usable nn2hw accuracy cache ({exc}).",
                              "Point to another file, or delete it to start an empty cache.") from None

    def get(self, key: CacheKey) -> dict[str, float] | None:
        """The cached metrics for ``key``, or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT metrics FROM accuracy WHERE plan_key=? AND model=? AND dataset=? AND split=? "
                               "AND settings=?", key.row()).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: CacheKey, metrics: Mapping[str, float], replace: bool = False) -> bool:
        """Store ``metrics`` (finite numbers) for ``key`` in one transaction; True when written.

        An existing row is kept (and False returned) unless ``replace`` is True.
        """
        values = checked_metrics(metrics)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        versions = json.dumps({"nn2hw": __version__, "torch": torch.__version__}, sort_keys=True)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(f"{verb} INTO accuracy VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                      (*key.row(), json.dumps(values, sort_keys=True), time.time(), versions))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return cursor.rowcount == 1

    def get_or_compute(self, key: CacheKey,
                       compute: Callable[[], Mapping[str, float]]) -> tuple[dict[str, float], bool]:
        """(metrics, was_cached): the cached metrics, or ``compute()``'s result stored then returned.

        Nothing is written when ``compute`` raises. When another process stored the same key while
        this one computed, the stored row wins and is returned.
        """
        cached = self.get(key)
        if cached is not None:
            return cached, True
        values = checked_metrics(compute())
        if not self.put(key, values):
            return self.get(key) or values, True
        return values, False

    def __len__(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM accuracy").fetchone()[0])

    def keys(self) -> list[CacheKey]:
        """Every stored key, oldest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT plan_key, dataset, split, settings, model FROM accuracy "
                                "ORDER BY created_unix_s").fetchall()
        return [CacheKey(*row) for row in rows]


def checked_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` as a plain dict of finite floats; a ``ConfigError`` naming the bad entry otherwise.

    This is the contract of a pluggable evaluator's result (see ``nn2hw.evaluate.Evaluator``).
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise ConfigError(f"An evaluator returned {type(metrics).__name__} {metrics!r}, not a non-empty mapping "
                          "of metric names to numbers.", "Return e.g. {'top1': 91.2, 'top5': 99.1}.")
    values: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Metric name {name!r} is not a non-empty string.", "Name every metric, e.g. 'top1'.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Metric {name!r} is {value!r}, not a number.", "Return numbers only.") from None
        if not math.isfinite(number):
            raise ConfigError(f"Metric {name!r} is {number}, not a finite number; the run failed.",
                              "Fix the evaluation (e.g. lower the learning rate); nothing was cached.")
        values[name] = number
    return values
