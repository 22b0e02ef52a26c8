"""Protocol checks, statistics, records and the measurement store: no runtime needed."""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import replace

import pytest

from nn2hw import __version__
from nn2hw.errors import ConfigError
from nn2hw.measure import KernelTime, Machine, Measurement, MeasurementStore, Protocol, default_store, this_machine
from nn2hw.measure.stats import summarize

MACHINE = Machine(cpu_model="Test CPU", logical_cores=2, os="Linux", python="3.11", runtime="onnxruntime",
                  runtime_version="1.0")


def _measurement(network: str = "net", median_ms: float = 2.0) -> Measurement:
    return Measurement(runs=30, median_ms=median_ms, q1_ms=1.5, q3_ms=2.5, min_ms=1.0, max_ms=9.0, outliers=1,
                       threads=1, runtime="onnxruntime", runtime_version="1.0", machine=MACHINE.to_dict(),
                       kernels=(KernelTime("conv", "FusedConv", 1.25, ("Conv", "Relu")),
                                KernelTime("add", "Add", 0.25)),
                       network=network)


@pytest.mark.parametrize(("field", "value", "fix"), [
    ("threads", 0, "Use 1.."), ("threads", (os.cpu_count() or 1) + 1, "logical cores"), ("threads", 1.5, "Use 1.."),
    ("repeats", 4, "at least 5"), ("warmup", -1, "warm-up"), ("profile_runs", -1, "profile"),
    ("optimization", "max", "disabled, basic, extended, all"), ("runtime", "tvm", "onnxruntime, torch")])
def test_protocol_rejects_bad_values_naming_the_fix(field, value, fix):
    with pytest.raises(ConfigError, match=field) as caught:
        Protocol(**{field: value})
    assert fix in caught.value.fix


def test_protocol_key_is_stable_and_names_every_setting():
    assert Protocol().key() == Protocol().key()
    assert Protocol().key() != Protocol(repeats=31).key() != Protocol(optimization="basic").key()
    assert all(name in Protocol().key() for name in ("runtime", "threads", "warmup", "repeats", "optimization"))


def test_machine_fingerprint_ignores_os_and_python_but_not_cpu_or_runtime():
    fingerprint = MACHINE.fingerprint()
    assert replace(MACHINE, os="Other", python="3.12").fingerprint() == fingerprint
    for change in ({"cpu_model": "Other"}, {"logical_cores": 4}, {"runtime_version": "2.0"}, {"runtime": "torch"}):
        assert replace(MACHINE, **change).fingerprint() != fingerprint
    assert Machine.from_dict(MACHINE.to_dict()) == MACHINE


def test_this_machine_reads_the_cpu_and_takes_a_given_runtime_version():
    machine = this_machine("torch", "9.9")
    assert machine.cpu_model and machine.logical_cores == os.cpu_count()
    assert (machine.runtime, machine.runtime_version) == ("torch", "9.9")


def test_summary_counts_tukey_outliers_exactly():
    spread = summarize([1.0] * 10 + [1.2] * 10 + [5.0, 0.1])
    assert (spread.runs, spread.median_ms, spread.min_ms, spread.max_ms) == (22, 1.1, 0.1, 5.0)
    assert spread.q1_ms == 1.0 and spread.q3_ms == pytest.approx(1.2)
    assert spread.outliers == 2  # 5.0 above Q3 + 0.3, 0.1 below Q1 - 0.3


def test_measurement_round_trips_and_reports_derived_figures():
    measurement = _measurement()
    data = measurement.to_dict()
    assert Measurement.from_dict(data) == measurement
    assert data["iqr_ms"] == 1.0 and data["kernels_ms"] == 1.5 and data["overhead_ms"] == 0.5
    assert data["machine"]["cpu_model"] == "Test CPU" and data["kernels"][0]["fused"] == ["Conv", "Relu"]
    with pytest.raises(ConfigError, match="median_ms"):
        Measurement.from_dict({k: v for k, v in data.items() if k != "median_ms"})


def test_store_keeps_the_first_result_and_keys_by_machine_and_protocol(tmp_path):
    store = MeasurementStore(tmp_path / "m.sqlite")
    protocol = Protocol()
    assert store.get("net", MACHINE, protocol) is None
    store.put(_measurement(median_ms=2.0), protocol)
    store.put(_measurement(median_ms=7.0), protocol)  # a later writer of the same key never overwrites
    assert store.get("net", MACHINE, protocol).median_ms == 2.0
    assert store.get("net", replace(MACHINE, cpu_model="Other"), protocol) is None
    assert store.get("net", MACHINE, Protocol(repeats=10)) is None
    assert MeasurementStore(tmp_path / "m.sqlite").get("net", MACHINE, protocol) == _measurement()
    with sqlite3.connect(tmp_path / "m.sqlite") as db:
        version, created = db.execute("SELECT nn2hw_version, created_at FROM measurements").fetchone()
    assert version == __version__ and created > 0


def test_store_lists_and_forgets_only_what_is_chosen(tmp_path):
    store = MeasurementStore(tmp_path / "m.sqlite")
    quiet = replace(_measurement(network="quiet"), q1_ms=1.98, q3_ms=2.02)
    store.put(quiet, Protocol())
    store.put(_measurement(network="noisy"), Protocol())
    entries = store.entries()
    assert [e.network for e in entries] == ["quiet", "noisy"]
    assert [e.relative_iqr for e in entries] == pytest.approx([0.02, 0.5])
    assert entries[0].measurement == quiet and entries[0].to_dict()["measurement"]["network"] == "quiet"
    gone = store.forget(lambda e: e.relative_iqr > 0.05)
    assert [e.network for e in gone] == ["noisy"]
    assert store.get("noisy", MACHINE, Protocol()) is None and store.get("quiet", MACHINE, Protocol()) == quiet
    store.put(_measurement(network="noisy", median_ms=3.0), Protocol())  # timed again: the new result is kept
    assert store.get("noisy", MACHINE, Protocol()).median_ms == 3.0


def test_store_takes_concurrent_writers(tmp_path):
    path = tmp_path / "m.sqlite"
    MeasurementStore(path)

    def write(prefix: str) -> None:
        store = MeasurementStore(path)
        for index in range(20):
            store.put(_measurement(network=f"{prefix}{index}"), Protocol())

    threads = [threading.Thread(target=write, args=(prefix,)) for prefix in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(MeasurementStore(path)) == 60


def test_corrupt_store_is_an_error_naming_the_file_and_nothing_is_lost(tmp_path):
    path = tmp_path / "m.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        MeasurementStore(path)
    assert str(path) in caught.value.cause and "Move" in caught.value.fix
    assert path.read_bytes() == b"not a database" * 100


def test_malformed_row_is_an_error_not_a_miss(tmp_path):
    path = tmp_path / "m.sqlite"
    store = MeasurementStore(path)
    store.put(_measurement(), Protocol())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE measurements SET measurement = '{\"runs\": 1}'")
    with pytest.raises(ConfigError, match="malformed"):
        store.get("net", MACHINE, Protocol())


def test_default_store_lives_in_the_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    assert default_store().path == tmp_path / "cache" / "measurements.sqlite"
    assert (tmp_path / "cache" / "measurements.sqlite").is_file()
