"""Whole-network latency predictors: gradient-boosted trees on features that see how layers combine.

For devices measured only as whole networks (a phone, a board: HELP's setting). A workload becomes a
fixed-length vector (``features``): global totals and graph shape (depth, width, residual adds),
per-kernel-category aggregates (count, MACs, bytes, parameters), the same per resolution band (so
"depthwise 5x5 at 8x8" and "at 32x32" differ, whichever block they sit in), roofline-style sums
``sum(max(MACs, r * bytes))`` for several compute/memory ratios ``r`` (a device is compute- or
memory-bound per layer, and which depends on the layer), and per-position descriptors of the first
``MAX_POSITIONS`` compute layers. The trees combine these, so interactions between layers (what
precedes what, how large the maps are where the expensive kernels sit) are learnt, not only
per-op prices.

The trees refine an additive prior: a non-negative per-op price list (milliseconds per kernel, per
MAC and per byte, for each category in each resolution band) fitted by non-negative least squares
on the same measurements. Latency is mostly additive over kernels, which trees (piecewise-constant
in each feature) approximate poorly from a thousand samples; the trees then learn the log ratio of
the measurement to that sum, i.e. how layers interact on the device (caches, fusion, overlap). On
HW-NAS-Bench's FBNet tables this lifts Kendall tau from 0.90 to 0.93 (Raspberry Pi 4, 1,000
training networks) and from 0.82 to 0.89 with 100 (benchmarks/whole_predictor_fbnet.py).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nn2hw.errors import ConfigError
from nn2hw.predict.base import Predictor, check_latencies, register_kind, sklearn_ensemble
from nn2hw.workload import Layer, OpKind, Workload

FloatArray = npt.NDArray[np.float64]

MIN_SAMPLES = 10
"""Fewer measurements than this fit noise, not a device."""

CATEGORIES = ("conv", "pointwise", "dwconv", "gconv", "linear", "matmul", "pool", "eltwise", "act", "norm",
              "softmax", "embed", "layout", "other")
"""Kernel categories the aggregates are taken over (``category``)."""
BAND_GROUPS = ("conv", "pointwise", "dwconv", "vector")
"""Coarser categories for the per-resolution-band aggregates."""
RESOLUTION_BANDS = 10
"""Bands of output positions: band b holds maps of about 4**b positions (1x1 ... 512x512)."""
ROOFLINE_RATIOS = (0.25, 1.0, 4.0, 16.0, 64.0)
"""MACs per byte at which ``sum(max(MACs, r * bytes))`` is taken: from memory- to compute-bound devices."""
MAX_POSITIONS = 64
"""Compute layers described one by one (in order); deeper ones count only in the aggregates."""
POSITION_FIELDS = ("log_macs", "log_bytes", "log_positions", "kernel_area", "stride", "depthwise")

_LAYOUT_KINDS = frozenset({OpKind.RESHAPE, OpKind.CONCAT, OpKind.PAD, OpKind.SLICE})
_BAND_GROUP = {"conv": "conv", "linear": "conv", "matmul": "conv", "pointwise": "pointwise", "gconv": "pointwise",
               "dwconv": "dwconv"}

DEFAULT_HYPER: Mapping[str, Any] = {"n_estimators": 600, "learning_rate": 0.05, "max_depth": 4,
                                    "subsample": 0.8, "max_features": 0.3}
"""scikit-learn ``GradientBoostingRegressor`` settings (stored with each predictor)."""


def category(layer: Layer) -> str | None:
    """The kernel category of ``layer`` (one of ``CATEGORIES``); ``None`` for graph inputs."""
    kind = layer.kind
    if kind is OpKind.INPUT:
        return None
    if kind is OpKind.CONV:
        conv = layer.conv_type
        if conv == "depthwise":
            return "dwconv"
        if conv == "grouped":
            return "gconv"
        return "pointwise" if layer.kernel_area == 1 else "conv"
    if kind in _LAYOUT_KINDS:
        return "layout"
    return kind.value if kind.value in CATEGORIES else "other"


def feature_names() -> tuple[str, ...]:
    """The names of ``features``' columns, in order."""
    names = ["log_macs", "log_params", "log_read_bytes", "log_write_bytes", "layers", "compute_layers",
             "graph_depth", "graph_width", "residual_adds", "log_input_elements"]
    names += [f"{cat}_{stat}" for cat in CATEGORIES for stat in ("count", "log_macs", "log_bytes", "log_params")]
    names += [f"band{b}_{group}_{stat}" for b in range(RESOLUTION_BANDS) for group in BAND_GROUPS
              for stat in ("count", "log_macs", "log_bytes")]
    names += [f"roofline_{ratio:g}" for ratio in ROOFLINE_RATIOS]
    names += [f"pos{p}_{field}" for p in range(MAX_POSITIONS) for field in POSITION_FIELDS]
    return tuple(names)


