"""nn-Meter's kernel-level predictor: one regressor per kernel type, summed over a network's kernels,
with a learned network-level correction.

Each kernel type gets gradient-boosted trees (scikit-learn's histogram ones) on log-sizes predicting
log-milliseconds (times span four decades; trees on logs split sizes by ratio, as latencies scale).
Random forests, nn-Meter's choice, priced kernels they had not seen worse here: on 77 held-out
networks their kernel sums had 70 % within ±10 % against 83-84 % for the boosted trees, fitted on
the same samples (docs/measured-devices.md, stop 35). A sample's time is what the
kernel costs inside a network: its one-kernel model's median minus the empty model's, or, for an
NCHWc conv reading an NCHWc tensor or a pool kept NCHWc, a 1x1 NCHWc conv followed by it minus that
conv alone
(``nn2hw.predict.kernels.chain_graphs``), so the layout reorders a lone kernel would pay at the
model's edges are not counted (between NCHWc kernels a network pays none). Each pair is timed
together (``nn2hw.predict.kernels.measurement_pair``), so the machine's drift cancels.

A network is not exactly the sum of its kernels timed alone: inside it, NCHWc tensors flow between
convs without reorders, a kernel's input is still in cache from the one before, small kernels'
dispatch costs overlap differently. So the kernel sum (plus the empty model: the session's own
cost) is corrected by a factor learnt on calibration networks measured whole (random CNNs, residual
and depthwise blocks, int8 variants; never the networks a predictor is judged on): gradient-boosted
trees on ``log(measured / kernel sum)`` over network-level features (``network_features``: how the
kernel sum splits over kernel types, layout changes, int8 share, size and graph shape). With fewer
than ``MIN_CORRECTION_NETWORKS`` calibration networks the factor is their median ratio (1 without any).

Stored as its samples, calibration networks and hyper-parameters; ``load`` refits (same seed: same
predictions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nn2hw.errors import ConfigError
from nn2hw.predict.base import Predictor, register_kind, sklearn_ensemble
from nn2hw.predict.kernels import DETECTOR_VERSION, KERNEL_TYPES, Kernel, kernels_of
from nn2hw.workload import Workload

REGRESSOR = "hist_gradient_boosting"
"""The per-kernel-type regressor (stored, so a file fitted with another one is refused, not misread)."""
DEFAULT_HYPER: Mapping[str, Any] = {"max_iter": 300, "learning_rate": 0.05, "min_samples_leaf": 2,
                                    "max_leaf_nodes": 31}
"""scikit-learn ``HistGradientBoostingRegressor`` settings of each kernel type (no early stopping: its
random validation split would make a refit differ from the fit)."""
CV_FOLDS = 3
"""Folds of the cross-validated errors that pick samples for adaptive sampling."""
CORRECTION_HYPER: Mapping[str, Any] = {"n_estimators": 200, "learning_rate": 0.03, "max_depth": 2,
                                       "subsample": 0.7, "min_samples_leaf": 20, "loss": "huber"}
"""scikit-learn ``GradientBoostingRegressor`` settings of the network-level correction: shallow, slow and
robust (Huber loss, leaves of 20 networks), since calibration networks carry a few % of timing noise
(5-fold cross-validation on the ~300 calibration networks of three 120-s builds, three fold seeds each:
66.3 % within 10 % with leaves of 20, 65.3 % with 10, 64.9 % with 40; depth 1 or 3 no better)."""
MIN_CORRECTION_NETWORKS = 12
"""Fewer calibration networks than this give a constant correction (their median ratio), not trees."""
WORKLOAD_FEATURES = ("log_macs", "log_params", "log_read_bytes", "log_write_bytes", "layers", "graph_depth",
                     "residual_adds", "log_input_elements")
"""Columns of ``nn2hw.predict.whole.features`` the correction also reads."""
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
    """Latency = (empty model + sum of per-kernel-type regressors over ``kernels_of``) x a learnt correction.

    ``int8_storage``: how the int8 kernels it timed stored their integers (``nn2hw.measure.int8``),
    the storage the export uses on the machine it was built on."""

    kind: ClassVar[str] = "kernel"

    def __init__(self, samples: Sequence[KernelSample], *, empty_ms: float, networks: Sequence[NetworkSample] = (),
                 device: str = "cpu", seed: int = 0, hyper: Mapping[str, Any] | None = None,
                 machine: Mapping[str, Any] | None = None, correction_hyper: Mapping[str, Any] | None = None,
                 int8_storage: str = "s8s8") -> None:
        if not samples:
            raise ConfigError("A kernel predictor needs measured kernel samples; none were given.",
                              "Build it with nn2hw.predict.build() (`nn2hw predictor build`).")
        self.samples = tuple(samples)
        self.networks = tuple(networks)
        self.empty_ms = float(empty_ms)
        self.device, self.seed = device, seed
        self.hyper = {**DEFAULT_HYPER, **(hyper or {})}
        self.correction_hyper = {**CORRECTION_HYPER, **(correction_hyper or {})}
        self.machine = dict(machine or {})
        self.int8_storage = int8_storage
        self.columns: dict[str, tuple[str, ...]] = {}
        self.models: dict[str, Any] = {}
        for kind in sorted({s.type for s in self.samples}):
            self._fit_type(kind)
        self.correction: Any = None
        self.constant_ratio = 1.0
        self._fit_correction()

    # --- fitting --------------------------------------------------------------------------------
    def _fit_type(self, kind: str) -> None:
        import numpy as np

        rows = [s for s in self.samples if s.type == kind]
        columns = tuple(sorted({key for s in rows for key in s.features}))  # a missing feature reads 0
        self.columns[kind] = columns
        x = np.array([_row(s.features, columns) for s in rows])
        y = np.log([max(s.median_ms, MIN_KERNEL_MS) for s in rows])
        self.models[kind] = self._regressor().fit(x, y)

    def _regressor(self) -> Any:
        return sklearn_ensemble().HistGradientBoostingRegressor(random_state=self.seed, early_stopping=False,
                                                                **self.hyper)

    def _fit_correction(self) -> None:
        """Trees on log(measured / kernel sum) of the calibration networks (a median ratio when few)."""
        import numpy as np

        usable = [net for net in self.networks if not set(_types(net.workload)) - set(self.models)]
        if not usable:
            return
        rows = self._bases([net.workload for net in usable])
        target = np.log([net.median_ms / base for net, (base, _) in zip(usable, rows)])
        self.constant_ratio = float(np.exp(np.median(target)))
        if len(usable) < MIN_CORRECTION_NETWORKS:
            return
        trees = sklearn_ensemble().GradientBoostingRegressor(random_state=self.seed, **self.correction_hyper)
        trees.fit(np.array([features for _, features in rows]), target)
        self.correction = trees

    def _bases(self, workloads: Sequence[Workload]) -> list[tuple[float, list[float]]]:
        """Per workload: (empty model + kernel sum in ms, the correction's features); one regressor call
        per kernel type for all of them."""
        kernels = [kernels_of(workload) for workload in workloads]
        times = self.predict_kernels([k for ks in kernels for k in ks])
        out, start = [], 0
        for workload, ks in zip(workloads, kernels):
            own = times[start:start + len(ks)]
            start += len(ks)
            base = self.empty_ms + sum(own)
            out.append((base, network_features(workload, ks, own, base)))
        return out

    def ratio(self, workload: Workload) -> float:
        """The learnt factor measured / (empty model + kernel sum) for ``workload``."""
        if self.correction is None:
            return self.constant_ratio
        ((_, features),) = self._bases([workload])
        return float(math.exp(self.correction.predict([features])[0]))

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
        """Milliseconds per kernel (keyed by kernel name) plus the session overhead, each scaled by the
        network correction; they sum to ``predict``."""
        kernels = kernels_of(workload)
        scale = self.ratio(workload)
        times = {k.name: t * scale for k, t in zip(kernels, self.predict_kernels(kernels))}
        times[OVERHEAD_KEY] = self.empty_ms * scale
        return times

    def predict(self, workload: Workload) -> float:
        return max(sum(self.predict_layers(workload).values()), MIN_KERNEL_MS)

    def cv_errors(self, kind: str) -> list[float]:
        """Relative error of each sample of ``kind`` predicted by trees fitted without it (``CV_FOLDS``-fold
        cross-validation, in sample order; 0 when too few samples to say)."""
        import importlib

        import numpy as np

        rows = [s for s in self.samples if s.type == kind]
        if len(rows) < 2 * CV_FOLDS:
            return [0.0] * len(rows)
        x = np.array([_row(s.features, self.columns[kind]) for s in rows])
        y = np.log([max(s.median_ms, MIN_KERNEL_MS) for s in rows])
        regressor = self._regressor()  # after sklearn_ensemble's check that scikit-learn is installed
        selection = importlib.import_module("sklearn.model_selection")
        folds = selection.KFold(CV_FOLDS, shuffle=True, random_state=self.seed)
        predicted = np.exp(selection.cross_val_predict(regressor, x, y, cv=folds))
        return [float(p / max(s.median_ms, MIN_KERNEL_MS) - 1) for p, s in zip(predicted, rows)]

    # --- storage --------------------------------------------------------------------------------
    def stored(self) -> dict[str, Any]:
        return {"regressor": REGRESSOR, "detector": DETECTOR_VERSION, "hyper": dict(self.hyper),
                "correction_hyper": dict(self.correction_hyper),
                "machine": self.machine,
                "empty_ms": self.empty_ms, "int8_storage": self.int8_storage,
                "samples": [s.to_dict() for s in self.samples], "networks": [n.to_dict() for n in self.networks]}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> KernelPredictor:
        _check_compatible(record)
        return cls([KernelSample.from_dict(s) for s in record["samples"]], empty_ms=float(record["empty_ms"]),
                   networks=[NetworkSample.from_dict(n) for n in record.get("networks", ())],
                   device=str(record["device"]), seed=int(record["seed"]), hyper=dict(record["hyper"]),
                   machine=dict(record.get("machine", {})), correction_hyper=dict(record.get("correction_hyper", {})),
                   int8_storage=str(record.get("int8_storage", "s8s8")))  # files before it was recorded: s8s8


def _check_compatible(record: Mapping[str, Any]) -> None:
    """Refuse a stored predictor fitted by another regressor or on another detector's kernels: its samples
    would be refitted into wrong prices (a kernel feature it never saw reads 0), not fail."""
    version = f"nn2hw {record.get('nn2hw_version', '?')}"
    fix = ("Build it again (`nn2hw predictor build --device cpu --out FILE`; the cpu template rebuilds its own "
           "on first use).")
    if record.get("regressor", "random_forest") != REGRESSOR:
        raise ConfigError(f"The kernel predictor was fitted with {record.get('regressor', 'random forests')} "
                          f"({version}); this nn2hw fits {REGRESSOR}.", fix)
    detector = record.get("detector", 2)  # files before it was recorded: version 2
    if detector != DETECTOR_VERSION:
        raise ConfigError(f"The kernel predictor's samples are kernels of detector version {detector} ({version}); "
                          f"this nn2hw detects kernels as version {DETECTOR_VERSION}.", fix)


def network_features(workload: Workload, kernels: Sequence[Kernel], times_ms: Sequence[float],
                     base_ms: float) -> list[float]:
    """What the correction reads: log kernel sum and kernel count, each kernel type's share of the sum
    and of the count, conv layout changes (NCHWc <-> NCHW between consecutive convs: reorders the
    isolated kernels paid or missed), and a few totals of ``nn2hw.predict.whole.features``."""
    from nn2hw.predict.whole import feature_names, features

    total = max(sum(times_ms), MIN_KERNEL_MS)
    count = max(len(kernels), 1)
    share = dict.fromkeys(KERNEL_TYPES, 0.0)
    number = dict.fromkeys(KERNEL_TYPES, 0.0)
    for kernel, t in zip(kernels, times_ms):
        share[kernel.type] = share.get(kernel.type, 0.0) + t / total
        number[kernel.type] = number.get(kernel.type, 0.0) + 1 / count
    layouts = [kernel.features["nchwc"] for kernel in kernels if kernel.type in ("conv", "dwconv")]
    changes = sum(a != b for a, b in zip(layouts, layouts[1:]))
    whole = dict(zip(feature_names(), features(workload)))
    return [math.log(base_ms), math.log(count), *(share[t] for t in KERNEL_TYPES),
            *(number[t] for t in KERNEL_TYPES), float(changes), sum(layouts) / max(len(layouts), 1),
            *(float(whole[name]) for name in WORKLOAD_FEATURES)]


def _types(workload: Workload) -> list[str]:
    return [kernel.type for kernel in kernels_of(workload)]


def _row(features: Mapping[str, float], columns: Sequence[str]) -> list[float]:
    """Log-scaled feature values in ``columns`` order (codes and flags pass through log1p unharmed)."""
    return [math.log1p(max(float(features.get(c, 0.0)), 0.0)) for c in columns]


register_kind(KernelPredictor.kind, KernelPredictor.from_dict)
