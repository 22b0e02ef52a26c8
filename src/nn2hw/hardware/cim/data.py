"""The crossbar template's tables, read from data: per-component energies and areas (ISAAC's,
32 nm) and the device presets (ReRAM-, FeFET-, PCM-like), each number with its source in
``nn2hw/hardware/devices/cim.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from nn2hw.errors import HardwareError, UnknownNameError
from nn2hw.hardware._types import Floats
from nn2hw.registry import suggest

ON_OFF_RANGE = (1.0, 1e6)
"""On/off conductance ratios a device may declare: above 1 (on conducts more) up to 10^6."""
SIGMA_MAX = 1.0
"""The largest programming variation: one standard deviation equal to the whole conductance range."""
MAX_LEVELS = 1 << 16


def _read() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("nn2hw.hardware").joinpath("devices", "cim.json").read_text())
    return data


def check_sigma(value: float, where: str) -> float:
    """``value`` as a programming variation in [0, 1]; a HardwareError naming ``where`` otherwise."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= SIGMA_MAX):
        raise HardwareError(f"{where}: sigma={value!r} is outside 0..{SIGMA_MAX:g} (the standard deviation of a "
                            "programmed conductance, relative to the conductance range).",
                            "Give sigma as a fraction of the range, e.g. sigma=0.05 for 5 %.")
    return float(value)


def check_on_off(value: float, where: str) -> float:
    """``value`` as an on/off ratio in (1, 10^6]; a HardwareError naming ``where`` otherwise."""
    low, high = ON_OFF_RANGE
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and low < value <= high):
        raise HardwareError(f"{where}: on/off ratio {value!r} is outside ({low:g}, {high:g}]: the on state must "
                            "conduct more than the off state, and ratios above 10^6 are not physical cells.",
                            "Give on_off_ratio as e.g. 10 (ReRAM) or 1000 (PCM).")
    return float(value)


@dataclass(frozen=True)
class Device:
    """A memory cell: conductance on/off ratio, levels it can be programmed to, programming
    variation ``sigma`` (relative to the range), read noise, drift exponent and stuck-at rates (None
    where no source gives one: not modelled), cell area (F^2) and write energy/pulse."""

    name: str
    description: str
    on_off_ratio: float
    levels: int
    sigma: float | None
    read_noise: float | None
    drift_nu: float | None
    stuck_at_off: float | None
    stuck_at_on: float | None
    cell_f2: float
    write_pj: float | None
    write_ns: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        where = f"CIM device {self.name!r}"
        check_on_off(self.on_off_ratio, where)
        if not (isinstance(self.levels, int) and 2 <= self.levels <= MAX_LEVELS):
            raise HardwareError(f"{where}: levels={self.levels!r} is not a whole number in 2..{MAX_LEVELS}.",
                                "Fix levels in cim.json (2 for a binary cell).")
        if self.sigma is not None:
            check_sigma(self.sigma, where)
        for name in ("read_noise", "drift_nu", "stuck_at_off", "stuck_at_on"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise HardwareError(f"{where}: {name}={value!r} is outside 0..1.", f"Fix {name} in cim.json.")
        for name in ("cell_f2", "write_ns", *(("write_pj",) if self.write_pj is not None else ())):
            if not getattr(self, name) > 0:
                raise HardwareError(f"{where}: {name} must be positive.", f"Fix {name} in cim.json.")

    @property
    def max_cell_bits(self) -> int:
        """The most bits one cell holds: log2 of its levels, rounded down."""
        return math.floor(math.log2(self.levels))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "description", "on_off_ratio", "levels", "sigma", "read_noise",
                                               "drift_nu", "stuck_at_off", "stuck_at_on", "cell_f2", "write_pj",
                                               "write_ns")}


