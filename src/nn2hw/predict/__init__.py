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

from nn2hw.predict.base import PREDICTOR_KINDS, Predictor, load
from nn2hw.predict.check import Accuracy, accuracy
from nn2hw.predict.sampling import build
from nn2hw.predict.whole import WholePredictor, fit

__all__ = ["PREDICTOR_KINDS", "Accuracy", "Predictor", "WholePredictor", "accuracy", "build", "fit", "load"]
