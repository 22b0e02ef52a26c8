"""The measurement store: each (network, machine, protocol) is timed once and kept, never overwritten.

An SQLite file (stdlib ``sqlite3``) with one row per key. Rows are added with ``INSERT OR IGNORE``,
so a second writer of the same key (another process timing the same candidate) keeps the first
result; a busy timeout lets concurrent writers queue. A file that is not a readable store is an
error naming it: nothing in it is dropped or replaced. The one way out is ``forget``, which the
user asks for (``nn2hw measurements forget``): a measurement taken while another job ran stays
noisy, and the next run reuses it until it is forgotten and timed again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from nn2hw import __version__
from nn2hw.errors import ConfigError
from nn2hw.measure.machine import Machine
from nn2hw.measure.protocol import Protocol
from nn2hw.measure.records import Measurement
from nn2hw.paths import cache_root

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write before giving up."""

_SCHEMA = """CREATE TABLE IF NOT EXISTS measurements (
    network TEXT NOT NULL, machine TEXT NOT NULL, protocol TEXT NOT NULL,
    measurement TEXT NOT NULL, created_at REAL NOT NULL, nn2hw_version TEXT NOT NULL,
    PRIMARY KEY (network, machine, protocol))"""


@dataclass(frozen=True)
class StoredMeasurement:
    """One row of the store: its key (network key, machine fingerprint, protocol key), the
    measurement, and when (Unix time, s) and by which nn2hw version it was stored."""

    network: str
    machine: str
    protocol: str
    measurement: Measurement
    created_at_s: float
    nn2hw_version: str

    @property
    def relative_iqr(self) -> float:
        """IQR / median: the noise a spec check on this measurement must beat."""
        m = self.measurement
        return m.iqr_ms / m.median_ms if m.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, object]:
        return {"network": self.network, "machine": self.machine, "protocol": self.protocol,
                "created_at_s": self.created_at_s, "nn2hw_version": self.nn2hw_version,
                "relative_iqr": self.relative_iqr, "measurement": self.measurement.to_dict()}


class MeasurementStore:
    """Measurements keyed by network key, machine fingerprint and protocol key, in an SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def get(self, network: str, machine: Machine, protocol: Protocol) -> Measurement | None:
        """The stored measurement of ``network`` on ``machine`` under ``protocol``, or None."""
        with self._connect() as db:
            row = db.execute("SELECT measurement FROM measurements WHERE network=? AND machine=? AND protocol=?",
                             (network, machine.fingerprint(), protocol.key())).fetchone()
        if row is None:
            return None
        try:
            return Measurement.from_dict(json.loads(row[0]))
        except (ValueError, ConfigError) as exc:
            raise self._unreadable(f"its row for network {network[:12]} is malformed ({exc})") from None

    def put(self, measurement: Measurement, protocol: Protocol) -> None:
        """Keep ``measurement`` unless its key is already stored (the first result stays)."""
        machine = Machine.from_dict(measurement.machine).fingerprint()
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO measurements VALUES (?, ?, ?, ?, ?, ?)",
                       (measurement.network, machine, protocol.key(), json.dumps(measurement.to_dict()),
                        time.time(), __version__))

    def entries(self) -> list[StoredMeasurement]:
        """Every stored measurement, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT network, machine, protocol, measurement, created_at, nn2hw_version "
                              "FROM measurements ORDER BY created_at").fetchall()
        try:
            return [StoredMeasurement(network, machine, protocol, Measurement.from_dict(json.loads(text)),
                                      float(created), str(version))
                    for network, machine, protocol, text, created, version in rows]
        except (ValueError, ConfigError) as exc:
            raise self._unreadable(f"a row is malformed ({exc})") from None

    def forget(self, chosen: Callable[[StoredMeasurement], bool]) -> list[StoredMeasurement]:
        """Delete the measurements ``chosen`` selects (the next run times those networks again);
        returns what was deleted."""
        gone = [entry for entry in self.entries() if chosen(entry)]
        with self._connect() as db:
            db.executemany("DELETE FROM measurements WHERE network=? AND machine=? AND protocol=?",
                           [(e.network, e.machine, e.protocol) for e in gone])
        return gone

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success; a damaged file becomes a ConfigError naming it."""
        try:
            with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)) as db, db:
                yield db
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ConfigError(f"The measurement store {self.path} stayed locked for {BUSY_TIMEOUT_S:g} s.",
                                  "Wait for the other process writing it, or give this run its own store.") from None
            raise self._unreadable(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(str(exc)) from None

    def _unreadable(self, why: str) -> ConfigError:
        return ConfigError(f"The measurement store {self.path} cannot be read: {why}.",
                           f"Move {self.path} away (keep it if its measurements matter) and run again: "
                           "a new store is created and the networks are timed again.")


def default_store() -> MeasurementStore:
    """The store under the cache root (``NN2HW_CACHE``): ``measurements.sqlite``."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return MeasurementStore(root / "measurements.sqlite")
