"""Timing runners on this machine: warm-up, interleaved repetitions, robust statistics, a store.

Interleaving (every round runs each network once, in an order rotated per round) spreads the
drift of a shared machine over all networks alike, so their ratios hold even when the absolute
times wander.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol as TypingProtocol

from nn2hw.errors import ConfigError
from nn2hw.measure.machine import this_machine
from nn2hw.measure.onnxrt import onnx_runner
from nn2hw.measure.protocol import Protocol
from nn2hw.measure.records import KernelTime, Measurement
from nn2hw.measure.stats import summarize
from nn2hw.measure.store import MeasurementStore, default_store


class Runner(TypingProtocol):
    """One network ready to run: what `measure` times. ORT runners come from `onnx_runner`; nn2hw.deploy
    adds a torch runner."""

    key: str
    runtime: str
    runtime_version: str

    def run(self) -> None:
        """One inference on fixed random inputs."""

    def profile(self, runs: int) -> tuple[KernelTime, ...]:
        """Per-kernel medians over ``runs`` profiled runs."""


GROUP = 3
"""At most this many networks are interleaved at once: a network timed among many others finds
its weights evicted from the caches (ResNet-20 on Fashion-MNIST: 0.33 ms timed alone, 0.51 ms among
52 others), while a deployed network runs warm. Groups of a few keep that regime, so a stored
measurement means the same whatever it was timed with."""


def measure(runners: Sequence[Runner], protocol: Protocol, *,
            store: MeasurementStore | None = None) -> list[Measurement]:
    """One measurement per runner (in order). Runners already in the store (same network key, machine
    fingerprint and protocol key) are not run; the others are warmed up, timed in ``protocol.repeats``
    interleaved rounds (``GROUP`` networks at a time; split over ``protocol.passes`` passes through all
    the groups), profiled, and stored. Runners sharing a key are timed once."""
    store = default_store() if store is None else store
    _check_runtimes(runners, protocol)
    unique = list({runner.key: runner for runner in runners}.values())
    cached = {r.key: store.get(r.key, this_machine(r.runtime, r.runtime_version), protocol) for r in unique}
    found = {key: measurement for key, measurement in cached.items() if measurement is not None}
    todo = [r for r in unique if r.key not in found]
    groups = [todo[start:start + GROUP] for start in range(0, len(todo), GROUP)]
    times: dict[str, list[float]] = {runner.key: [] for runner in todo}
    for rounds in _rounds_per_pass(protocol):
        for members in groups:
            for runner, times_ms in zip(members, _interleaved_times_ms(members, protocol.warmup, rounds), strict=True):
                times[runner.key] += times_ms
                if len(times[runner.key]) == protocol.repeats:
                    measurement = _measurement(runner, protocol, times[runner.key])
                    store.put(measurement, protocol)
                    found[runner.key] = measurement
    return [found[runner.key] for runner in runners]


def measure_onnx(model: bytes | str | Path, protocol: Protocol | None = None, *,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 store: MeasurementStore | None = None) -> Measurement:
    """Measure one ONNX network (bytes or a file) with ONNX Runtime under ``protocol`` (default settings)."""
    protocol = Protocol() if protocol is None else protocol
    return measure([onnx_runner(model, protocol, input_shapes=input_shapes)], protocol, store=store)[0]


def probe_ms(runner: Runner, protocol: Protocol) -> float:
    """The median (ms) of ``runner`` timed now under ``protocol`` (warm-up, ``repeats`` runs), never
    stored: a reading of how fast the machine runs at this moment (a build's load sentinel)."""
    return summarize(_interleaved_times_ms([runner], protocol.warmup, protocol.repeats)[0]).median_ms


def _rounds_per_pass(protocol: Protocol) -> list[int]:
    """The timed rounds of each pass: ``repeats`` split as evenly as ``passes`` allow."""
    share, extra = divmod(protocol.repeats, protocol.passes)
    return [share + (index < extra) for index in range(protocol.passes)]


def _interleaved_times_ms(runners: Sequence[Runner], warmup: int, rounds: int) -> list[list[float]]:
    """Warm every runner up, then time ``rounds`` rounds; round r starts at runner r mod n."""
    for runner in runners:
        for _ in range(warmup):
            runner.run()
    times: list[list[float]] = [[] for _ in runners]
    count = len(runners)
    for round_index in range(rounds if count else 0):
        for offset in range(count):
            index = (round_index + offset) % count
            start = time.perf_counter_ns()
            runners[index].run()
            times[index].append((time.perf_counter_ns() - start) / 1e6)
    return times


def _measurement(runner: Runner, protocol: Protocol, times_ms: Sequence[float]) -> Measurement:
    spread = summarize(times_ms)
    kernels = runner.profile(protocol.profile_runs) if protocol.profile_runs else ()
    machine = this_machine(runner.runtime, runner.runtime_version).to_dict()
    return Measurement(**asdict(spread), threads=protocol.threads, runtime=runner.runtime,
                       runtime_version=runner.runtime_version, machine=machine, kernels=kernels, network=runner.key)


def _check_runtimes(runners: Sequence[Runner], protocol: Protocol) -> None:
    for runner in runners:
        if runner.runtime != protocol.runtime:
            raise ConfigError(f"A {runner.runtime} runner cannot be timed under a {protocol.runtime} protocol "
                              "(the store would file it under the wrong runtime).",
                              f"Use Protocol(runtime={runner.runtime!r}) for it, or a {protocol.runtime} runner.")
