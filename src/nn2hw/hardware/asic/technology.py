"""Technology tables (per-access energies, areas, clock) and design presets, read from data.

The numbers live in ``nn2hw/hardware/devices/asic_technology.json`` and ``asic_presets.json``
with the source of each one; this module loads them and turns access counts into energy and
PE/buffer counts into area, vectorized with NumPy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from nn2hw.errors import ConfigError, UnknownNameError
from nn2hw.hardware._types import Floats
from nn2hw.registry import suggest

DEFAULT_TECHNOLOGY = "45nm"
_NUMBER_FIELDS = ("node_nm", "clock_mhz", "word_bits", "mac_pj", "vector_op_pj", "rf_pj", "noc_pj", "sram_pj",
                  "sram_ref_kib", "dram_pj", "mac_um2", "reg_um2_per_word", "sram_mm2_per_kib")


@dataclass(frozen=True)
class Technology:
    """Per-access energies (pJ per ``word_bits`` word; the MAC per 16x16-bit multiply-accumulate; a
    vector op per element operation of the vector unit), areas (um^2 per MAC and per register word,
    mm^2 per KiB of SRAM) and the default clock."""

    name: str
    node_nm: float
    clock_mhz: float
    word_bits: int
    mac_pj: float
    vector_op_pj: float
    rf_pj: float
    noc_pj: float
    sram_pj: float
    sram_ref_kib: float
    sram_size_exponent: float
    sram_fill_pj: float | None  # per word written into a buffer from DRAM (None: a normal buffer access)
    dram_pj: float
    mac_um2: float
    reg_um2_per_word: float
    sram_mm2_per_kib: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in _NUMBER_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"Technology {self.name!r}: {name} must be a positive number, got {value!r}.",
                                  f"Fix {name} in asic_technology.json.")
        if self.sram_size_exponent < 0:
            raise ConfigError(f"Technology {self.name!r}: sram_size_exponent must be >= 0.",
                              "Use 0 (size-independent) or e.g. 0.5 (sqrt scaling).")

    def sram_word_pj(self, kib: np.ndarray | float) -> Floats:
        """Energy of one buffer access (pJ per word) for buffers of ``kib`` KiB (vectorized)."""
        size: Floats = np.maximum(np.asarray(kib, dtype=float), 1e-9)
        return self.sram_pj * (size / self.sram_ref_kib) ** self.sram_size_exponent

    def area_mm2(self, pes: np.ndarray | float, reg_words_per_pe: np.ndarray | float,
                 sram_kib: np.ndarray | float) -> np.ndarray:
        """Area of ``pes`` MACs with their register words plus ``sram_kib`` of buffers, in mm^2."""
        logic_um2 = np.asarray(pes, dtype=float) * (self.mac_um2 + np.asarray(reg_words_per_pe) * self.reg_um2_per_word)
        return logic_um2 * 1e-6 + np.asarray(sram_kib, dtype=float) * self.sram_mm2_per_kib

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{f: getattr(self, f) for f in _NUMBER_FIELDS},
                "sram_size_exponent": self.sram_size_exponent, "sram_fill_pj": self.sram_fill_pj}


def _read_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("nn2hw.hardware").joinpath("devices", name).read_text())
    return data


@lru_cache(maxsize=1)
def load_technologies() -> dict[str, Technology]:
    """All technology presets of ``devices/asic_technology.json``, by name."""
    data = _read_json("asic_technology.json")
    return {name: Technology(name=name, **spec) for name, spec in data.items() if not name.startswith("_")}


def get_technology(name: str | Technology | None) -> Technology:
    """The preset called ``name`` (default 45 nm), or ``name`` itself when already a record."""
    if isinstance(name, Technology):
        return name
    presets = load_technologies()
    key = DEFAULT_TECHNOLOGY if name is None else name
    if key not in presets:
        raise UnknownNameError(f"Unknown ASIC technology {key!r}.{suggest(str(key), list(presets))}",
                               f"Use one of: {', '.join(presets)} (see hardware/devices/asic_technology.json).")
    return presets[key]


@lru_cache(maxsize=1)
def load_presets() -> dict[str, dict[str, dict[str, Any]]]:
    """Design presets per template: ``{template: {preset: {"params": {...}, "sources": {...}}}}``."""
    data = _read_json("asic_presets.json")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def preset_params(template: str, preset: str) -> dict[str, Any]:
    """The parameters of design preset ``preset`` of ``template``, with a clear error if unknown."""
    presets = load_presets().get(template, {})
    if preset not in presets:
        raise UnknownNameError(f"Template {template!r} has no design preset {preset!r}."
                               f"{suggest(preset, list(presets))}",
                               f"Use one of: {', '.join(presets) or '(none)'}.")
    return dict(presets[preset]["params"])
