"""Resource budgets of an accelerator design or chip: the limits an exploration must respect.

One record for every ASIC-style template and for heterogeneous chips (whose PEs, area, buffers
and DRAM bandwidth are sums over their sub-accelerators). The FPGA template's limits are its
device's resources (DSP, BRAM, LUTs), which ``--hw-param dsp=...`` overrides on the device preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from nn2hw._checks import as_float, as_int
from nn2hw.errors import ConfigError
from nn2hw.hardware.records import ResourceUse
from nn2hw.registry import suggest

UNITS = {"pes": "PEs", "area": "mm^2", "sram": "KiB", "dram_bw": "words/cycle"}
"""Resource name -> unit, in the order reports list them."""


@dataclass(frozen=True)
class Budgets:
    """Limits a design must meet (None: unlimited): PEs, area (mm^2), buffer KiB, DRAM bandwidth
    (words per cycle). Each field is also an option of the ASIC-style templates (``--hw-param
    max_pes=...``, its ``help`` below) and a key of a hardware file's ``budgets``."""

    max_pes: int | None = field(default=None, metadata={"help": "PE budget of the exploration"})
    max_area_mm2: float | None = field(default=None, metadata={"help": "area budget (mm^2)"})
    max_sram_kib: float | None = field(default=None, metadata={"help": "buffer budget (KiB)"})
    max_dram_bw: float | None = field(default=None, metadata={"help": "DRAM bandwidth budget (words/cycle)"})

    def __post_init__(self) -> None:
        if self.max_pes is not None:
            object.__setattr__(self, "max_pes", as_int(self.max_pes, "PE budget (max_pes)"))
        for name in BUDGET_FIELDS[1:]:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, as_float(getattr(self, name), f"budget {name}"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Budgets:
        """Budgets from ``{name: limit}`` (e.g. ``budgets={"max_pes": 512}``); unknown names are an error."""
        unknown = sorted(str(k) for k in set(data) - set(BUDGET_FIELDS))
        if unknown:
            hint = "".join(suggest(u, BUDGET_FIELDS) for u in unknown)
            raise ConfigError(f"Unknown budget(s) {unknown}.{hint}", f"Budgets may limit: {', '.join(BUDGET_FIELDS)}.")
        return cls(**{str(k): v for k, v in data.items()})

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


BUDGET_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Budgets))
"""The budget names, in order: ``Budgets`` fields, template options and hardware-file keys."""
