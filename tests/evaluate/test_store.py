"""The accuracy store in an SQLite file (``nn2hw evaluate``'s): keys, each measurement made once,
no overwrite by failed or concurrent runs, versions recorded, several processes at once. The
claim-once protocol between workers of one study is tested in tests/search/test_study.py."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from nn2hw import __version__
from nn2hw.errors import ConfigError
from nn2hw.evaluate import FinetuneEvaluator, FinetuneSettings, evaluation_key, evaluator_id, local_store


def _key(plan="p1", model="resnet20", dataset="fashion-mnist", **evaluator):
    """The key of ``plan`` measured by a real evaluator (``evaluator`` are its settings: split,
    settings, max_test_images): its identity is ``evaluator_id``'s, as the search and the CLI key it."""
    return evaluation_key(plan, model, dataset, evaluator_id(FinetuneEvaluator(dataset, **evaluator)))


def test_round_trip_and_key_parts(tmp_path):
    store = local_store(tmp_path / "acc.sqlite")
    assert store.lookup(_key()) is None
    assert store.evaluate(_key(), lambda: {"top1": 91.5, "top5": 99.0}).computed
    assert store.lookup(_key()) == {"top1": 91.5, "top5": 99.0}
    others = [_key("p2"), _key(split="test-partial"), _key(dataset="cifar10"),
              _key(settings=FinetuneSettings(batches=50)), _key(model="resnet32"), _key(max_test_images=1000)]
    assert len(set(others)) == len(others) and _key() not in others
    for other in others:
        assert store.lookup(other) is None
    assert local_store(tmp_path / "acc.sqlite").lookup(_key()) == {"top1": 91.5, "top5": 99.0}  # in the file


def test_wal_mode_and_versions_recorded(tmp_path):
    local_store(tmp_path / "acc.sqlite").evaluate(_key(), lambda: {"top1": 1.0})
    with sqlite3.connect(tmp_path / "acc.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = json.loads(conn.execute("SELECT versions FROM nn2hw_measurements").fetchone()[0])
    assert versions["nn2hw"] == __version__ and versions["torch"]


def test_evaluate_computes_once(tmp_path):
    store = local_store(tmp_path / "acc.sqlite")
    calls = []

    def compute():
        calls.append(1)
        return {"top1": 90.0}

    first, again = store.evaluate(_key(), compute), store.evaluate(_key(), compute)
    assert (first.metrics, first.computed) == ({"top1": 90.0}, True)
    assert (again.metrics, again.computed) == ({"top1": 90.0}, False)
    assert len(calls) == 1


def test_a_failed_run_writes_nothing_and_overwrites_nothing(tmp_path):
    store = local_store(tmp_path / "acc.sqlite")

    def crash():
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError):
        store.evaluate(_key(), crash)
    with pytest.raises(ConfigError, match="'top1' is nan"):
        store.evaluate(_key(), lambda: {"top1": float("nan")})
    assert store.lookup(_key()) is None
    store.evaluate(_key(), lambda: {"top1": 90.0})
    kept = store.evaluate(_key(), lambda: {"top1": 10.0})  # an existing result is kept
    assert (kept.metrics, kept.computed) == ({"top1": 90.0}, False)
    with pytest.raises(ConfigError, match="not a number"):
        store.evaluate(_key("p2"), lambda: {"top1": "high"})
    assert store.lookup(_key()) == {"top1": 90.0} and store.lookup(_key("p2")) is None


@pytest.mark.parametrize("bad, message", [({}, "non-empty mapping"), ([("top1", 1.0)], "non-empty mapping"),
                                          ({"": 1.0}, "non-empty string"), ({"top1": float("inf")}, "inf")])
def test_metric_contract(tmp_path, bad, message):
    store = local_store(tmp_path / "acc.sqlite")
    with pytest.raises(ConfigError, match=message):
        store.evaluate(_key(), lambda: bad)
    assert store.lookup(_key()) is None


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "acc.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable nn2hw accuracy store"):
        local_store(path)


def _shared_key(plan: str, model: str = "") -> str:
    return evaluation_key(plan, model, "d", "s")


def _writer(path: str, worker: int, count: int) -> None:
    store = local_store(path)
    for i in range(count):
        store.evaluate(_shared_key(f"plan{i}", f"w{worker}"), lambda i=i: {"top1": float(i)})
        store.evaluate(_shared_key("shared"), lambda: {"top1": float(worker)})


def test_several_processes_share_one_file(tmp_path):
    path = str(tmp_path / "acc.sqlite")
    local_store(path).engine.dispose()
    context = multiprocessing.get_context("fork")  # children touch only SQLite
    workers = [context.Process(target=_writer, args=(path, w, 25)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    store = local_store(path)
    assert all(store.lookup(_shared_key(f"plan{i}", f"w{w}")) == {"top1": float(i)}
               for w in range(3) for i in range(25))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM nn2hw_measurements").fetchone()[0] == 3 * 25 + 1
    assert store.lookup(_shared_key("shared"))["top1"] in (0.0, 1.0, 2.0)
