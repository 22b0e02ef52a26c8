"""nn-Meter's kernel-level predictor: one regressor per kernel type, summed over a network's kernels.

Each kernel type gets a random forest on log-sizes predicting log-milliseconds (times span four
decades; trees on logs split sizes by ratio, as latencies scale). A sample's time is its one-kernel
model's median minus the empty model's median, i.e. the kernel plus what running it in isolation
adds (ORT's NCHWc reorders at the model's edges, one more node dispatch). The network overhead is
then fitted, not assumed: on a few calibration networks measured whole (random CNNs, never the
networks it is judged on), ``measured - sum of kernels = a + b * kernels`` by least squares; ``a``
is the session's own cost, ``b`` the per-kernel difference between a kernel in isolation and in a
network (negative here: a network pays the reorders once per layout change, not twice per kernel).
Without calibration networks the overhead is the empty model's median.

Stored as its samples and hyper-parameters; ``load`` refits (same seed: same predictions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nn2hw.errors import ConfigError
from nn2hw.predict.base import Predictor, register_kind, sklearn_ensemble
from nn2hw.predict.kernels import Kernel, kernels_of
from nn2hw.workload import Workload

DEFAULT_HYPER: Mapping[str, Any] = {"n_estimators": 120, "min_samples_leaf": 1, "max_features": 0.8}
MIN_KERNEL_MS = 1e-4
"""Floor of a sample's time after subtracting the empty model (noise can push a tiny kernel below 0)."""
OVERHEAD_KEY = "(runtime overhead)"


@dataclass(frozen=True)
class KernelSample:
    """One measured kernel: its type and features, and its time in isolation (ms, empty model subtracted)."""

    type: str
    features: Mapping[str, float]
    median_ms: float
    iqr_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "features": dict(self.features), "median_ms": self.median_ms,
                "iqr_ms": self.iqr_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelSample:
        return cls(str(data["type"]), {str(k): float(v) for k, v in data["features"].items()},
                   float(data["median_ms"]), float(data["iqr_ms"]))


@dataclass(frozen=True)
class NetworkSample:
    """A calibration network measured whole: its workload and median/IQR (ms)."""

    workload: Workload
    median_ms: float
    iqr_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.to_dict(), "median_ms": self.median_ms, "iqr_ms": self.iqr_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkSample:
        return cls(Workload.from_dict(data["workload"]), float(data["median_ms"]), float(data["iqr_ms"]))