@dataclass(frozen=True)
class _LayerTable:
    """One workload's layers as columns (graph inputs left out)."""

    category: npt.NDArray[np.int64]
    macs: FloatArray
    read_bytes: FloatArray
    write_bytes: FloatArray
    params: FloatArray
    positions: FloatArray
    kernel_area: FloatArray
    stride: FloatArray

    @property
    def bytes(self) -> FloatArray:
        return self.read_bytes + self.write_bytes


def _table(workload: Workload) -> _LayerTable:
    rows: list[tuple[float, ...]] = []
    for layer in workload.layers:
        cat = category(layer)
        if cat is None:
            continue
        rows.append((CATEGORIES.index(cat), layer.macs, layer.read_bytes, layer.write_bytes, layer.parameters,
                     layer.out_h * layer.out_w, layer.kernel_area, max(layer.stride_h, layer.stride_w)))
    if not rows:
        raise ConfigError(f"Workload {workload.name!r} has no operations to predict a latency for.",
                          "Give a workload with at least one layer besides its inputs.")
    columns = np.asarray(rows, dtype=np.float64).T
    return _LayerTable(columns[0].astype(np.int64), *columns[1:])


def _graph_shape(workload: Workload) -> tuple[int, int, int]:
    """Longest input-to-output path (layers), most layers at one depth, and residual adds."""
    depth: dict[str, int] = {}
    for layer in workload.layers:
        depth[layer.name] = 1 + max((depth[name] for name in layer.inputs), default=0)
    per_level = np.bincount(np.fromiter(depth.values(), dtype=np.int64))
    adds = sum(1 for layer in workload.layers if layer.kind is OpKind.ELTWISE and len(set(layer.inputs)) > 1)
    return max(depth.values()), int(per_level.max()), adds


def features(workload: Workload) -> FloatArray:
    """The feature vector of ``workload`` the trees read (``feature_names()`` gives the columns)."""
    return _featurize(workload)[0]


def _featurize(workload: Workload) -> tuple[FloatArray, FloatArray]:
    """The trees' features and the additive prior's columns (``_additive_columns``) of ``workload``."""
    t = _table(workload)
    log = np.log1p
    depth, width, adds = _graph_shape(workload)
    head = [log(t.macs.sum()), log(t.params.sum()), log(t.read_bytes.sum()), log(t.write_bytes.sum()),
            len(t.macs), np.count_nonzero(t.macs), depth, width, adds, log(math.prod(workload.input_shape))]
    n_cat = len(CATEGORIES)
    per_category = np.stack([np.bincount(t.category, minlength=n_cat),
                             log(np.bincount(t.category, t.macs, n_cat)),
                             log(np.bincount(t.category, t.bytes, n_cat)),
                             log(np.bincount(t.category, t.params, n_cat))], axis=1).ravel()
    trees = np.concatenate([np.asarray(head, dtype=np.float64), per_category, _band_features(t),
                            _roofline_features(t), _position_features(t)])
    return trees, _additive_columns(t)


