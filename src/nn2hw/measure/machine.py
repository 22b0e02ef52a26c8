"""The machine a timing was taken on: what makes two timings comparable, and a fingerprint of it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from nn2hw.errors import ConfigError, HardwareError

MEASURE_EXTRA = 'pip install "nn2hw[measure]"'


@dataclass(frozen=True)
class Machine:
    """This CPU, its OS and Python, and the runtime (with version) that ran the network."""

    cpu_model: str
    logical_cores: int
    os: str
    python: str
    runtime: str
    runtime_version: str

    def fingerprint(self) -> str:
        """A short sha256 hex of what makes timings comparable: the CPU, its cores and the runtime with
        its version (not the OS or Python, which do not change a kernel's speed)."""
        fields = [self.cpu_model, self.logical_cores, self.runtime, self.runtime_version]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Machine:
        try:
            return cls(cpu_model=str(data["cpu_model"]), logical_cores=int(data["logical_cores"]), os=str(data["os"]),
                       python=str(data["python"]), runtime=str(data["runtime"]),
                       runtime_version=str(data["runtime_version"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"A machine record lacks or mangles a field ({exc!r}).",
                              "Record machines with Machine.to_dict().") from None


def this_machine(runtime: str = "onnxruntime", runtime_version: str | None = None) -> Machine:
    """This machine with ``runtime``; its version is looked up when not given (a runner knows its own)."""
    version = runtime_version if runtime_version is not None else runtime_version_of(runtime)
    return Machine(cpu_model=cpu_model(), logical_cores=os.cpu_count() or 1,
                   os=f"{platform.system()} {platform.release()}", python=platform.python_version(),
                   runtime=runtime, runtime_version=version)


def runtime_version_of(runtime: str) -> str:
    """The installed version of ``runtime`` (read from package metadata: no runtime is imported)."""
    distributions = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"), "torch": ("torch",)}
    if runtime not in distributions:
        raise ConfigError(f"Runtime {runtime!r} is unknown.", f"Use one of {', '.join(distributions)}.")
    for name in distributions[runtime]:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    fix = MEASURE_EXTRA if runtime == "onnxruntime" else "pip install torch"
    raise HardwareError(f"Runtime {runtime} is not installed, so nothing can be timed with it.", f"Run {fix}.")


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags from ``cpuinfo`` (Linux: x86 ``flags``, ARM ``Features``), or None when
    it cannot be read: what decides which kernels a runtime runs (AVX-512, VNNI, bf16, NCHWc blocks)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return frozenset(flag for line in text.splitlines() if line.startswith(("flags", "Features"))
                     for flag in line.partition(":")[2].split())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says, else 'unknown'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
