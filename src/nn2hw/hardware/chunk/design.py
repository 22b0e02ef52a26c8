"""Designs of the chunk-pipelined accelerator: one ``SubDesign`` per sub-accelerator, their text forms,
and the per-sub-accelerator grids the exploration enumerates (Auto-NBA's ``design_choice_gen``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

import numpy as np

from nn2hw._checks import as_int
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware.chunk.model import DW_MODES, MODES, Designs

FIELDS = ("comp_mode", "Tr_b", "Tc_b", "Tm_b", "Tn_b", "tr", "tc", "tm", "tn", "q")
"""Auto-NBA's design vector of one sub-accelerator, in its order."""
BITS = (4, 6, 8, 16)
"""Datapath widths q: Auto-NBA's {4, 6, 8} and its default 16 for layers left unquantized."""
UNROLLS = (("tr", "Tr_b"), ("tc", "Tc_b"), ("tm", "Tm_b"), ("tn", "Tn_b"))

_CIFAR_BIG = {"rows": (16, 8, 4, 2, 1), "channels": (8, 4, 2, 1)}
_CIFAR_SMALL = {"rows": (4, 2, 1), "channels": (32, 16, 8, 4, 2, 1)}
_IMAGENET_BIG = {"rows": (28, 14, 7, 2, 1), "channels": (8, 4, 2, 1)}
_IMAGENET_SMALL = {"rows": (7, 2, 1), "channels": (32, 16, 8, 4, 2, 1)}
SPACES = {("cifar", 0): _CIFAR_BIG, ("cifar", 1): _CIFAR_SMALL,
          ("imagenet", 0): _IMAGENET_BIG, ("imagenet", 1): _IMAGENET_SMALL}
"""Tile and unroll choices per (layout, a0 = large maps | a1 = small maps), as Auto-NBA's
``design_choice_gen`` (tiles and unrolls share the values; unroll <= tile)."""
SPLIT = {"cifar": 16, "imagenet": 28}
"""Feature size (output rows) from which a layer goes to the large-map sub-accelerator a0."""


@dataclass(frozen=True)
class SubDesign:
    """One sub-accelerator: compute mode, buffer tiles ``*_b``, PE unrolls, datapath bits ``q``."""

    comp_mode: int
    Tr_b: int
    Tc_b: int
    Tm_b: int
    Tn_b: int
    tr: int
    tc: int
    tm: int
    tn: int
    q: int

    def check(self, name: str, depthwise: bool, bits: int) -> None:
        """A HardwareError naming the field and the fix when the design cannot run ``name``'s layers."""
        modes = DW_MODES if depthwise else MODES
        if self.comp_mode not in modes:
            raise HardwareError(
                f"Sub-accelerator {name!r} has comp_mode={self.comp_mode}; a "
                f"{'depthwise' if depthwise else 'standard'} one runs modes {modes} "
                "(0: output channels, 1: output x input channels, 2: rows).",
                f"Set its comp_mode to one of {modes}.")
        for unroll, tile in UNROLLS:
            if getattr(self, unroll) > getattr(self, tile):
                raise HardwareError(
                    f"Sub-accelerator {name!r} unrolls {unroll}={getattr(self, unroll)} over a buffer tile "
                    f"{tile}={getattr(self, tile)}; the PE unroll must not exceed the tile it unrolls.",
                    f"Lower {unroll} to at most {getattr(self, tile)} or raise {tile}.")
        if self.q not in BITS:
            raise HardwareError(f"Sub-accelerator {name!r} has q={self.q} bits; the datapath widths are {BITS}.",
                                f"Set q to one of {BITS}.")
        if self.q < bits:
            raise HardwareError(f"Sub-accelerator {name!r} has a {self.q}-bit datapath but runs {bits}-bit layers.",
                                f"Set its q to at least {bits}.")
        if depthwise and (self.Tn_b, self.tn) != (1, 1):
            raise HardwareError(f"Depthwise sub-accelerator {name!r} has Tn_b={self.Tn_b}, tn={self.tn}; a depthwise "
                                "layer has no input-channel loop (Auto-NBA requires both to be 1).",
                                "Set Tn_b=1 and tn=1.")

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def label(self) -> str:
        return f"m{self.comp_mode} {self.Tr_b}x{self.Tc_b}x{self.Tm_b}x{self.Tn_b}/" \
               f"{self.tr}x{self.tc}x{self.tm}x{self.tn} q{self.q}"


@dataclass(frozen=True)
class ChunkDesign:
    """A chunk-pipelined accelerator: sub-accelerator name (``a0q8``, ``dwa1q16``...) -> its design."""

    subs: tuple[tuple[str, SubDesign], ...]

    def __iter__(self) -> Iterator[tuple[str, SubDesign]]:
        return iter(self.subs)

    def get(self, name: str) -> SubDesign | None:
        return dict(self.subs).get(name)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: sub.to_dict() for name, sub in self.subs}

    @property
    def label(self) -> str:
        return "; ".join(f"{name} {sub.label}" for name, sub in self.subs)


