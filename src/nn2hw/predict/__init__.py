"""Learned latency predictors: milliseconds for a workload on a device someone measured.

Two kinds, both stored as measurements + hyper-parameters and refitted on ``load`` (never pickled):

- whole-network (``fit``): from (workload, latency) pairs of any device, gradient-boosted trees on
  features that see how layers combine (HELP's setting: a phone or board measured as a whole);
- kernel-level (``build``): nn-Meter's way on this machine: detect the runtime's fused kernels,
  measure sampled kernel configurations, one regressor per kernel type.

``accuracy`` scores a predictor on held-out measurements (within +-5 %/+-10 %, RMSPE, Kendall tau).
Importing this package loads neither scikit-learn nor torch.
"""

from __future__ import annotations

from typing import Any

from nn2hw.predict import build as _kernel_build  # loaded before `build` is defined: see its docstring
from nn2hw.predict.base import PREDICTOR_KINDS, Predictor, load
from nn2hw.predict.check import Accuracy, accuracy
from nn2hw.predict.whole import WholePredictor, fit


def build(*args: Any, **kwargs: Any) -> Predictor:
    """Sample and measure kernels on this machine and fit a kernel-level predictor
    (``nn2hw.predict.build.build``: ``build(device="cpu", *, budget_s=..., seed=0, threads=1, workloads=None,
    progress=None)``).

    The submodule is imported above, before this function is defined: importing a submodule the
    first time binds its name on the package, which would otherwise replace this function by the
    module ``nn2hw.predict.build``.
    """
    predictor: Predictor = _kernel_build.build(*args, **kwargs)
    return predictor


__all__ = ["PREDICTOR_KINDS", "Accuracy", "Predictor", "WholePredictor", "accuracy", "build", "fit", "load"]
