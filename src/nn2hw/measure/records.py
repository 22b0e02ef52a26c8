"""What a measurement records: the spread of the timed runs, per-kernel times and the machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nn2hw._json import freeze, thaw
from nn2hw.errors import ConfigError
from nn2hw.measure.stats import Spread


@dataclass(frozen=True)
class KernelTime:
    """One kernel the runtime ran, with its median time over the profile runs; ``output`` is the first
    tensor it writes ('' when not known), which names the layer of a kernel a fusion pass renamed
    (ONNX Runtime's 'SkipLayerNormalization', 'Gelu')."""

    name: str
    op_type: str
    median_ms: float
    fused: tuple[str, ...] = ()
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "median_ms": self.median_ms, "fused": list(self.fused),
                "output": self.output}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelTime:
        return cls(name=str(data["name"]), op_type=str(data["op_type"]), median_ms=float(data["median_ms"]),
                   fused=tuple(str(op) for op in data.get("fused", ())), output=str(data.get("output", "")))


@dataclass(frozen=True)
class Measurement(Spread):
    """A network timed on a machine: the spread of its runs (ms), outliers, settings and kernels."""

    threads: int
    runtime: str
    runtime_version: str
    machine: Mapping[str, Any]
    kernels: tuple[KernelTime, ...] = ()
    network: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "machine", freeze(self.machine))
        object.__setattr__(self, "kernels", tuple(self.kernels))

    @property
    def iqr_ms(self) -> float:
        """Interquartile range: the spread the median is reported with."""
        return self.q3_ms - self.q1_ms

    @property
    def kernels_ms(self) -> float:
        """Sum of the kernels' medians (0 when not profiled)."""
        return sum(k.median_ms for k in self.kernels)

    @property
    def overhead_ms(self) -> float:
        """Wall time outside the kernels (the runtime's own work per run); negative values are noise."""
        return self.median_ms - self.kernels_ms

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "runs": self.runs, "median_ms": self.median_ms, "q1_ms": self.q1_ms,
                "q3_ms": self.q3_ms, "iqr_ms": self.iqr_ms, "min_ms": self.min_ms, "max_ms": self.max_ms,
                "outliers": self.outliers, "threads": self.threads, "runtime": self.runtime,
                "runtime_version": self.runtime_version, "machine": thaw(self.machine),
                "kernels_ms": self.kernels_ms, "overhead_ms": self.overhead_ms,
                "kernels": [k.to_dict() for k in self.kernels]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """The measurement ``to_dict`` wrote (derived fields are recomputed, not read)."""
        try:
            return cls(runs=int(data["runs"]), median_ms=float(data["median_ms"]), q1_ms=float(data["q1_ms"]),
                       q3_ms=float(data["q3_ms"]), min_ms=float(data["min_ms"]), max_ms=float(data["max_ms"]),
                       outliers=int(data["outliers"]), threads=int(data["threads"]), runtime=str(data["runtime"]),
                       runtime_version=str(data["runtime_version"]), machine=dict(data["machine"]),
                       kernels=tuple(KernelTime.from_dict(k) for k in data.get("kernels", ())),
                       network=str(data.get("network", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"A measurement record lacks or mangles a field ({exc!r}).",
                              "Read only records written by Measurement.to_dict().") from None