def stage_name(depthwise: bool, large: bool, bits: int) -> str:
    """Auto-NBA's sub-accelerator names: ``[dw]a{0 large maps | 1 small}q{bits}``."""
    return f"{'dw' if depthwise else ''}a{0 if large else 1}q{bits}"


def _sub(name: str, value: Any) -> SubDesign:
    if isinstance(value, SubDesign):
        return value
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in FIELDS]
        missing = [f for f in FIELDS if f not in value]
        if unknown or missing:
            raise ConfigError(f"Sub-accelerator {name!r}: {'unknown fields ' + str(unknown) if unknown else ''}"
                              f"{' and ' if unknown and missing else ''}"
                              f"{'missing fields ' + str(missing) if missing else ''}.",
                              f"Give every field of {', '.join(FIELDS)}.")
        value = [value[f] for f in FIELDS]
    if not isinstance(value, Sequence) or len(value) != len(FIELDS):
        raise ConfigError(f"Sub-accelerator {name!r}: {value!r} is not the {len(FIELDS)} values "
                          f"{','.join(FIELDS)}.", "Write it as e.g. a0q16=1,16,16,8,8,4,4,8,8,16.")
    numbers = [as_int(v, f"{name}.{f}", lo=0 if f == "comp_mode" else 1) for f, v in zip(FIELDS, value)]
    return SubDesign(*numbers)


def parse_design(value: Any) -> ChunkDesign:
    """A design from a ``ChunkDesign``, a mapping (name -> values or field mapping), JSON text, or
    ``NAME=v1,...,v10;NAME=...`` text; the values are checked against each layer in ``cost``."""
    if isinstance(value, ChunkDesign):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise ConfigError(f"The chunk design is not valid JSON: {error}.",
                                  "Give a JSON object of sub-accelerator -> field values.") from None
        else:
            pairs = [part.split("=", 1) for part in text.split(";") if part.strip()]
            if not pairs or any(len(p) != 2 for p in pairs):
                raise ConfigError(f"Cannot read a chunk design from {text!r}.",
                                  "Write NAME=comp_mode,Tr_b,Tc_b,Tm_b,Tn_b,tr,tc,tm,tn,q per sub-accelerator, "
                                  "separated by ';' (e.g. a0q16=1,16,16,8,8,4,4,8,8,16;a1q16=...), or use --explore.")
            value = {name.strip(): subs for name, subs in pairs}
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"Cannot read a chunk design from {type(value).__name__}.",
                          "Give a mapping of sub-accelerator name -> its 10 values, or use --explore.")
    return ChunkDesign(tuple((str(name), _sub(str(name), sub)) for name, sub in value.items()))


def default_axes(layout: str, large: bool, depthwise: bool, bits: int) -> dict[str, tuple[int, ...]]:
    """The reference's choices for one sub-accelerator (comp_mode, tiles, unrolls; q = its layers' bits)."""
    space = SPACES[layout, 0 if large else 1]
    rows, channels = space["rows"], space["channels"]
    return {"comp_mode": DW_MODES if depthwise else MODES, "Tr_b": rows, "Tc_b": rows, "Tm_b": channels,
            "Tn_b": (1,) if depthwise else channels, "tr": rows, "tc": rows, "tm": channels,
            "tn": (1,) if depthwise else channels, "q": (bits,)}


def enumerate_designs(axes: Mapping[str, Sequence[int]]) -> Designs:
    """Every combination of ``axes`` with each unroll <= its tile, as columns (grid order)."""
    def pairs(unroll: str, tile: str) -> np.ndarray:
        return np.array([(t, u) for t in axes[tile] for u in axes[unroll] if u <= t], dtype=float).reshape(-1, 2)

    parts = [np.array(axes["comp_mode"], dtype=float).reshape(-1, 1),
             *(pairs(u, t) for u, t in UNROLLS), np.array(axes["q"], dtype=float).reshape(-1, 1)]
    index = np.meshgrid(*(np.arange(len(p)) for p in parts), indexing="ij")
    cols = [p[i.ravel()] for p, i in zip(parts, index)]
    mode, (Tr, tr), (Tc, tc), (Tm, tm), (Tn, tn), q = cols[0][:, 0], *(c.T for c in cols[1:5]), cols[5][:, 0]
    return Designs(mode, Tr, Tc, Tm, Tn, tr, tc, tm, tn, q)


def design_arrays(sub: SubDesign) -> Designs:
    """One design as one-entry columns."""
    return Designs(*(np.array([float(v)]) for v in astuple(sub)))


def sub_at(designs: Designs, i: int) -> SubDesign:
    """Design ``i`` of ``designs`` as a record."""
    cols = (designs.mode, designs.Tr, designs.Tc, designs.Tm, designs.Tn, designs.tr, designs.tc, designs.tm,
            designs.tn, designs.q)
    return SubDesign(*(int(c[i]) for c in cols))
