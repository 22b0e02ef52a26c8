"""Cost records of the ASIC templates: per-layer energy per memory level, accesses and mapping,
network totals with compute (stall-free) cycles, and the records built from ``CostArrays``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn2hw.hardware.asic.arrays import BOTTLENECKS, CostArrays, OpTable
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.records import LayerCost, NetworkCost, ResourceUse


@dataclass(frozen=True)
class AsicLayerCost(LayerCost):
    """A layer's cost on an ASIC dataflow: ``breakdown_cycles`` holds compute_cycles (no stall),
    mac/mapping/fill-drain shares and stall cycles; energy per level and word accesses too."""

    energy_breakdown_mj: Mapping[str, float] = field(default_factory=dict)
    accesses: Mapping[str, float] = field(default_factory=dict)
    mapping: str = ""

    @property
    def compute_cycles(self) -> float:
        return self.breakdown_cycles.get("compute_cycles", self.cycles)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "compute_cycles": self.compute_cycles,
                "stall_cycles": self.breakdown_cycles.get("stall_cycles", 0.0),
                "energy_breakdown_mj": dict(self.energy_breakdown_mj), "accesses": dict(self.accesses),
                "mapping": self.mapping}


@dataclass(frozen=True)
class AsicNetworkCost(NetworkCost):
    """A workload's cost on one ASIC design; adds compute cycles (no stalls) and energy/area parts."""

    area_breakdown_mm2: Mapping[str, float] = field(default_factory=dict)
    technology: str = ""

    @property
    def compute_cycles(self) -> float:
        return sum(getattr(layer, "compute_cycles", layer.cycles) for layer in self.critical_layers())

    @property
    def stall_cycles(self) -> float:
        return self.total_cycles - self.compute_cycles

    @property
    def energy_mj(self) -> float:
        """Every layer an ASIC template costs carries its energy."""
        return sum(layer.energy_mj for layer in self.layers if layer.energy_mj is not None)

    def energy_breakdown_mj(self) -> dict[str, float]:
        parts: dict[str, float] = {}
        for layer in self.layers:
            for level, value in getattr(layer, "energy_breakdown_mj", {}).items():
                parts[level] = parts.get(level, 0.0) + value
        return parts

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update({"compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
                    "energy_breakdown_mj": self.energy_breakdown_mj(),
                    "area_breakdown_mm2": dict(self.area_breakdown_mm2), "technology": self.technology})
        return out


VECTOR_NOTE = ("element-wise ops (pooling, adds, softmax, norms, embedding gathers) run on a vector unit, one "
               "element operation per lane per cycle; their operands and results pass through DRAM like the array "
               "layers' activations (an upper bound where a chip fuses them into the producer); its area is not "
               "modelled")


def network_cost(template: str, tech: Technology, design: Mapping[str, Any], table: OpTable, arrays: CostArrays,
                 d: int, clock_mhz: float, notes: Sequence[str] = (),
                 resources: Sequence[ResourceUse] = ()) -> AsicNetworkCost:
    """The records of design ``d`` of ``arrays``: one ``AsicLayerCost`` per op with cycles, the ops
    without cycles of their own as the table explains them, and totals."""
    total = arrays.total[d]
    parts = {k: v[d] for k, v in arrays.components().items()}
    labels = np.array(BOTTLENECKS)[arrays.bottleneck_index()[d]]
    per_cycle_ms = 1.0 / (clock_mhz * 1e3)
    layers = []
    for i, name in enumerate(table.names):
        breakdown = {
            "compute_cycles": float(arrays.compute[d, i]), "mac_cycles": float(parts["compute"][i]),
            "mapping_cycles": float(parts["mapping"][i]), "fill_drain_cycles": float(parts["fill-drain"][i]),
            "sram_stall_cycles": float(parts["sram-bandwidth"][i]), "dram_stall_cycles": float(parts["dram"][i]),
            "stall_cycles": float(total[i] - arrays.compute[d, i]),
            "sram_cycles": float(arrays.sram[d, i]), "dram_cycles": float(arrays.dram[d, i]),
        }
        energy = {level: float(values[d, i]) * 1e-9 for level, values in arrays.energy_pj.items()}
        layers.append(AsicLayerCost(
            name=name, op=table.ops[i], macs=int(table.macs[i]), cycles=float(total[i]),
            latency_ms=float(total[i]) * per_cycle_ms, bottleneck=str(labels[i]), breakdown_cycles=breakdown,
            energy_mj=sum(energy.values()), engine=template, energy_breakdown_mj=energy,
            accesses={k: float(v[d, i]) for k, v in arrays.traffic.items()},
            mapping=arrays.mapping(d, i) if arrays.mapping else "", execution=table.executions[i],
        ))
    return AsicNetworkCost(
        template=template, device=tech.name, design=dict(design), clock_mhz=clock_mhz, layers=tuple(layers),
        uncosted=table.uncosted, resources=tuple(resources), area_mm2=float(arrays.area_mm2[d]),
        notes=(*notes, VECTOR_NOTE) if len(table.vector) else tuple(notes),
        area_breakdown_mm2={k: float(v[d]) for k, v in arrays.area_parts_mm2.items()}, technology=tech.name,
    )
