"""The strategy interface: propose candidates as index vectors over a categorical space.

Every strategy is handed to Optuna as a sampler (``nn2hw.search.sampler``), so storage,
resume and multi-worker studies work the same for all of them. Our own strategies (random,
evolution, REINFORCE, FNAS) keep no state that cannot be rebuilt: the sampler replays every
completed trial into ``tell`` in slot order, and ``ask`` draws its randomness from (seed, slot),
the slot being the trial's position in an uninterrupted study (``sampler.SLOT``). A resumed or
second worker therefore continues exactly where the study is.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nn2hw.errors import ConfigError
from nn2hw.registry import Registry

if TYPE_CHECKING:
    from nn2hw.search.study import Direction


@dataclass(frozen=True)
class Observation:
    """What a strategy learns from one finished trial.

    ``metric`` is the accuracy the reward uses (top-1 by default, in percent), ``None`` when the
    candidate was not trained (it missed a spec or a resource). ``latency_ms`` is ``None`` when
    no design could run it at all.
    """

    number: int
    """The trial's slot: its position in the study as an uninterrupted run numbers it."""
    indices: tuple[int, ...]
    feasible: bool
    metric: float | None
    latency_ms: float | None


@dataclass(frozen=True)
class RewardConfig:
    """The HotNAS reward (reference §2.7): alpha*R_acc + (1-alpha)*R_lat over two bands.

    ``acc_band`` = (a_lo, a_hi) in percent, ``lat_band`` = (l_lo, l_hi) in ms; l_hi is the
    latency spec. ``spec_ms`` is the hard latency spec the FNAS reward uses. ``lat_penalty``
    says how a latency over the band is punished (see ``r_lat``).
    """

    spec_ms: float
    acc_band: tuple[float, float]
    lat_band: tuple[float, float]
    alpha: float = 0.7
    lat_penalty: str = "scaled"

    def __post_init__(self) -> None:
        lo, hi = self.acc_band
        llo, lhi = self.lat_band
        if self.lat_penalty not in ("scaled", "hotnas"):
            raise ConfigError(f"Unknown latency penalty {self.lat_penalty!r}.", "Use scaled (default) or hotnas.")
        if not (lo < hi and 0 < llo < lhi and self.spec_ms > 0 and 0 <= self.alpha <= 1):
            raise ConfigError(
                f"Reward bands must satisfy acc_lo < acc_hi, 0 < lat_lo < lat_hi, alpha in [0, 1]; got "
                f"acc {self.acc_band}, latency {self.lat_band}, alpha {self.alpha}.",
                "Fix the bands in the search configuration.",
            )

    def r_acc(self, acc: float | None) -> float:
        lo, hi = self.acc_band
        if acc is None or acc < lo:
            return -1.0
        if acc > hi:
            return 1.0
        return 2 * (acc - lo) / (hi - lo) - 1

    def r_lat(self, latency_ms: float | None) -> float:
        """+1 below the band, -1..+1 across it, and beyond it a penalty growing with the violation:
        in band widths ('scaled', continuous at the spec, the same at any latency scale) or in
        plain milliseconds as HotNAS coded it ('hotnas': about 0 just over the spec, so a
        near-miss outscores a candidate that just meets it; meant for 5-10 ms networks)."""
        lo, hi = self.lat_band
        if latency_ms is None:
            return -1.0 if self.lat_penalty == "hotnas" else -3.0  # no design can run it
        if latency_ms > hi:
            return hi - latency_ms if self.lat_penalty == "hotnas" else -1.0 - (latency_ms - hi) / (hi - lo)
        if latency_ms < lo:
            return 1.0
        return 2 * (hi - latency_ms) / (hi - lo) - 1

    def hotnas(self, obs: Observation) -> float:
        return self.alpha * self.r_acc(obs.metric) + (1 - self.alpha) * self.r_lat(obs.latency_ms)


