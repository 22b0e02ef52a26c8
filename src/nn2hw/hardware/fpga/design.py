"""The FPGA tiled-convolution design point: tile sizes, kernel limit and port split.

``[Tm, Tn, Tr, Tc, Tk, Wp, Ip, Op]`` as in Zhang FPGA'15 / FNAS / HotNAS: a Tm x Tn MAC array,
row/column tiles Tr x Tc, the largest kernel Tk it supports, and how many words of weights,
inputs and outputs the AXI ports move per cycle. An optional depthwise engine (HotNAS
``dconv``) shares the DSPs and the same port split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, fields, replace
from typing import Any

import numpy as np

from nn2hw._checks import as_int
from nn2hw.errors import ConfigError
from nn2hw.hardware._types import Floats, Ints, Mask

DESIGN_FIELDS = ("Tm", "Tn", "Tr", "Tc", "Tk", "Wp", "Ip", "Op")
ENGINE_FIELDS = ("Tm", "Tn", "Tr", "Tc", "Tk")
DW_KEYS = {f"{f}_d": f for f in ENGINE_FIELDS}
"""``--hw-param`` keys of the depthwise engine (Tm_d, Tn_d, Tr_d, Tc_d, Tk_d)."""
WORD_BITS = (16, 32)
"""16: fixed point, one DSP per MAC; 32: floating point, five DSPs per MAC (HotNAS/FPGA'15)."""


@dataclass(frozen=True)
class FpgaEngine:
    """The depthwise engine: Tm lanes, each one MAC (HotNAS ``dconv``; its latency uses Tn := Tm)."""

    Tm: int
    Tn: int = 1
    Tr: int = 32
    Tc: int = 32
    Tk: int = 3

    def __post_init__(self) -> None:
        for f in ENGINE_FIELDS:
            object.__setattr__(self, f, as_int(getattr(self, f), f"depthwise {f}"))

    def to_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in ENGINE_FIELDS}

    def label(self, ports: tuple[int, int, int]) -> str:
        return ",".join(str(v) for v in (*self.to_dict().values(), *ports))


@dataclass(frozen=True)
class FpgaDesign:
    """One accelerator: the standard-conv engine, the shared ports and an optional depthwise engine."""

    Tm: int
    Tn: int
    Tr: int
    Tc: int
    Tk: int
    Wp: int
    Ip: int
    Op: int
    dw: FpgaEngine | None = None
    word_bits: int = 16

    def __post_init__(self) -> None:
        for f in DESIGN_FIELDS:
            object.__setattr__(self, f, as_int(getattr(self, f), f))
        if self.dw is not None and not isinstance(self.dw, FpgaEngine):
            object.__setattr__(self, "dw", FpgaEngine(**_as_mapping(self.dw, ENGINE_FIELDS, "depthwise engine")))
        bits = as_int(self.word_bits, "word_bits")
        if bits not in WORD_BITS:
            raise ConfigError(f"word_bits must be 16 (fixed point) or 32 (floating point), got {bits}.",
                              "Use --hw-param word_bits=16 or word_bits=32.")
        object.__setattr__(self, "word_bits", bits)

    @property
    def ports(self) -> tuple[int, int, int]:
        return (self.Wp, self.Ip, self.Op)

    @property
    def label(self) -> str:
        """'70,36,64,64,7,18,6,6' (with '; dw 576,1,32,32,3,...' when there is a depthwise engine)."""
        text = ",".join(str(getattr(self, f)) for f in DESIGN_FIELDS)
        return text if self.dw is None else f"{text}; dw {self.dw.label(self.ports)}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {f: getattr(self, f) for f in DESIGN_FIELDS}
        data["dw"] = None if self.dw is None else self.dw.to_dict()
        data["word_bits"] = self.word_bits
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FpgaDesign:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown FPGA design fields {unknown}.", f"Use only: {', '.join(sorted(known))}.")
        missing = [f for f in DESIGN_FIELDS if f not in data]
        if missing:
            raise ConfigError(f"FPGA design lacks {missing}.", f"Give all of {', '.join(DESIGN_FIELDS)}.")
        return cls(**dict(data))

    def with_params(self, params: Mapping[str, Any]) -> FpgaDesign:
        """A copy with fields replaced by ``--hw-param`` values (Tm=64, Tm_d=576, word_bits=32...)."""
        main = {k: v for k, v in params.items() if k in DESIGN_FIELDS or k == "word_bits"}
        dw_params = {DW_KEYS[k]: v for k, v in params.items() if k in DW_KEYS}
        dw = self.dw
        if dw_params:
            base = dw.to_dict() if dw is not None else {}
            if dw is None and "Tm" not in dw_params:
                raise ConfigError("A depthwise-engine parameter was given but the design has no depthwise engine.",
                                  "Add Tm_d=... (e.g. --hw-param Tm_d=576) or --dw-design Tm,Tn,Tr,Tc,Tk.")
            dw = FpgaEngine(**{**base, **dw_params})
        return replace(self, **main, dw=dw)


