"""Resource budgets of an accelerator design or chip: the limits an exploration must respect.

One record for every ASIC-style template and for heterogeneous chips (whose PEs, area, buffers
and DRAM bandwidth are sums over their sub-accelerators). The FPGA template's limits are its
device's resources (DSP, BRAM, LUTs), which ``--hw-param dsp=...`` overrides on the device preset.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from nn2hw._checks import as_float, as_int
from nn2hw.hardware.records import ResourceUse

UNITS = {"pes": "PEs", "area": "mm^2", "sram": "KiB", "dram_bw": "words/cycle"}
"""Resource name -> unit, in the order reports list them."""


@dataclass(frozen=True)
class Budgets:
    """Limits a design must meet (None: unlimited): PEs, area (mm^2), buffer KiB, DRAM bandwidth
    (words per cycle)."""

    max_pes: int | None = None
    max_area_mm2: float | None = None
    max_sram_kib: float | None = None
    max_dram_bw: float | None = None

    def __post_init__(self) -> None:
        if self.max_pes is not None:
            object.__setattr__(self, "max_pes", as_int(self.max_pes, "PE budget (max_pes)"))
        for name in ("max_area_mm2", "max_sram_kib", "max_dram_bw"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, as_float(getattr(self, name), f"budget {name}"))

    @property
    def limits(self) -> dict[str, float | None]:
        """Resource name -> limit (None: unlimited)."""
        return {"pes": self.max_pes, "area": self.max_area_mm2, "sram": self.max_sram_kib, "dram_bw": self.max_dram_bw}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def resources(self, pes: float, area: float, sram_kib: float, dram_bw: float) -> tuple[ResourceUse, ...]:
        """The use of every limited resource against its limit."""
        used = {"pes": pes, "area": area, "sram": sram_kib, "dram_bw": dram_bw}
        return tuple(ResourceUse(name, float(used[name]), float(limit), UNITS[name])
                     for name, limit in self.limits.items() if limit is not None)

    def mask(self, pes: np.ndarray, area: np.ndarray, sram_kib: np.ndarray, dram_bw: np.ndarray) -> np.ndarray:
        """Which of many designs fit every limit (vectorized)."""
        ok = np.ones(np.shape(pes), dtype=bool)
        for used, limit in zip((pes, area, sram_kib, dram_bw), self.limits.values()):
            if limit is not None:
                ok &= used <= limit + 1e-9
        return ok
