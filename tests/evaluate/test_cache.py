"""The SQLite accuracy cache: keys, no overwrite by failed runs, several processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from nn2hw.errors import ConfigError
from nn2hw.evaluate import AccuracyCache, FinetuneSettings, make_key


def _key(plan="p1", **changes):
    fields = {"dataset": "fashion-mnist", "split": "test", "settings": FinetuneSettings(), "model": "resnet20"}
    fields.update(changes)
    return make_key(plan, **fields)


def test_round_trip_and_key_parts(tmp_path):
    cache = AccuracyCache(tmp_path / "acc.sqlite")
    assert cache.get(_key()) is None
    assert cache.put(_key(), {"top1": 91.5, "top5": 99.0})
    assert cache.get(_key()) == {"top1": 91.5, "top5": 99.0}
    for other in (_key("p2"), _key(split="test-partial"), _key(dataset="cifar10"),
                  _key(settings=FinetuneSettings(batches=50)), _key(model="resnet32")):
        assert cache.get(other) is None
    assert len(AccuracyCache(tmp_path / "acc.sqlite")) == 1  # persisted in the file
    assert cache.keys() == [_key()]


def test_wal_mode_and_busy_timeout(tmp_path):
    AccuracyCache(tmp_path / "acc.sqlite")
    with sqlite3.connect(tmp_path / "acc.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_get_or_compute_computes_once(tmp_path):
    cache = AccuracyCache(tmp_path / "acc.sqlite")
    calls = []

    def compute():
        calls.append(1)
        return {"top1": 90.0}

    assert cache.get_or_compute(_key(), compute) == ({"top1": 90.0}, False)
    assert cache.get_or_compute(_key(), compute) == ({"top1": 90.0}, True)
    assert len(calls) == 1


def test_a_failed_run_writes_nothing_and_overwrites_nothing(tmp_path):
    cache = AccuracyCache(tmp_path / "acc.sqlite")

    def crash():
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute(_key(), crash)
    with pytest.raises(ConfigError, match="'top1' is nan"):
        cache.get_or_compute(_key(), lambda: {"top1": float("nan")})
    assert len(cache) == 0
    cache.put(_key(), {"top1": 90.0})
    assert not cache.put(_key(), {"top1": 10.0})  # an existing result is kept
    with pytest.raises(ConfigError, match="not a number"):
        cache.put(_key(), {"top1": "high"})
    assert cache.get(_key()) == {"top1": 90.0}
    assert cache.put(_key(), {"top1": 91.0}, replace=True) and cache.get(_key()) == {"top1": 91.0}


@pytest.mark.parametrize("bad, message", [({}, "non-empty mapping"), ([("top1", 1.0)], "non-empty mapping"),
                                          ({"": 1.0}, "non-empty string"), ({"top1": float("inf")}, "inf")])
def test_metric_contract(tmp_path, bad, message):
    with pytest.raises(ConfigError, match=message):
        AccuracyCache(tmp_path / "acc.sqlite").put(_key(), bad)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "acc.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable nn2hw accuracy cache"):
        AccuracyCache(path)


def _writer(path: str, worker: int, count: int) -> None:
    cache = AccuracyCache(path)
    for i in range(count):
        cache.put(make_key(f"plan{i}", "d", "test", "s", model=f"w{worker}"), {"top1": float(i)})
        cache.get_or_compute(make_key("shared", "d", "test", "s"), lambda: {"top1": float(worker)})


def test_several_processes_share_one_file(tmp_path):
    path = str(tmp_path / "acc.sqlite")
    AccuracyCache(path)
    context = multiprocessing.get_context("fork")  # children touch only SQLite
    workers = [context.Process(target=_writer, args=(path, w, 25)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    cache = AccuracyCache(path)
    assert len(cache) == 3 * 25 + 1
    assert cache.get(make_key("shared", "d", "test", "s"))["top1"] in (0.0, 1.0, 2.0)