def _additive_columns(t: _LayerTable) -> FloatArray:
    """Kernel count, MACs and bytes per (resolution band, category), and a constant: what per-op prices multiply."""
    cell = _band(t) * len(CATEGORIES) + t.category
    size = RESOLUTION_BANDS * len(CATEGORIES)
    return np.concatenate([np.bincount(cell, minlength=size), np.bincount(cell, t.macs, size),
                           np.bincount(cell, t.bytes, size), [1.0]]).astype(np.float64)


def _band(t: _LayerTable) -> npt.NDArray[np.int64]:
    return np.clip(np.rint(np.log2(t.positions) / 2), 0, RESOLUTION_BANDS - 1).astype(np.int64)


def _band_features(t: _LayerTable) -> FloatArray:
    group_of = np.asarray([BAND_GROUPS.index(_BAND_GROUP.get(cat, "vector")) for cat in CATEGORIES])
    cell = _band(t) * len(BAND_GROUPS) + group_of[t.category]
    size = RESOLUTION_BANDS * len(BAND_GROUPS)
    stats = np.stack([np.bincount(cell, minlength=size), np.log1p(np.bincount(cell, t.macs, size)),
                      np.log1p(np.bincount(cell, t.bytes, size))], axis=1)
    return stats.ravel().astype(np.float64)


def _roofline_features(t: _LayerTable) -> FloatArray:
    ratios = np.asarray(ROOFLINE_RATIOS)[:, None]
    sums: FloatArray = np.maximum(t.macs[None, :], ratios * t.bytes[None, :]).sum(axis=1)
    return np.log1p(sums)


def _position_features(t: _LayerTable) -> FloatArray:
    compute = np.flatnonzero(t.macs > 0)[:MAX_POSITIONS]
    depthwise = (t.category[compute] == CATEGORIES.index("dwconv")).astype(np.float64)
    described = np.stack([np.log1p(t.macs[compute]), np.log1p(t.bytes[compute]), np.log2(t.positions[compute]),
                          t.kernel_area[compute], t.stride[compute], depthwise], axis=1)
    block = np.zeros((MAX_POSITIONS, len(POSITION_FIELDS)))
    block[:len(compute)] = described
    return block.ravel()


def feature_matrix(workloads: Sequence[Workload]) -> tuple[FloatArray, FloatArray]:
    """The trees' features and the additive prior's columns of each workload, one row each."""
    if not workloads:
        raise ConfigError("No workloads to featurize.", "Pass at least one workload.")
    trees, additive = zip(*(_featurize(w) for w in workloads))
    return np.stack(trees), np.stack(additive)


@dataclass(frozen=True)
class AdditivePrior:
    """Non-negative per-op prices: latency ~ columns @ prices (``_additive_columns``), fitted by NNLS."""

    scale: FloatArray
    prices: FloatArray
    floor_ms: float

    @classmethod
    def fit(cls, columns: FloatArray, latencies_ms: FloatArray) -> AdditivePrior:
        try:
            optimize = importlib.import_module("scipy.optimize")
        except ImportError:
            raise ConfigError("Whole-network predictors need SciPy (installed with scikit-learn), which is missing.",
                              'pip install "nn2hw[predict]"') from None
        scale = np.maximum(columns.max(axis=0), 1e-12)  # unit columns: a well-conditioned problem
        prices, _ = optimize.nnls(columns / scale, latencies_ms)
        # never a zero or negative prior (a network of kernels the samples lacked): the trees correct it
        return cls(scale, np.asarray(prices, dtype=np.float64), float(1e-3 * np.median(latencies_ms)))

    def __call__(self, columns: FloatArray) -> FloatArray:
        return np.maximum((columns / self.scale) @ self.prices, self.floor_ms)


