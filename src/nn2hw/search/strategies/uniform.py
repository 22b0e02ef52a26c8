"""The single-bit-width baseline (Chin et al., "One weight bitwidth to rule them all", ECCV 2020
workshops): at equal model size, one weight bit width for every layer plus a width multiplier
beats mixed precision. ``uniform`` sweeps that grid under the search's own specs, so every
mixed-precision result can be reported against it.

A grid point is one bit width (or 'unchanged') and one width multiplier (or 'unchanged'). Its index
vector sets the same bit width on every ``quantize`` dimension that offers it, and on every
``channel_cut`` dimension the width nearest to multiplier x the group's width among those the
dimension offers (its own width included: 'unchanged', ties to the wider); every other technique
stays at choice 0 and hardware knobs at 'auto' (the DSE picks the design). The bit widths and
multipliers are those the space's dimensions offer, so a candidate is uniform over the layers
the space offers each technique to (iSpace offers one only where it relieves the layer's
bottleneck; a ``--space`` file offers both on every layer, docs/search.md).

The grid is proposed largest model first (weight bits x multiplier^2, ties to the wider network),
each point once: the latency-first prefilter rejects the points that miss a spec in milliseconds
(recorded on the trial, never trained), so the first trained candidates are the largest uniform
networks that meet the spec. Once every point was proposed the sampler says so and the search
loop starts no new trial (``sampler.exhausted``); a driver that does not ask gets points again
(the trial's slot modulo the grid). A context without the dimensions' meanings (a bare names-and-counts space, as the
conformance suite's toy) is swept along its diagonal: choice k on every dimension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import STRATEGIES, RewardConfig, StrategyInfo
from nn2hw.search.strategies.finite import FiniteList, FiniteSampler
from nn2hw.search.strategies.sampler import SamplerContext

if TYPE_CHECKING:
    from nn2hw.space import Dimension

QUANTIZE, CHANNEL_CUT = "quantize", "channel_cut"
FLOAT_BITS = 32
"""The weight bits assumed for an unchanged layer whose dimension does not say (a 16-bit layer's does)."""

Bits = tuple[int, int | None]
"""(weight bits, activation bits or None) of a quantize choice."""


@dataclass(frozen=True)
class GridPoint:
    """One point of the uniform grid: ``bits`` (None: unchanged), ``keep`` (the width multiplier;
    1.0: unchanged) and the index vector that realizes it on the space."""

    bits: Bits | None
    keep: float
    indices: tuple[int, ...]

    @property
    def label(self) -> str:
        bits = "unchanged bits" if self.bits is None else \
            f"{self.bits[0]}-bit" if self.bits[1] is None else f"w{self.bits[0]}a{self.bits[1]}"
        return f"{bits} x{self.keep:g}"


def _bits(choice: Any) -> Bits | None:
    """The bit width a quantize choice sets (None for choice 0, 'unchanged')."""
    if not isinstance(choice, Mapping) or choice.get("weight_bits") is None:
        return None
    return int(choice["weight_bits"]), None if choice.get("act_bits") is None else int(choice["act_bits"])


def _unchanged(dim: Dimension, field: str) -> int | None:
    """The value of ``field`` that choice 0 keeps (the dimension's ``unchanged``), if it says."""
    value = (dim.unchanged or {}).get(field)
    return None if value is None else int(value)


def _base_channels(dim: Dimension) -> int:
    """The unchanged width of a channel_cut dimension."""
    channels = _unchanged(dim, "out_channels")
    if channels is None:
        raise ConfigError(f"The uniform strategy cannot tell the unchanged width of channel_cut dimension "
                          f"{dim.name!r}: the dimension does not say what its choice 0 keeps.",
                          "Build the space from the channel_cut transform (its offer says it), or use another "
                          "strategy.")
    return channels


def _widths(dim: Dimension) -> list[int]:
    """The widths a channel_cut dimension offers, by choice index (choice 0: its own)."""
    return [_base_channels(dim), *(int(c["out_channels"]) for c in dim.choices[1:])]


def _nearest(widths: Sequence[int], target: float) -> int:
    """The index of the width nearest ``target`` (ties: the wider)."""
    return min(range(len(widths)), key=lambda i: (abs(widths[i] - target), -widths[i]))


def _size(bits: Bits | None, keep: float, base_bits: int) -> float:
    """The weight memory a point keeps, relative: weight bits x multiplier^2 (a cut narrows a
    layer's outputs and its follower's inputs)."""
    return (base_bits if bits is None else bits[0]) * keep * keep


def uniform_grid(dimensions: Sequence[Dimension]) -> list[GridPoint]:
    """Every uniform point of a space, largest model first, each index vector once.

    Raises a ``ConfigError`` when the space has neither a quantize nor a channel_cut dimension."""
    quant = [i for i, d in enumerate(dimensions) if d.technique == QUANTIZE]
    cuts = [i for i, d in enumerate(dimensions) if d.technique == CHANNEL_CUT]
    if not quant and not cuts:
        found = sorted({d.technique for d in dimensions}) or ["none"]
        raise ConfigError(
            f"The uniform strategy sweeps one bit width x one width multiplier, but the search space has no "
            f"quantize or channel_cut dimension (its techniques: {', '.join(found)}).",
            "Offer them with a --space file (techniques: {quantize: {bottlenecks: [...]}, channel_cut: "
            "{bottlenecks: [...]}}, see docs/search.md), or pick another --strategy.")
    bits: list[Bits | None] = [None, *sorted({q for i in quant for c in dimensions[i].choices
                                              if (q := _bits(c)) is not None}, reverse=True)]
    widths = {i: _widths(dimensions[i]) for i in cuts}
    keeps = sorted({1.0, *(round(w / ws[0], 4) for ws in widths.values() for w in ws[1:])}, reverse=True)
    base_bits = max((n for i in quant if (n := _unchanged(dimensions[i], "weight_bits")) is not None),
                    default=FLOAT_BITS)
    points: list[GridPoint] = []
    seen: set[tuple[int, ...]] = set()
    for b, keep in sorted(((b, k) for b in bits for k in keeps), key=lambda p: (-_size(p[0], p[1], base_bits), -p[1])):
        indices = [0] * len(dimensions)
        for i in quant:
            offered = [_bits(c) for c in dimensions[i].choices]
            indices[i] = offered.index(b) if b is not None and b in offered else 0
        for i, ws in widths.items():
            indices[i] = _nearest(ws, keep * ws[0])
        if tuple(indices) not in seen:
            seen.add(tuple(indices))
            points.append(GridPoint(b, keep, tuple(indices)))
    return points


def diagonal_grid(counts: Sequence[int]) -> list[GridPoint]:
    """Without the dimensions' meanings: choice k on every dimension (clipped to its count)."""
    return [GridPoint(None, 1.0, tuple(min(k, n - 1) for n in counts)) for k in range(max(counts))]


class UniformGrid(FiniteList):
    """One bit width x one width multiplier on every layer the space offers them to, largest first."""

    name = "uniform"

    def __init__(self, choice_counts: Sequence[int], reward: RewardConfig, seed: int = 0, **options: Any) -> None:
        super().__init__(choice_counts, reward, seed, **options)
        self.grid: tuple[GridPoint, ...] = ()
        self._sweep(diagonal_grid(self.counts))

    def on(self, dimensions: Sequence[Dimension]) -> UniformGrid:
        """Sweep the uniform grid of ``dimensions`` (``uniform_grid``) instead of the diagonal."""
        self._sweep(uniform_grid(dimensions))
        return self

    def _sweep(self, grid: Sequence[GridPoint]) -> None:
        self.grid = tuple(grid)
        self.proposals = tuple(p.indices for p in self.grid)


class UniformSampler(FiniteSampler):
    """The uniform strategy's sampler: stops the search once every grid point was proposed."""

    strategy: UniformGrid

    def spent(self) -> str:
        return (f"uniform: all {len(self.strategy.grid)} points of the grid (bit width x width multiplier) were "
                "proposed; no new trial starts.")


def build(ctx: SamplerContext) -> UniformSampler:
    """The sampler over the grid of ``ctx.dimensions`` (their diagonal when the context has none)."""
    strategy = UniformGrid(ctx.counts, ctx.reward, ctx.seed, **UniformGrid.parse_options(ctx.options))
    return UniformSampler(strategy.on(ctx.dimensions) if ctx.dimensions else strategy, ctx)


STRATEGIES.register("uniform", StrategyInfo(
    "uniform", "single-bit-width baseline: one bit width x one width multiplier, each grid point once", build))