@dataclass(frozen=True)
class Components:
    """Per-component energies (pJ), areas (um^2, mm^2 per tile where named) and times (ns) of the
    crossbar tile, and the tile's organization (arrays per IMA, IMAs per tile)."""

    node_nm: float
    clock_mhz: float
    adc_bits: tuple[int, ...]
    adc_pj: tuple[float, ...]
    adc_um2: tuple[float, ...]
    adc_gsps_at_8_bits: float
    dac_pj_1bit: float
    dac_um2_1bit: float
    crossbar_read_ns: float
    crossbar_read_pj_128x128: float
    shift_add_pj: float
    shift_add_um2: float
    edram_pj_per_bit: float
    edram_mm2_per_tile: float
    edram_kib_per_tile: float
    bus_pj_per_bit: float
    bus_mm2_per_tile: float
    router_pj_per_bit: float
    router_mm2_per_tile: float
    bus_bits_per_cycle: float
    arrays_per_ima: int
    imas_per_tile: int

    @property
    def arrays_per_tile(self) -> int:
        return self.arrays_per_ima * self.imas_per_tile

    def _adc(self, bits: np.ndarray, table: tuple[float, ...]) -> Floats:
        """A table value at ``bits``: the table inside its range, x 2 per bit outside it."""
        b = np.asarray(bits, dtype=float)
        lo, hi = self.adc_bits[0], self.adc_bits[-1]
        inside: Floats = np.interp(np.clip(b, lo, hi), self.adc_bits, table)
        scale: Floats = 2.0 ** (b - np.clip(b, lo, hi))
        values: Floats = inside * scale
        return values

    def adc_energy_pj(self, bits: np.ndarray) -> Floats:
        """Energy of one conversion at ``bits`` (vectorized)."""
        return self._adc(bits, self.adc_pj)

    def adc_area_um2(self, bits: np.ndarray) -> Floats:
        return self._adc(bits, self.adc_um2)

    def adc_ns(self, bits: np.ndarray) -> Floats:
        """Time of one conversion at ``bits``: 1/rate at 8 bits, scaled by bits / 8."""
        ns: Floats = np.asarray(bits, dtype=float) / 8.0 / self.adc_gsps_at_8_bits
        return ns

    def dac_energy_pj(self, bits: np.ndarray) -> Floats:
        pj: Floats = self.dac_pj_1bit * 2.0 ** (np.asarray(bits, dtype=float) - 1)
        return pj

    def dac_area_um2(self, bits: np.ndarray) -> Floats:
        um2: Floats = self.dac_um2_1bit * 2.0 ** (np.asarray(bits, dtype=float) - 1)
        return um2

    def crossbar_read_pj(self, rows: np.ndarray, cols: np.ndarray) -> Floats:
        pj: Floats = self.crossbar_read_pj_128x128 * (np.asarray(rows, dtype=float) * cols) / (128.0 * 128.0)
        return pj

    def cell_um2(self, device: Device) -> float:
        """One cell's area: its F^2 at the technology node."""
        return device.cell_f2 * (self.node_nm * 1e-3) ** 2


@lru_cache(maxsize=1)
def components() -> Components:
    data = _read()
    table = {k: v for k, v in data["components"].items() if k not in ("sources", "crossbar_cell_f2")}
    tech = {k: v for k, v in data["technology"].items() if k != "sources"}
    values: dict[str, Any] = {**tech, **{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}}
    return Components(**values)


@lru_cache(maxsize=1)
def devices() -> dict[str, Device]:
    return {name: Device(name=name, **entry) for name, entry in _read()["devices"].items()}


def get_device(name: str) -> Device:
    known = devices()
    if name not in known:
        raise UnknownNameError(f"Unknown CIM device {name!r}.{suggest(name, list(known))}",
                               f"Use one of: {', '.join(known)} (e.g. --hardware cim:reram).")
    return known[name]


def sources() -> dict[str, Any]:
    """Every number's source: the components' and each device's."""
    data = _read()
    return {"technology": data["technology"]["sources"], "components": data["components"]["sources"],
            **{name: entry["sources"] for name, entry in data["devices"].items()}}
