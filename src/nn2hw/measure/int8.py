"""How an int8 layer's integers are stored for ONNX Runtime, and which storage this CPU runs exactly.

``s8s8`` holds activations and weights as int8 with zero point 0; ``u8u8`` holds the same integers
as uint8 offset by 128 (zero point 128), which ONNX Runtime runs with kernels that widen to int16
before multiplying. The two compute the same numbers wherever the kernel does not saturate. On x86
CPUs with AVX2 but no VNNI, ONNX Runtime runs int8 operands as u8 x s8 with ``vpmaddubsw``, whose
int16 sum of two products saturates (measured here on an AVX2 EPYC: 0.39 % of a linear layer's
outputs up to 2 steps off); with VNNI (``vpdpbusd``) it accumulates in int32 and does not.
``native_int8_storage`` picks ``s8s8`` where the CPU has VNNI or is not x86 and ``u8u8`` on x86
without it (ONNX Runtime's own documentation names the saturation and suggests U8U8 or 7-bit weights
there; 7-bit weights would change the plan's grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nn2hw.errors import ConfigError
from nn2hw.measure.machine import cpu_flags

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""x86 CPU flags of int8 dot products accumulated in int32 (no int16 saturation)."""


@dataclass(frozen=True)
class Int8Storage:
    """How an int8 layer's integers are stored in the file: element type and the zero point that
    maps the integer 0 (the same integers either way, see the module doc)."""

    name: str
    dtype: type[np.integer[Any]]
    zero_point: int

    def encode(self, integers: np.ndarray) -> np.ndarray:
        """Integers in [-128, 127] as this storage holds them."""
        return (integers + self.zero_point).astype(self.dtype)


INT8_STORAGES = {s.name: s for s in (Int8Storage("s8s8", np.int8, 0), Int8Storage("u8u8", np.uint8, 128))}


def native_int8_storage(flags: frozenset[str] | None) -> tuple[str, str]:
    """(the storage ONNX Runtime computes exactly with on a CPU with these flags, why)."""
    if flags is None:
        return "s8s8", "the CPU flags cannot be read: s8s8, exact where int8 products accumulate in int32"
    vnni = sorted(flag for flag in VNNI_FLAGS if flag in flags)
    if vnni:
        return "s8s8", f"the CPU has {', '.join(vnni)}: int8 products accumulate in int32"
    if "avx2" in flags:
        return "u8u8", ("x86 with AVX2 and no VNNI: ONNX Runtime's u8 x s8 kernels (vpmaddubsw) saturate int16 "
                        "pair sums, its u8 x u8 kernels do not")
    return "s8s8", "no AVX2/VNNI flags (e.g. ARM): int8 products accumulate in int32"


def resolve_int8_storage(requested: str) -> tuple[str, str]:
    """(storage, why) for ``requested``: 'auto' (this CPU's native storage) or one of ``INT8_STORAGES``."""
    if requested == "auto":
        return native_int8_storage(cpu_flags())
    if requested not in INT8_STORAGES:
        raise ConfigError(f"Unknown int8 storage {requested!r}.",
                          f"Use auto (this CPU's) or one of {', '.join(INT8_STORAGES)}: u8u8 for an x86 CPU without "
                          "VNNI, s8s8 for one with VNNI or for ARM.")
    return requested, "asked for"