def _as_mapping(value: Any, names: Sequence[str], what: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)) and len(value) == len(names):
        return dict(zip(names, value))
    raise ConfigError(f"Cannot read a {what} from {value!r}.", f"Give {len(names)} values: {', '.join(names)}.")


def split_values(text: str, what: str) -> list[str]:
    """'70, 36,64' -> ['70', '36', '64'] (also accepts [..] brackets, as published)."""
    cleaned = text.strip().strip("[]()")
    parts = [p.strip() for p in cleaned.replace(";", ",").split(",")]
    if not cleaned or any(not p for p in parts):
        raise ConfigError(f"{what} {text!r} is not a comma-separated list of integers.",
                          f"Write e.g. {what} 70,36,64,64,7,18,6,6.")
    return parts


def parse_design(text: str | Sequence[Any], dw: str | Sequence[Any] | None = None, word_bits: int = 16) -> FpgaDesign:
    """A design from 'Tm,Tn,Tr,Tc,Tk,Wp,Ip,Op' and an optional depthwise 'Tm,Tn,Tr,Tc,Tk[,Wp,Ip,Op]'.

    The depthwise engine shares the standard engine's ports; if its text repeats the ports (as
    the published HotNAS designs do) they must agree.
    """
    values = split_values(text, "--design") if isinstance(text, str) else list(text)
    if len(values) != len(DESIGN_FIELDS):
        raise ConfigError(f"--design needs {len(DESIGN_FIELDS)} values ({','.join(DESIGN_FIELDS)}), "
                          f"got {len(values)}: {values}.", "Write e.g. --design 70,36,64,64,7,18,6,6.")
    main = {f: as_int(v, f) for f, v in zip(DESIGN_FIELDS, values)}
    engine = None
    if dw is not None:
        dvals = split_values(dw, "--dw-design") if isinstance(dw, str) else list(dw)
        if len(dvals) not in (len(ENGINE_FIELDS), len(DESIGN_FIELDS)):
            raise ConfigError(f"--dw-design needs 5 values (Tm,Tn,Tr,Tc,Tk) or 8 with the shared ports, "
                              f"got {len(dvals)}: {dvals}.", "Write e.g. --dw-design 576,1,32,32,3.")
        engine = FpgaEngine(**{f: as_int(v, f"depthwise {f}") for f, v in zip(ENGINE_FIELDS, dvals)})
        if len(dvals) == len(DESIGN_FIELDS):
            dports = tuple(as_int(v, p) for v, p in zip(dvals[5:], ("Wp", "Ip", "Op")))
            ports = (main["Wp"], main["Ip"], main["Op"])
            if dports != ports:
                raise ConfigError(f"The depthwise engine's ports {list(dports)} differ from the standard engine's "
                                  f"{list(ports)}; both engines share one port split.",
                                  "Give the same Wp,Ip,Op in --design and --dw-design, or give --dw-design 5 values.")
    return FpgaDesign(**main, dw=engine, word_bits=word_bits)