class WholePredictor(Predictor):
    """Gradient-boosted trees on whole-network features, fitted on the log ratio of latency to an additive prior.

    Log scale: a device's latencies span orders of magnitude across a space, and squared error
    in log space weighs a 10 % miss on a 2 ms network like one on a 200 ms network, which is what
    ranking (Kendall tau) and relative errors (within +-10 %, RMSPE) measure; predictions are
    positive by construction.
    """

    kind: ClassVar[str] = "whole"

    def __init__(self, workloads: Sequence[Workload], latencies_ms: Sequence[float], *, device: str, seed: int,
                 hyper: Mapping[str, Any] | None = None) -> None:
        self.device = device
        self.seed = seed
        self.hyper = dict(DEFAULT_HYPER if hyper is None else hyper)
        self.workloads = tuple(workloads)
        self.latencies_ms = tuple(latencies_ms)
        ensemble = sklearn_ensemble()
        try:
            self._model = ensemble.GradientBoostingRegressor(random_state=seed, **self.hyper)
        except TypeError as exc:
            raise ConfigError(f"The regressor settings {self.hyper} are not GradientBoostingRegressor's ({exc}).",
                              f"Use scikit-learn's GradientBoostingRegressor parameters, e.g. {dict(DEFAULT_HYPER)}.") \
                from None
        trees, additive = feature_matrix(self.workloads)
        measured = np.asarray(self.latencies_ms, dtype=np.float64)
        self._prior = AdditivePrior.fit(additive, measured)
        prior = self._prior(additive)
        self._model.fit(np.column_stack([trees, np.log(prior)]), np.log(measured / prior))

    def predict(self, workload: Workload) -> float:
        return float(self.predict_many([workload])[0])

    def predict_many(self, workloads: Sequence[Workload]) -> FloatArray:
        """Predicted milliseconds of each workload (one regressor call for all)."""
        if not workloads:
            return np.zeros(0)
        trees, additive = feature_matrix(workloads)
        prior = self._prior(additive)
        log_ratio = np.asarray(self._model.predict(np.column_stack([trees, np.log(prior)])), dtype=np.float64)
        return prior * np.exp(log_ratio)

    def stored(self) -> dict[str, Any]:
        samples = [{"workload": w.to_dict(), "latency_ms": ms} for w, ms in zip(self.workloads, self.latencies_ms)]
        return {"hyper": dict(self.hyper), "samples": samples}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> WholePredictor:
        """Refit from a stored record (``to_dict``'s output)."""
        samples = record["samples"]
        workloads = [Workload.from_dict(sample["workload"]) for sample in samples]
        latencies = check_latencies([sample["latency_ms"] for sample in samples], "Stored latency")
        return cls(workloads, latencies, device=str(record["device"]), seed=int(record["seed"]),
                   hyper=dict(record["hyper"]))


register_kind(WholePredictor.kind, WholePredictor.from_dict)


def fit(workloads: Sequence[Workload], latencies_ms: Sequence[float], *, device: str | None = None,
        seed: int = 0) -> WholePredictor:
    """A whole-network predictor for ``device`` from measured (workload, milliseconds) pairs."""
    workloads, latencies = list(workloads), list(latencies_ms)
    if len(workloads) != len(latencies):
        raise ConfigError(f"fit got {len(workloads)} workloads but {len(latencies)} latencies.",
                          "Give one measured latency per workload, in the same order.")
    if len(workloads) < MIN_SAMPLES:
        raise ConfigError(f"fit got {len(workloads)} measured networks; a predictor needs at least {MIN_SAMPLES}.",
                          f"Measure at least {MIN_SAMPLES} networks (hundreds rank a search space well).")
    bad = [i for i, w in enumerate(workloads) if not isinstance(w, Workload)]
    if bad:
        raise ConfigError(f"fit's workloads #{bad[:5]} are not Workload records.",
                          "Pass nn2hw Workload objects (nn2hw.api.load_workload builds them).")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"The seed must be an integer, got {seed!r}.", "Pass seed=N.")
    return WholePredictor(workloads, check_latencies(latencies), device=device or "unnamed device", seed=seed)
