"""How a network is timed: the settings that make two timings comparable, checked on creation."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from nn2hw.errors import ConfigError

RUNTIMES = ("onnxruntime", "torch")
"""Runtimes a protocol can name (ONNX Runtime runners live here; nn2hw.deploy adds torch's)."""

OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "all")
"""ONNX Runtime graph optimization levels, weakest first."""

MIN_REPEATS = 5
"""Fewest timed runs that give a median and quartiles worth reporting."""


@dataclass(frozen=True)
class Protocol:
    """How a network is timed: fixed threads, warm-up, interleaved repetitions.

    ``passes``: the timed rounds are split over this many passes through all the networks measured
    together (each group warmed up again in each pass), so each network's runs are spread over the
    whole measurement: a burst of load on a shared machine (tenths of a second, +10-25 % on this
    project's machine) then slows a few of its runs, not all of them."""

    runtime: str = "onnxruntime"
    threads: int = 1
    warmup: int = 5
    repeats: int = 30
    profile_runs: int = 10
    optimization: str = "all"
    passes: int = 1

    def __post_init__(self) -> None:
        _check_choice(self.runtime, "runtime", RUNTIMES)
        _check_choice(self.optimization, "optimization", OPTIMIZATION_LEVELS)
        cores = os.cpu_count() or 1
        _check_int(self.threads, "threads", 1, cores, f"Use 1..{cores} threads (this machine's logical cores)")
        _check_int(self.warmup, "warmup", 0, None, "Use 0 or more warm-up runs, e.g. 5")
        _check_int(self.repeats, "repeats", MIN_REPEATS, None,
                   f"Use at least {MIN_REPEATS} timed runs (30 or more on a shared machine)")
        _check_int(self.profile_runs, "profile_runs", 0, None, "Use 0 (no profile) or more profile runs, e.g. 10")
        _check_int(self.passes, "passes", 1, self.repeats, f"Use 1..{self.repeats} passes (at most one per timed run)")

    def key(self) -> str:
        """A stable, readable key of every setting (part of the measurement store's key); ``passes``
        only when not 1, so measurements stored before it existed keep their key."""
        return ";".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                        if f.name != "passes" or self.passes != 1)


def _check_choice(value: object, what: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"Measurement {what} {value!r} is not one of {', '.join(options)}.",
                          f"Set {what} to one of {', '.join(options)}.")


def _check_int(value: object, what: str, lo: int, hi: int | None, fix: str) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"Measurement {what} must be an integer {span}, got {value!r}.", f"{fix}.")
