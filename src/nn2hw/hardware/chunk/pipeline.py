"""The pipeline's exploration: every sub-accelerator's grid costed at once, each one's Pareto front,
and the choice of one design per sub-accelerator whose slowest stage is fastest within the shared
DSP and BRAM budgets (exact: a bisection over stage latencies; at each level the Pareto-pruned sums
of the fronts' resources say whether some choice fits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nn2hw.hardware._types import Floats, Ints
from nn2hw.hardware.chunk.model import Designs, LayerShape, bram_use, dsp_use, layer_components
from nn2hw.hardware.select import pareto_front


@dataclass(frozen=True)
class StageGrid:
    """One sub-accelerator's grid: designs, stage latency (cycles), DSP and BRAM per design."""

    name: str
    designs: Designs
    cycles: Floats
    dsp: Floats
    bram: Floats


def stage_grid(name: str, shapes: Sequence[LayerShape], designs: Designs, weight_bram: bool) -> StageGrid:
    """Cycles of a sub-accelerator's layers summed, its DSPs, and the most BRAM any layer needs, for
    every design."""
    cycles = np.zeros(len(designs))
    bram = np.zeros(len(designs))
    for shape in shapes:
        cycles += layer_components(shape, designs).cycles
        bram = np.maximum(bram, bram_use(shape, designs, weight_bram))
    return StageGrid(name, designs, cycles, dsp_use(designs, shapes[0].depthwise), bram)


@dataclass(frozen=True)
class Front:
    """A stage's designs no other beats in latency, DSP and BRAM at once (indices into its grid)."""

    index: Ints
    cycles: Floats
    dsp: Floats
    bram: Floats


def stage_front(grid: StageGrid, dsp_limit: float, bram_limit: float) -> Front:
    """The Pareto front of the designs that fit the limits on their own: for each (DSP, BRAM) pair the
    fastest design (first in grid order on ties), then ``pareto_front`` over the pairs."""
    ok = np.flatnonzero((grid.dsp <= dsp_limit) & (grid.bram <= bram_limit))
    order = ok[np.lexsort((ok, grid.cycles[ok], grid.bram[ok], grid.dsp[ok]))]
    keys = np.stack([grid.dsp[order], grid.bram[order]], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    cand = order[first]
    points = np.stack([grid.cycles[cand], grid.dsp[cand], grid.bram[cand]], axis=1)
    kept = cand[pareto_front(points, np.ones(len(cand), dtype=bool))]
    return Front(kept, grid.cycles[kept], grid.dsp[kept], grid.bram[kept])


def _prune2(dsp: Floats, bram: Floats) -> Ints:
    """Indices of the (DSP, BRAM) pairs no other pair beats in both (fewest DSP first)."""
    order = np.lexsort((bram, dsp))
    best_before = np.minimum.accumulate(np.concatenate([[np.inf], bram[order]]))[:-1]
    return order[bram[order] < best_before]


def fitting_sums(fronts: Sequence[Front], limit_cycles: float, dsp_limit: float, bram_limit: float
                 ) -> tuple[Ints, Floats, Floats]:
    """Choices (one front index per stage, as rows) whose stages all take at most ``limit_cycles``
    and whose DSP and BRAM sums fit, Pareto-pruned on the two sums (fewest DSP first)."""
    choice = np.zeros((1, 0), dtype=int)
    dsp = np.zeros(1)
    bram = np.zeros(1)
    for front in fronts:
        fast = np.flatnonzero(front.cycles <= limit_cycles)
        fast = fast[_prune2(front.dsp[fast], front.bram[fast])]
        d = (dsp[:, None] + front.dsp[fast][None, :]).ravel()
        b = (bram[:, None] + front.bram[fast][None, :]).ravel()
        rows = np.repeat(np.arange(len(choice)), len(fast))
        cols = np.tile(fast, len(choice))
        ok = np.flatnonzero((d <= dsp_limit) & (b <= bram_limit))
        keep = ok[_prune2(d[ok], b[ok])]
        choice = np.concatenate([choice[rows[keep]], cols[keep, None]], axis=1)
        dsp, bram = d[keep], b[keep]
    return choice, dsp, bram