def coerce_design(design: Any) -> FpgaDesign:
    """Accept an ``FpgaDesign``, a mapping of fields, a 'Tm,...,Op' string or an 8-value sequence."""
    if isinstance(design, FpgaDesign):
        return design
    if isinstance(design, Mapping):
        return FpgaDesign.from_dict(design)
    if isinstance(design, (str, list, tuple)):
        return parse_design(design)
    raise ConfigError(f"Cannot read an FPGA design from {type(design).__name__} {design!r}.",
                      "Pass an FpgaDesign, a dict of its fields, or 'Tm,Tn,Tr,Tc,Tk,Wp,Ip,Op'.")


def unique_rows(*cols: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of the columns ``cols`` and, per original row, the index of its distinct row
    (mixed-radix codes of the per-column ranks: much faster than ``np.unique(axis=0)``)."""
    if len(cols[0]) <= 1:
        return cols, np.zeros(len(cols[0]), dtype=np.int64)
    code = np.zeros(len(cols[0]), dtype=np.int64)
    span = 1  # codes are below span
    for col in cols:
        values, rank = np.unique(col, return_inverse=True)
        if span * len(values) >= 2**62:  # re-rank so the mixed-radix code cannot overflow
            _, code = np.unique(code, return_inverse=True)
            code, span = code.reshape(-1).astype(np.int64), int(code.max()) + 1
        code = code * len(values) + rank.reshape(-1)
        span *= len(values)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return tuple(col[first] for col in cols), inverse.reshape(-1)


@dataclass(frozen=True)
class DesignArrays:
    """Many designs as float64 columns of length D (a grid, or one design with D = 1).

    The depthwise columns ``dTm, dTr, dTc, dTk`` are zero when the designs have no depthwise engine
    (``has_dw`` is then False for all of them: a grid is either with or without one).
    """

    Tm: Floats
    Tn: Floats
    Tr: Floats
    Tc: Floats
    Tk: Floats
    Wp: Floats
    Ip: Floats
    Op: Floats
    dTm: Floats
    dTr: Floats
    dTc: Floats
    dTk: Floats
    _: KW_ONLY
    has_dw: bool
    word_bits: int = 16

    COLUMNS = ("Tm", "Tn", "Tr", "Tc", "Tk", "Wp", "Ip", "Op", "dTm", "dTr", "dTc", "dTk")

    def __len__(self) -> int:
        return len(self.Tm)

    @classmethod
    def of(cls, design: FpgaDesign) -> DesignArrays:
        dw = design.dw
        values = [getattr(design, f) for f in DESIGN_FIELDS]
        values += [dw.Tm, dw.Tr, dw.Tc, dw.Tk] if dw is not None else [0, 0, 0, 0]
        return cls(*(np.array([float(v)]) for v in values), has_dw=dw is not None, word_bits=design.word_bits)

    def take(self, index: Ints | Mask) -> DesignArrays:
        """The designs at ``index`` (a boolean mask or integer positions)."""
        cols = {c: getattr(self, c)[index] for c in self.COLUMNS}
        return DesignArrays(**cols, has_dw=self.has_dw, word_bits=self.word_bits)

    def design(self, i: int) -> FpgaDesign:
        """Design number ``i`` as a record."""
        v = {c: int(getattr(self, c)[i]) for c in self.COLUMNS}
        dw = FpgaEngine(Tm=v["dTm"], Tn=1, Tr=v["dTr"], Tc=v["dTc"], Tk=v["dTk"]) if self.has_dw else None
        return FpgaDesign(**{f: v[f] for f in DESIGN_FIELDS}, dw=dw, word_bits=self.word_bits)
