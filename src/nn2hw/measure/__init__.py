"""Measured latency on this machine: time networks with a protocol that survives a noisy shared CPU.

A `Protocol` fixes threads, warm-up and repetitions; `measure` warms each `Runner` up, times them in
interleaved rounds (median, quartiles, Tukey outliers), profiles per-kernel times, and keeps every
measurement in a `MeasurementStore` keyed by network, machine fingerprint and protocol, so nothing is
timed twice (until the user forgets it: ``nn2hw measurements``). ONNX Runtime runners come from
`onnx_runner` (onnxruntime is the optional extra ``nn2hw[measure]``, imported only when used). Torch-free.
"""

from __future__ import annotations

from nn2hw.measure.machine import Machine, this_machine
from nn2hw.measure.onnxrt import onnx_runner
from nn2hw.measure.protocol import OPTIMIZATION_LEVELS, RUNTIMES, Protocol
from nn2hw.measure.records import KernelTime, Measurement
from nn2hw.measure.store import MeasurementStore, StoredMeasurement, default_store
from nn2hw.measure.timing import Runner, measure, measure_onnx, probe_ms

__all__ = ["OPTIMIZATION_LEVELS", "RUNTIMES", "KernelTime", "Machine", "Measurement", "MeasurementStore", "Protocol",
           "Runner", "StoredMeasurement", "default_store", "measure", "measure_onnx", "onnx_runner", "probe_ms",
           "this_machine"]
