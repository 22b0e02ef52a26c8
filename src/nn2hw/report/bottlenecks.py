"""The bottleneck report of a costed network: each layer's bottleneck, its share of the latency,
the share of every bottleneck label and the per-component cycle totals.

The labels and their meanings are the hardware template's (``HardwareTemplate.bottlenecks``:
the FPGA's O/I/W/C, the ASIC arrays' compute/mapping/fill-drain/sram-bandwidth/dram); the
template decided each layer's label when it costed it. This module reads cost records only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nn2hw.hardware.records import NetworkCost


@dataclass(frozen=True)
class LayerBottleneck:
    """One layer: its bottleneck and what it means, its cycles, its share of the network, and the
    cycle components that explain the bottleneck."""

    name: str
    bottleneck: str
    meaning: str
    cycles: float
    share: float
    breakdown_cycles: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bottleneck": self.bottleneck, "meaning": self.meaning, "cycles": self.cycles,
                "share": self.share, "breakdown_cycles": dict(self.breakdown_cycles)}


@dataclass(frozen=True)
class DetectReport:
    """Per-layer bottlenecks and the network summary: share of latency per bottleneck label and the
    totals of each cycle component."""

    layers: tuple[LayerBottleneck, ...]
    total_cycles: float
    share_by_bottleneck: Mapping[str, float] = field(default_factory=dict)
    component_cycles: Mapping[str, float] = field(default_factory=dict)

    def layers_bound_by(self, label: str) -> tuple[str, ...]:
        """Names of the layers whose bottleneck is ``label`` (e.g. 'W' or 'dram')."""
        return tuple(layer.name for layer in self.layers if layer.bottleneck == label)

    @property
    def dominant(self) -> str | None:
        """The bottleneck holding the largest share of latency (None for an empty network)."""
        shares = {k: v for k, v in self.share_by_bottleneck.items() if v > 0}
        return max(shares, key=shares.__getitem__) if shares else None

    def to_dict(self) -> dict[str, Any]:
        return {"total_cycles": self.total_cycles, "share_by_bottleneck": dict(self.share_by_bottleneck),
                "component_cycles": dict(self.component_cycles), "dominant": self.dominant,
                "layers": [layer.to_dict() for layer in self.layers]}


def detect(cost: NetworkCost, vocabulary: Mapping[str, str] | None = None) -> DetectReport:
    """Bottleneck of every costed layer and the network summary.

    ``vocabulary`` (the template's labels -> meanings) gives every label a share, zero when no
    layer has it, in the template's order; labels outside it are listed after, as seen.
    """
    vocabulary = vocabulary or {}
    total = cost.total_cycles
    records = tuple(LayerBottleneck(layer.name, layer.bottleneck, vocabulary.get(layer.bottleneck, layer.bottleneck),
                                    layer.cycles, share, dict(layer.breakdown_cycles))
                    for layer, share in zip(cost.layers, _shares(cost), strict=True))
    labels = list(dict.fromkeys([*vocabulary, *(r.bottleneck for r in records)]))
    shares = {k: sum(r.share for r in records if r.bottleneck == k) for k in labels}
    components: dict[str, float] = {}
    for r in records:
        for key, value in r.breakdown_cycles.items():
            components[key] = components.get(key, 0.0) + float(value)
    return DetectReport(records, total, shares, components)



def _shares(cost: NetworkCost) -> list[float]:
    """Each layer's share of the network: of its cycles (as ``total_cycles`` counts them), or of its
    milliseconds on a template that counts no cycles (a measured CPU)."""
    if cost.total_cycles:
        return [layer.cycles / cost.total_cycles for layer in cost.layers]
    whole = cost.latency_ms
    return [layer.latency_ms / whole if whole else 0.0 for layer in cost.layers]