class Strategy(ABC):
    """Proposes index vectors over ``choice_counts`` and learns from observations."""

    name: ClassVar[str]

    def __init__(self, choice_counts: Sequence[int], reward: RewardConfig, seed: int = 0, **options: Any) -> None:
        if not choice_counts or any(n < 1 for n in choice_counts):
            raise ConfigError("A search space needs at least one dimension, each with a choice.",
                              "Widen the search space configuration.")
        self.counts = tuple(int(n) for n in choice_counts)
        self.reward = reward
        self.seed = int(seed)
        unknown = set(options) - set(self.option_names())
        if unknown:
            raise ConfigError(f"Strategy {self.name!r} has no options {sorted(unknown)}.",
                              f"Use: {', '.join(self.option_names()) or 'none'}.")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ()

    option_ranges: ClassVar[Mapping[str, str]] = {}
    """Each option's valid values in words ('a number > 0'), named when a value is refused; a
    subclass lists its own options (those of its bases are kept)."""

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked against the type of each one's default (``checked_options``)."""
        ranges = {k: v for klass in reversed(cls.__mro__) for k, v in vars(klass).get("option_ranges", {}).items()}
        return checked_options(cls.name, options, (cls,), ranges)

    def rng(self, number: int, attempt: int = 0) -> np.random.Generator:
        """Randomness for proposal ``attempt`` of the trial in slot ``number``: the same on a resume
        (the re-run of an interrupted trial has its slot) or another worker."""
        return np.random.default_rng([self.seed, number, attempt])

    def random_indices(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(rng.integers(n)) for n in self.counts)

    @abstractmethod
    def ask(self, number: int, attempt: int = 0) -> tuple[int, ...]:
        """Proposal ``attempt`` for the trial in slot ``number`` (later attempts follow rejected ones)."""

    def tell(self, obs: Observation) -> None:  # noqa: B027 - stateless strategies learn nothing
        """Learn from a finished trial (called in trial order, once per trial)."""

    def reject(self, obs: Observation) -> None:  # noqa: B027 - by default a rejection teaches nothing
        """Learn from a proposal the cost model rejected before it became a trial (it missed a
        spec). Policies that learn from every sample (REINFORCE) take it as an episode; a
        population (evolution) ignores it, so it keeps only real members."""


_KINDS: tuple[tuple[type, str], ...] = ((bool, "true or false"), (int, "an integer"), (float, "a number"),
                                        (str, "a word"))
"""The type of an option's default -> what its value must be, in words (bool before int: a bool is an int)."""


def _fits(kind: type, value: Any) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def option_defaults(owners: Sequence[type]) -> dict[str, Any]:
    """The keyword defaults of the constructors of ``owners`` and their bases (a subclass's first)."""
    defaults: dict[str, Any] = {}
    for owner in owners:
        for klass in owner.__mro__:
            init = vars(klass).get("__init__")
            try:
                params = inspect.signature(init).parameters.values() if init is not None else ()
            except (TypeError, ValueError):  # a constructor without a readable signature (C code)
                continue
            for p in params:
                if p.default is not p.empty:
                    defaults.setdefault(p.name, p.default)
    return defaults


def checked_options(strategy: str, options: Mapping[str, Any], owners: Sequence[type],
                    ranges: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``options`` (``--strategy-option KEY=VALUE``) with each value checked against the type of its
    default in the constructors of ``owners`` (an integer, a number, true/false or a word): a
    ``ConfigError`` names the option, the type and valid values, and the default; names the
    constructors do not declare are left to them (an unknown option is refused there)."""
    defaults = option_defaults(owners)
    for key, value in options.items():
        if key not in defaults:
            continue
        default = defaults[key]
        kind = next((k for k, _ in _KINDS if isinstance(default, k)), None)
        if kind is None or _fits(kind, value):
            continue
        expected = (ranges or {}).get(key) or dict(_KINDS)[kind]
        shown = str(default).lower() if isinstance(default, bool) else default
        raise ConfigError(f"Strategy {strategy!r}: option {key} must be {expected}, got {value!r}.",
                          f"Give e.g. --strategy-option {key}={shown} (the default), or leave it out.")
    return dict(options)


@dataclass(frozen=True)
class StrategyInfo:
    """A registered strategy: how to build its Optuna sampler from a ``SamplerContext``, how many
    objectives its study has (1: maximize accuracy; 2: maximize accuracy and minimize latency)
    and whether it resumes exactly."""

    name: str
    description: str
    build: Callable[[Any], Any]
    objectives: int = 1
    exact_resume: bool = True
    """Whether a resumed study proposes exactly what an uninterrupted one would (the strategy
    rebuilds its state from the trials and draws its randomness from (seed, slot))."""

    @property
    def directions(self) -> list[Direction]:
        """The study's directions: maximize the metric, and minimize latency with two objectives."""
        return ["maximize"] if self.objectives == 1 else ["maximize", "minimize"]


def _as_info(obj: Any) -> Any:
    """A plugin may point at a ``Strategy`` subclass: it runs in nn2hw's sampler (prefilter, replay)."""
    if isinstance(obj, type) and issubclass(obj, Strategy):
        from nn2hw.search.strategies.sampler import own

        summary = (obj.__doc__ or obj.__name__).strip().splitlines()[0]
        return StrategyInfo(obj.name, summary, own(obj))
    return obj


STRATEGIES: Registry[StrategyInfo] = Registry("search strategy", "nn2hw list strategies",
                                              builtins="nn2hw.search.strategies", group="nn2hw.strategies",
                                              kind=StrategyInfo, coerce=_as_info)