class KernelPredictor(Predictor):
    """Latency = overhead(number of kernels) + sum of per-kernel-type regressors over ``kernels_of``."""

    kind: ClassVar[str] = "kernel"

    def __init__(self, samples: Sequence[KernelSample], *, empty_ms: float, networks: Sequence[NetworkSample] = (),
                 device: str = "cpu", seed: int = 0, hyper: Mapping[str, Any] | None = None,
                 machine: Mapping[str, Any] | None = None) -> None:
        if not samples:
            raise ConfigError("A kernel predictor needs measured kernel samples; none were given.",
                              "Build it with nn2hw.predict.build() (`nn2hw predictor build`).")
        self.samples = tuple(samples)
        self.networks = tuple(networks)
        self.empty_ms = float(empty_ms)
        self.device, self.seed = device, seed
        self.hyper = {**DEFAULT_HYPER, **(hyper or {})}
        self.machine = dict(machine or {})
        self.columns: dict[str, tuple[str, ...]] = {}
        self.models: dict[str, Any] = {}
        for kind in sorted({s.type for s in self.samples}):
            self._fit_type(kind)
        self.overhead_ms, self.per_kernel_ms = self._fit_overhead()

    # --- fitting --------------------------------------------------------------------------------
    def _fit_type(self, kind: str) -> None:
        import numpy as np

        rows = [s for s in self.samples if s.type == kind]
        columns = tuple(sorted(rows[0].features))
        self.columns[kind] = columns
        x = np.array([_row(s.features, columns) for s in rows])
        y = np.log([max(s.median_ms, MIN_KERNEL_MS) for s in rows])
        forest = sklearn_ensemble().RandomForestRegressor(random_state=self.seed, oob_score=len(rows) >= 8,
                                                           **self.hyper)
        forest.fit(x, y)
        self.models[kind] = forest

    def _fit_overhead(self) -> tuple[float, float]:
        """(a, b) of ``measured - sum = a + b * kernels`` over the calibration networks (least squares)."""
        import numpy as np

        if not self.networks:
            return self.empty_ms, 0.0
        counts, residuals = [], []
        for net in self.networks:
            kernels = kernels_of(net.workload)
            counts.append(len(kernels))
            residuals.append(net.median_ms - sum(self.predict_kernels(kernels)))
        if len(set(counts)) < 2:
            return float(np.mean(residuals)), 0.0
        b, a = np.polyfit(np.array(counts, float), np.array(residuals), 1)
        return float(a), float(b)

    # --- prediction -----------------------------------------------------------------------------
    def predict_kernels(self, kernels: Sequence[Kernel]) -> list[float]:
        """Predicted isolated time (ms) of each kernel, in order; a ConfigError naming a type never sampled."""
        import numpy as np

        missing = sorted({k.type for k in kernels} - set(self.models))
        if missing:
            names = [k.name for k in kernels if k.type in missing][:5]
            raise ConfigError(
                f"The kernel predictor has no samples of kernel type(s) {missing} (kernels {names}); it cannot "
                "price them.",
                "Rebuild it with such networks in its prior: nn2hw.predict.build(workloads=[...]) or "
                "`nn2hw predictor build` (which samples the zoo's shapes).")
        out = [0.0] * len(kernels)
        for kind in {k.type for k in kernels}:
            index = [i for i, k in enumerate(kernels) if k.type == kind]
            x = np.array([_row(kernels[i].features, self.columns[kind]) for i in index])
            for i, value in zip(index, np.exp(self.models[kind].predict(x))):
                out[i] = float(value)
        return out

    def predict_layers(self, workload: Workload) -> Mapping[str, float]:
        """Milliseconds per kernel (keyed by kernel name) plus the network overhead; they sum to ``predict``."""
        kernels = kernels_of(workload)
        times = dict(zip((k.name for k in kernels), self.predict_kernels(kernels)))
        times[OVERHEAD_KEY] = self.overhead_ms + self.per_kernel_ms * len(kernels)
        return times

    def predict(self, workload: Workload) -> float:
        return max(sum(self.predict_layers(workload).values()), MIN_KERNEL_MS)

    def oob_errors(self, kind: str) -> list[float]:
        """Relative out-of-bag error of each sample of ``kind`` (in sample order; 0 when too few to say)."""
        import numpy as np

        forest = self.models[kind]
        rows = [s for s in self.samples if s.type == kind]
        if not getattr(forest, "oob_score", False):
            return [0.0] * len(rows)
        predicted = np.exp(np.nan_to_num(forest.oob_prediction_, nan=0.0))
        return [float(p / max(s.median_ms, MIN_KERNEL_MS) - 1) for p, s in zip(predicted, rows)]

    # --- storage --------------------------------------------------------------------------------
    def stored(self) -> dict[str, Any]:
        return {"hyper": dict(self.hyper), "machine": self.machine, "empty_ms": self.empty_ms,
                "samples": [s.to_dict() for s in self.samples], "networks": [n.to_dict() for n in self.networks]}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> KernelPredictor:
        return cls([KernelSample.from_dict(s) for s in record["samples"]], empty_ms=float(record["empty_ms"]),
                   networks=[NetworkSample.from_dict(n) for n in record.get("networks", ())],
                   device=str(record["device"]), seed=int(record["seed"]), hyper=dict(record["hyper"]),
                   machine=dict(record.get("machine", {})))


def _row(features: Mapping[str, float], columns: Sequence[str]) -> list[float]:
    """Log-scaled feature values in ``columns`` order (codes and flags pass through log1p unharmed)."""
    return [math.log1p(max(float(features.get(c, 0.0)), 0.0)) for c in columns]


register_kind(KernelPredictor.kind, KernelPredictor.from_dict)
