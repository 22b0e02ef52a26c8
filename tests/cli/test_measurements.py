"""`nn2hw measurements list|forget`: the store as the user sees it, and refusals with exit code 2."""

from __future__ import annotations

import json

import pytest

from nn2hw.cli import main
from nn2hw.measure import KernelTime, Machine, Measurement, MeasurementStore, Protocol

MACHINE = Machine(cpu_model="Test CPU", logical_cores=2, os="Linux", python="3.11", runtime="onnxruntime",
                  runtime_version="1.0")


def _measurement(network: str, iqr_ms: float) -> Measurement:
    return Measurement(runs=30, median_ms=2.0, q1_ms=2.0 - iqr_ms / 2, q3_ms=2.0 + iqr_ms / 2, min_ms=1.0,
                       max_ms=9.0, outliers=1, threads=1, runtime="onnxruntime", runtime_version="1.0",
                       machine=MACHINE.to_dict(), kernels=(KernelTime("conv", "FusedConv", 1.25),), network=network)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    store = MeasurementStore(tmp_path / "cache" / "measurements.sqlite")
    store.put(_measurement("a1b2c3d4e5f6quiet", 0.02), Protocol())
    store.put(_measurement("f0e1d2c3b4a5noisy", 0.5), Protocol())
    store.put(_measurement("f0e1d2c3b4a5other", 0.04), Protocol(threads=2))
    return store


def test_list_prints_every_measurement_and_writes_json(store, tmp_path, capsys):
    assert main(["measurements", "list", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 measurements" in out and "a1b2c3d4e5f6quie" in out and "25.0%" in out
    rows = json.loads((tmp_path / "m.json").read_text())
    assert [r["network"] for r in rows] == ["a1b2c3d4e5f6quiet", "f0e1d2c3b4a5noisy", "f0e1d2c3b4a5other"]
    assert rows[1]["relative_iqr"] == pytest.approx(0.25) and rows[2]["measurement"]["threads"] == 1


def test_list_shows_what_forget_would_delete(store, capsys):
    assert main(["measurements", "list", "--noisier-than", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 measurements" in out and "f0e1d2c3b4a5nois" in out and "a1b2c3d4e5f6quie" not in out
    assert main(["measurements", "list", "f0e1d2c3"]) == 0
    assert "2 of 3 measurements" in capsys.readouterr().out
    assert len(store.entries()) == 3


def test_forget_the_noisy_ones_keeps_the_rest(store, capsys):
    assert main(["measurements", "forget", "--noisier-than", "0.05"]) == 0
    assert "forgot 1 of 3" in capsys.readouterr().out
    assert [e.network for e in store.entries()] == ["a1b2c3d4e5f6quiet", "f0e1d2c3b4a5other"]


def test_forget_by_prefix_takes_every_protocol_of_that_network(store, capsys):
    assert main(["measurements", "forget", "f0e1d2c3b4a5noi", "--store", str(store.path)]) == 0
    assert [e.network for e in store.entries()] == ["a1b2c3d4e5f6quiet", "f0e1d2c3b4a5other"]
    assert main(["measurements", "forget", "f0e1d2"]) == 0  # a prefix matching two keys forgets both
    assert [e.network for e in store.entries()] == ["a1b2c3d4e5f6quiet"]
    assert main(["measurements", "forget", "--all"]) == 0
    assert store.entries() == []


@pytest.mark.parametrize(("argv", "said"), [
    (["forget"], "one way"),
    (["forget", "--all", "--noisier-than", "0.1"], "one way"),
    (["forget", "a1b2"], "shorter than 6"),
    (["forget", "--noisier-than", "0"], "positive fraction"),
    (["forget", "deadbeef00"], "No stored measurement"),
    (["list", "--store", "missing.sqlite"], "no measurement store"),
    (["list", "deadbeef00"], "No stored measurement"),
])
def test_bad_choices_are_refused_and_nothing_is_forgotten(store, argv, said, capsys):
    assert main(["measurements", *argv]) == 2
    assert said in capsys.readouterr().err
    assert len(store.entries()) == 3

