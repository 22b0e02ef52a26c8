"""iDetect: which of output store (O), input load (I), weight load (W) or compute (C) limits each layer.

The rule is HotNAS's (reference notes 2.4), checked in this order: **O** when storing the output
tile takes at least as long as the whole input-channel loop (Lat2 == tO); else **I** when the
input load is the longest part of a step (Lat1 == tI); else **W** (Lat1 == tW); else **C**. The
FPGA template's per-component totals share their trip-count factors (I, W and C are per-step
times x ceil(N/Tn) x tiles, O is per-tile time x tiles), so the rule applied to the totals is the
rule applied to the steps. No torch here: this reads cost records only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nn2hw.hardware.base import NetworkCost

BOTTLENECK_NAMES = {"O": "storing output", "I": "loading input", "W": "loading weights", "C": "computing"}
COMPONENTS = ("input", "weight", "output", "compute")
"""Keys of ``LayerCost.breakdown_cycles`` the rule reads (total cycles of each activity)."""
_LETTER = {"input": "I", "weight": "W", "output": "O", "compute": "C"}


def classify(breakdown: Mapping[str, float]) -> str:
    """The bottleneck letter of one layer from its input/weight/output/compute totals."""
    t_in, t_weight, t_out, t_comp = (float(breakdown[k]) for k in COMPONENTS)
    step = max(t_in, t_weight, t_comp)
    if t_out >= step:
        return "O"
    if t_in == step:
        return "I"
    if t_weight == step:
        return "W"
    return "C"


@dataclass(frozen=True)
class LayerBottleneck:
    """One layer: its bottleneck, its cycles, its share of the network, and the component totals."""

    name: str
    bottleneck: str
    cycles: float
    share: float
    input_cycles: float
    weight_cycles: float
    output_cycles: float
    compute_cycles: float

    @property
    def meaning(self) -> str:
        return BOTTLENECK_NAMES.get(self.bottleneck, self.bottleneck)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bottleneck": self.bottleneck, "meaning": self.meaning, "cycles": self.cycles,
                "share": self.share, "input_cycles": self.input_cycles, "weight_cycles": self.weight_cycles,
                "output_cycles": self.output_cycles, "compute_cycles": self.compute_cycles}


@dataclass(frozen=True)
class DetectReport:
    """Per-layer bottlenecks and the network summary: share of latency per bottleneck and the
    totals of input, weight and output transfer and compute cycles."""

    layers: tuple[LayerBottleneck, ...]
    total_cycles: float
    share_by_bottleneck: Mapping[str, float] = field(default_factory=dict)
    component_cycles: Mapping[str, float] = field(default_factory=dict)

    def layers_bound_by(self, letter: str) -> tuple[str, ...]:
        """Names of the layers whose bottleneck is ``letter`` (O, I, W or C)."""
        return tuple(layer.name for layer in self.layers if layer.bottleneck == letter)

    @property
    def dominant(self) -> str | None:
        """The bottleneck holding the largest share of latency (None for an empty network)."""
        shares = {k: v for k, v in self.share_by_bottleneck.items() if v > 0}
        return max(shares, key=shares.__getitem__) if shares else None

    def to_dict(self) -> dict[str, Any]:
        return {"total_cycles": self.total_cycles, "share_by_bottleneck": dict(self.share_by_bottleneck),
                "component_cycles": dict(self.component_cycles), "dominant": self.dominant,
                "layers": [layer.to_dict() for layer in self.layers]}


def detect(cost: NetworkCost) -> DetectReport:
    """Bottleneck of every costed layer and the network summary.

    Layers whose breakdown has the four components are classified by the rule above; others
    (templates with another breakdown) keep the bottleneck their template reported.
    """
    total = cost.total_cycles
    records = []
    for layer in cost.layers:
        parts = {k: float(layer.breakdown_cycles.get(k, 0.0)) for k in COMPONENTS}
        letter = classify(parts) if all(k in layer.breakdown_cycles for k in COMPONENTS) else layer.bottleneck
        records.append(LayerBottleneck(layer.name, letter, layer.cycles, layer.cycles / total if total else 0.0,
                                       parts["input"], parts["weight"], parts["output"], parts["compute"]))
    used = [r.bottleneck for r in records]
    fpga = [k for k in BOTTLENECK_NAMES] if any(k in BOTTLENECK_NAMES for k in used) else []
    letters = list(dict.fromkeys([*fpga, *used]))  # all four O/I/W/C on the FPGA, else the labels seen
    shares = {k: sum(r.cycles for r in records if r.bottleneck == k) / total if total else 0.0 for k in letters}
    components = {k: sum(getattr(r, f"{k}_cycles") for r in records) for k in COMPONENTS}
    return DetectReport(tuple(records), total, shares, components)
