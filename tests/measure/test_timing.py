"""`measure` with fake runners: interleaving, the store, outliers, runtimes. No runtime needed."""

from __future__ import annotations

import time

import pytest

from nn2hw.errors import ConfigError
from nn2hw.measure import KernelTime, MeasurementStore, Protocol, measure

pytestmark = pytest.mark.timed  # times code on the CPU: runs alone (tests/conftest.py)

FAST = Protocol(warmup=2, repeats=10, profile_runs=3)


class FakeRunner:
    """A runner that logs its calls into a shared list and sleeps ``slow_s`` on the runs ``slow_calls`` names."""

    runtime = "onnxruntime"
    runtime_version = "fake-1"

    def __init__(self, key: str, log: list[str], slow_calls: frozenset[int] = frozenset(), slow_s: float = 0.0):
        self.key, self.log, self.slow_calls, self.slow_s = key, log, slow_calls, slow_s
        self.calls = self.profiles = 0

    def run(self) -> None:
        self.calls += 1
        self.log.append(self.key)
        if self.calls in self.slow_calls:
            time.sleep(self.slow_s)

    def profile(self, runs: int) -> tuple[KernelTime, ...]:
        self.profiles += 1
        return (KernelTime(f"{self.key}/node", "Add", 0.001),)


def test_rounds_are_interleaved_and_rotated(tmp_path):
    log: list[str] = []
    runners = [FakeRunner(key, log) for key in "abc"]
    measure(runners, FAST, store=MeasurementStore(tmp_path / "m.sqlite"))
    timed = log[3 * FAST.warmup:]
    rounds = [timed[i:i + 3] for i in range(0, len(timed), 3)]
    assert len(rounds) == FAST.repeats and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert [r[0] for r in rounds[:3]] == ["a", "b", "c"]  # each round starts one later


def test_many_networks_are_interleaved_a_few_at_a_time(tmp_path):
    """A network timed among many others runs with cold caches: groups of GROUP keep it warm."""
    from nn2hw.measure.timing import GROUP

    log: list[str] = []
    runners = [FakeRunner(key, log) for key in "abcdefg"]
    measure(runners, FAST, store=MeasurementStore(tmp_path / "m.sqlite"))
    per_group = GROUP * (FAST.warmup + FAST.repeats)
    groups = [log[i:i + per_group] for i in range(0, len(log), per_group)]
    assert [sorted(set(g)) for g in groups] == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert all(r.calls == FAST.warmup + FAST.repeats for r in runners)


def test_a_stored_network_is_never_timed_again(tmp_path):
    store = MeasurementStore(tmp_path / "m.sqlite")
    first = FakeRunner("net", [])
    [measured] = measure([first], FAST, store=store)
    assert first.calls == FAST.warmup + FAST.repeats and first.profiles == 1
    again, fresh = FakeRunner("net", []), FakeRunner("other", [])
    cached, new = measure([again, fresh], FAST, store=store)
    assert again.calls == again.profiles == 0 and cached == measured
    assert fresh.calls == FAST.warmup + FAST.repeats and new.network == "other"
    other_protocol = FakeRunner("net", [])
    measure([other_protocol], Protocol(warmup=0, repeats=5, profile_runs=0), store=store)
    assert other_protocol.calls == 5 and other_protocol.profiles == 0  # other settings: another measurement


def test_runners_sharing_a_key_are_timed_once(tmp_path):
    log: list[str] = []
    one, twin = FakeRunner("net", log), FakeRunner("net", log)
    first, second = measure([one, twin], FAST, store=MeasurementStore(tmp_path / "m.sqlite"))
    assert first == second and one.calls + twin.calls == FAST.warmup + FAST.repeats


def test_slow_runs_are_counted_as_outliers(tmp_path):
    protocol = Protocol(warmup=0, repeats=20, profile_runs=0)
    runner = FakeRunner("net", [], slow_calls=frozenset({5, 12, 18}), slow_s=0.02)
    [measurement] = measure([runner], protocol, store=MeasurementStore(tmp_path / "m.sqlite"))
    assert measurement.outliers >= 3 and measurement.max_ms >= 20.0 > measurement.median_ms * 10
    assert measurement.runs == 20 and measurement.q1_ms <= measurement.median_ms <= measurement.q3_ms


def test_a_runner_of_another_runtime_is_refused(tmp_path):
    runner = FakeRunner("net", [])
    runner.runtime = "torch"
    with pytest.raises(ConfigError, match="torch runner"):
        measure([runner], FAST, store=MeasurementStore(tmp_path / "m.sqlite"))


def test_passes_spread_each_networks_runs_over_the_whole_measurement(tmp_path):
    """With passes, every group is warmed up and timed a share of the rounds in each pass through all
    groups: a burst of load during one pass slows a share of each network's runs, not all of one's."""
    log: list[str] = []
    runners = [FakeRunner(key, log) for key in "abcdef"]
    protocol = Protocol(warmup=1, repeats=10, profile_runs=0, passes=3)
    measured = measure(runners, protocol, store=MeasurementStore(tmp_path / "m.sqlite"))
    blocks = [sorted(set(log[i:i + 3 * (1 + rounds)])) for i, rounds in
              zip(_starts([4, 4, 3, 3, 3, 3]), [4, 4, 3, 3, 3, 3])]
    assert blocks == [["a", "b", "c"], ["d", "e", "f"]] * 3  # pass 1: 4 rounds each, then 3 and 3
    assert all(r.calls == 3 * protocol.warmup + protocol.repeats for r in runners)
    assert all(m.runs == protocol.repeats for m in measured)


def _starts(rounds: list[int]) -> list[int]:
    """Where each block of a group of 3 (1 warm-up + its rounds) starts in the log."""
    out, at = [], 0
    for count in rounds:
        out.append(at)
        at += 3 * (1 + count)
    return out


def test_passes_are_part_of_the_key_only_when_used():
    assert "passes" not in Protocol().key()  # measurements stored before passes existed keep their key
    assert Protocol(passes=2).key() != Protocol().key() and "passes=2" in Protocol(passes=2).key()
    with pytest.raises(ConfigError, match="passes"):
        Protocol(repeats=5, passes=6)


def test_a_probe_times_a_runner_now_and_stores_nothing(tmp_path, monkeypatch):
    """``probe_ms`` (a build's load sentinel) warms up, times ``repeats`` runs and returns their median;
    a few slow runs do not move it, and nothing reaches the store."""
    from nn2hw.measure import probe_ms

    store = MeasurementStore(tmp_path / "m.sqlite")
    monkeypatch.setattr("nn2hw.measure.timing.default_store", lambda: store)  # where measure() would store
    runner = FakeRunner("net", [], slow_calls=frozenset({4, 9}), slow_s=0.02)
    median = probe_ms(runner, Protocol(warmup=2, repeats=11, profile_runs=0))
    assert runner.calls == 13 and runner.profiles == 0
    assert median < 20.0 and len(store) == 0
