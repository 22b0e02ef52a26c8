"""FPGA device presets (DSP, BRAM18, LUT/LUTRAM, port width, default clock), read from data.

The numbers live in ``nn2hw/hardware/devices/fpga.json`` with the source of each one; this
module only loads and validates them. A user may override any budget (``dsp=``, ``bram18=``,
``lutram=``, ``port_bits=``) to model a device that is not listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from nn2hw.errors import ConfigError, UnknownNameError
from nn2hw.registry import suggest

DEFAULT_DEVICE = "zcu102"
BUDGET_FIELDS = ("dsp", "bram18", "lut", "lutram", "port_bits")
"""Device fields a user may override with ``--hw-param``."""


@dataclass(frozen=True)
class FpgaDevice:
    """One FPGA's resource budget. ``bram18`` counts 18 Kb block RAMs; ``lutram`` the LUTs that
    can serve as distributed RAM; ``port_bits`` the AXI width the three ports share per clock."""

    name: str
    board: str
    part: str
    dsp: int
    bram18: int
    lut: int
    lutram: int
    port_bits: int
    clock_mhz: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in BUDGET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Device {self.name!r}: {name} must be a positive integer, got {value!r}.",
                                  f"Give {name} as a positive whole number.")
        if not isinstance(self.clock_mhz, (int, float)) or isinstance(self.clock_mhz, bool) or self.clock_mhz <= 0:
            raise ConfigError(f"Device {self.name!r}: clock_mhz must be a positive number, got {self.clock_mhz!r}.",
                              "Give the clock in MHz, e.g. 200.")

    def with_budgets(self, **budgets: int) -> FpgaDevice:
        """The same device with some budgets replaced (named ``<name>*`` so reports show it)."""
        if not budgets:
            return self
        changed: dict[str, Any] = {k: v for k, v in budgets.items() if getattr(self, k) != v}  # by field name
        if not changed:
            return self
        note = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
        return replace(self, name=f"{self.name}*", board=f"{self.board} (overridden: {note})", **changed)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "board": self.board, "part": self.part, "dsp": self.dsp, "bram18": self.bram18,
                "lut": self.lut, "lutram": self.lutram, "port_bits": self.port_bits, "clock_mhz": self.clock_mhz}


@lru_cache(maxsize=1)
def load_devices() -> dict[str, FpgaDevice]:
    """All presets of ``devices/fpga.json``, by name."""
    text = resources.files("nn2hw.hardware").joinpath("devices", "fpga.json").read_text()
    data = json.loads(text)
    return {name: FpgaDevice(name=name, **spec) for name, spec in data.items() if not name.startswith("_")}


def get_device(device: str | FpgaDevice | None) -> FpgaDevice:
    """The preset called ``device`` (default ZCU102), or ``device`` itself when already a record."""
    if isinstance(device, FpgaDevice):
        return device
    presets = load_devices()
    name = DEFAULT_DEVICE if device is None else device
    if name not in presets:
        raise UnknownNameError(f"Unknown FPGA device {name!r}.{suggest(str(name), list(presets))}",
                               f"Use one of: {', '.join(presets)} (e.g. --hardware fpga:zcu102), or override "
                               "budgets with --hw-param dsp=... bram18=... port_bits=....")
    return presets[name]
