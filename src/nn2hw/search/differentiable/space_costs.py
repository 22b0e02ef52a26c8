"""The hardware side of a built-in space's supernet (FBNet, NAS-Bench-201): exact costs of
architectures on a design and FBNet's per-block lookup tables, built with the template's own
cost model.

An architecture is the supernet's index vector (op per block or edge, then bit width per block or
edge). Its workload is the derived network traced on the cost shapes (the supernet's dataset, or
e.g. CIFAR-10's for a Fashion-MNIST supernet) with the chosen bit widths applied. A block table
``C[p][op, bits]`` holds what block ``p``'s layers cost with that op at that width on one design:
one costing per (op, width) of the uniform architecture, its per-layer costs split by the
position each layer belongs to (``position_layers``). Their sum over blocks plus the fixed layers
(stem, head) is the lookup-sum estimate HW-NAS-Bench and FBNet use; on a template whose layers
are costed independently on a fixed design it is the exact cost, elsewhere (a pipeline's slowest
stage) an estimate, which is why the training rescales it to the exact cost of its most likely
architecture at every lambda update and the derived candidates are re-costed exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nn2hw.compress import apply_plan
from nn2hw.errors import HardwareError, InfeasibleError, PlanError
from nn2hw.hardware.records import NetworkCost
from nn2hw.plan import Plan
from nn2hw.search.differentiable.costs import FAILED_PENALTY
from nn2hw.search.target import HardwareTarget
from nn2hw.workload import Workload


class SpaceSupernet(Protocol):
    """What the costs need of a built-in space's supernet (``nn2hw.zoo.archs.supernet``)."""

    counts: tuple[int, ...]
    bits: tuple[int, ...]

    @property
    def positions(self) -> int: ...

    def workload(self, indices: Sequence[int], batch: int = 1, dataset: str | None = None) -> Workload: ...

    def position_layers(self, indices: Sequence[int]) -> list[list[str]]: ...

    def fixed_layers(self, indices: Sequence[int]) -> list[str]: ...

    def layer_bits(self, indices: Sequence[int]) -> dict[str, int]: ...


@dataclass(frozen=True)
class BlockTables:
    """Per block, what each (op, bit width) costs on ``design``: ``blocks[p][op, b]`` (one value per
    metric, last axis), plus the ``fixed`` layers' cost."""

    metrics: tuple[str, ...]
    design: Any
    fixed: np.ndarray
    blocks: tuple[np.ndarray, ...]

    def table(self, indices: Sequence[int]) -> np.ndarray:
        """The lookup-sum estimate of one architecture."""
        ops, widths = split_indices(indices, len(self.blocks))
        return self.fixed + sum((b[o, w] for b, o, w in zip(self.blocks, ops, widths)), np.zeros_like(self.fixed))

    def expected(self, op_probs: Sequence[np.ndarray], bit_probs: Sequence[np.ndarray]) -> np.ndarray:
        """The expected cost under independent per-position distributions."""
        total = self.fixed.copy()
        for block, ops, bits in zip(self.blocks, op_probs, bit_probs):
            total += np.einsum("o,b,obm->m", ops, bits, block)
        return total


def split_indices(indices: Sequence[int], blocks: int) -> tuple[list[int], list[int]]:
    """(ops, bit indices) of an index vector; bit index 0 for every block when the space has none."""
    ops = [int(i) for i in indices[:blocks]]
    widths = [int(i) for i in indices[blocks:]] or [0] * blocks
    return ops, widths


class SpaceCosts:
    """Exact costs of a supernet's architectures on a template (memoized) and its block tables."""

    def __init__(self, supernet: SpaceSupernet, target: HardwareTarget, metrics: Sequence[str],
                 limits: Mapping[str, float], cost_dataset: str | None, base_model: str) -> None:
        self.supernet = supernet
        self.target = target
        self.metrics = tuple(metrics)
        self.limits = np.array([limits.get(m, np.inf) for m in self.metrics], dtype=np.float64)
        self.cost_dataset = cost_dataset
        self.base_model = base_model
        self._memo: dict[tuple[tuple[int, ...], str], NetworkCost | None] = {}

    def workload(self, indices: Sequence[int]) -> Workload:
        """The architecture's workload on the cost shapes, its bit widths applied."""
        work = self.supernet.workload(indices, dataset=self.cost_dataset)
        plan = Plan.for_workload(work, base_model=self.base_model, dataset=self.cost_dataset)
        for name, bits in self.supernet.layer_bits(indices).items():
            plan = plan.with_choice(name, weight_bits=bits, act_bits=bits)
        return apply_plan(plan, work) if plan.choices else work

    def values(self, cost: NetworkCost) -> np.ndarray:
        return np.array([float(getattr(cost, m)) for m in self.metrics], dtype=np.float64)

    def on(self, indices: Sequence[int], design: Any) -> NetworkCost | None:
        """The architecture on ``design`` (None when that design cannot run it)."""
        key = (tuple(int(i) for i in indices), repr(design))
        if key not in self._memo:
            try:
                self._memo[key] = self.target.recost(self.workload(indices), design)
            except (PlanError, InfeasibleError, HardwareError):
                self._memo[key] = None
        return self._memo[key]

    def best(self, indices: Sequence[int]) -> NetworkCost | None:
        """The architecture on its own best design (the template's DSE), as a candidate is judged."""
        try:
            return self.target.best(self.workload(indices))
        except (PlanError, InfeasibleError, HardwareError):
            return None

    def uniform(self, op: int, width: int) -> tuple[int, ...]:
        """The architecture with ``op`` in every block at bit index ``width`` in every block."""
        blocks = self.supernet.positions
        return (op,) * blocks + ((width,) * blocks if self.supernet.bits else ())

    def tables(self, design: Any) -> BlockTables:
        """The block tables on ``design``: one costing per (op, bit width) of the uniform architecture
        (on its own best design where ``design`` cannot run it, e.g. a 5x5 kernel on an engine built
        for 3x3: what moving there would cost with the design re-searched)."""
        blocks = self.supernet.positions
        ops = self.supernet.counts[0]
        widths = max(1, len(self.supernet.bits))
        table = np.zeros((blocks, ops, widths, len(self.metrics)))
        failed = np.zeros((ops, widths), dtype=bool)
        fixed = None
        for op in range(ops):
            for width in range(widths):
                arch = self.uniform(op, width)
                cost = self.on(arch, design) or self.best(arch)  # a design that cannot run it: its own design
                if cost is None:
                    failed[op, width] = True
                    continue
                per_layer = {layer.name: self._layer_values(layer) for layer in cost.layers}
                for p, names in enumerate(self.supernet.position_layers(arch)[:blocks]):
                    table[p, op, width] = sum((per_layer.get(n, 0.0) for n in names), np.zeros(len(self.metrics)))
                if fixed is None:
                    fixed = np.zeros(len(self.metrics))
                    for name in self.supernet.fixed_layers(arch):
                        fixed = fixed + per_layer.get(name, 0.0)
        if fixed is None:
            raise InfeasibleError(f"The design {design!r} runs no architecture of the space.",
                                  "Report this: a design the search picked runs the architecture it was picked for.")
        worst = table[:, ~failed].max(axis=1) if (~failed).any() else np.zeros((blocks, len(self.metrics)))
        table[:, failed] = FAILED_PENALTY * worst[:, None, :]
        return BlockTables(self.metrics, design, fixed, tuple(table))

    def _layer_values(self, layer: Any) -> np.ndarray:
        return np.array([float(getattr(layer, m) or 0.0) for m in self.metrics], dtype=np.float64)
