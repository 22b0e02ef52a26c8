"""This machine's CPU as a measured hardware template (``--hardware cpu``, ``cpu:onnxruntime``, ``cpu:torch``).

The one real device every user has. Two ways to cost a network on it:

- **measured** (``nn2hw.measured``): the network a user deploys (the plan applied, exported to
  ONNX with int8 operators where the plan quantized) is timed with ``nn2hw.measure``'s protocol:
  fixed threads, warm-up, interleaved repetitions, median and quartiles; the runtime's profiler
  gives per-kernel times, mapped back to the workload's layers (``measured_cost``). ``analyze`` on
  a model does this, and the search re-measures its finalists this way.
- **predicted** (``cost``/``explore``, what the search costs candidates with): a kernel predictor
  built on this machine (``nn2hw predictor build``, cached in ``NN2HW_CACHE/predictors`` per
  machine, runtime and threads, built on first use), scaled by ``calibration`` (the search sets
  it to measured / predicted of the base network).

There is no design to explore: a CPU is what it is; threads, batch and the runtime are options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nn2hw._checks import as_float, as_int, as_shape
from nn2hw.hardware.base import TEMPLATES, HardwareTemplate, Option
from nn2hw.hardware.predicted import (
    FUSED_REASON,
    UNKERNELED_REASON,
    PredictedTemplate,
    bottleneck_of,
    load_predictor,
    predicted_cost,
    predictor_dir,
)
from nn2hw.hardware.records import Execution, LayerCost, NetworkCost, Uncosted
from nn2hw.predict.sampling import DEFAULT_BUDGET_S
from nn2hw.workload import OpKind, Workload

if TYPE_CHECKING:
    from nn2hw.measure import Measurement, Protocol
    from nn2hw.predict import Predictor

RUNTIMES = ("onnxruntime", "torch")
DEFAULT_MARGIN = 0.05
"""A measured median meets a latency spec X when median x (1 + margin) <= X: the margin absorbs the
drift between separate measurements of one network on a shared machine (docs/measured-devices.md)."""
DEFAULT_FINALISTS = 10
"""How many of a search's best candidates are re-measured, at least, before it gives up."""
DEFAULT_PREDICT_MARGIN = 0.05
"""The search keeps predicted candidates this much further below the spec (on top of ``margin``)
for the predictor's error, so that the finalists it re-measures pass."""
OVERHEAD = "(runtime overhead)"
"""The record of the time outside kernels, so that the layers add up to the measured median."""
UNPROFILED_REASON = (f"a functional op, not a module: torch's per-module timing does not see it, so its time is "
                     f"inside {OVERHEAD!r}")


OPTIONS = (
    Option("threads", lambda v: as_int(v, "threads"), "intra-op threads the runtime uses (default 1)"),
    Option("repeats", lambda v: as_int(v, "repeats", 5), "timed runs per network, interleaved (default 30)"),
    Option("warmup", lambda v: as_int(v, "warmup", 0), "untimed runs before timing (default 5)"),
    Option("passes", lambda v: as_int(v, "passes", 1),
           "passes the timed runs are split over when networks are timed together, each warmed up again "
           "(default 1)"),
    Option("batch", lambda v: as_int(v, "batch"), "batch size of the timed input (default: the workload's)"),
    Option("input_shape", lambda v: as_shape(v, "input_shape"),
           "input shape NxCxHxW of the timed network (default: the workload's)"),
    Option("margin", lambda v: as_float(v, "margin"),
           f"relative margin a measured median keeps below a latency spec (default {DEFAULT_MARGIN})"),
    Option("predict_margin", lambda v: as_float(v, "predict_margin"),
           f"extra relative margin predicted candidates keep below a latency spec (default {DEFAULT_PREDICT_MARGIN})"),
    Option("finalists", lambda v: as_int(v, "finalists"),
           f"best candidates a search re-measures at least, before giving up (default {DEFAULT_FINALISTS})"),
    Option("predictor", lambda v: str(v), "predictor file the search costs candidates with (default: this "
                                          "machine's, built on first use)"),
    Option("build_budget_s", lambda v: as_float(v, "build_budget_s"),
           f"seconds a first-use predictor build may take (default {DEFAULT_BUDGET_S:g})"),
    Option("calibration", lambda v: as_float(v, "calibration"),
           "factor on predictions (the search sets it to measured / predicted of the base network)"),
)


class CpuTemplate(PredictedTemplate):
    """This machine's CPU: networks timed with ONNX Runtime or torch, candidates predicted."""

    name = "cpu"
    description = ("This machine's CPU, measured: the deployed network timed with ONNX Runtime (cpu:onnxruntime, "
                   "default) or torch (cpu:torch) at fixed threads, median and IQR of interleaved runs, per-kernel "
                   "times from the runtime's profiler; search candidates predicted by a kernel predictor built here")
    options = OPTIONS
    measured = True

    def devices(self) -> Sequence[str]:
        return RUNTIMES

    def predictor(self, device: str | None, options: Mapping[str, Any]) -> Predictor:
        return load_predictor(self.predictor_file(device, options))

    def cost(self, workload: Workload, design: Any, device: str | None = None, **options: Any) -> NetworkCost:
        """The predicted cost (a kernel predictor of this machine, times ``calibration``)."""
        path = self.predictor_file(device, options)
        scale = options.get("calibration", 1.0)
        note = f"predicted by {path}" + (f", calibrated x{scale:.4g} on the measured base network"
                                         if scale != 1.0 else "")
        return predicted_cost(self, device or RUNTIMES[0], workload, self.predictor(device, options), scale=scale,
                              notes=(note,))

    def predictor_file(self, device: str | None, options: Mapping[str, Any],
                       workloads: Sequence[Workload] = ()) -> Path:
        """The predictor candidates are costed with: the ``predictor`` option, else this machine's,
        built with ``nn2hw.predict.build`` on first use (its kernels sampled from ``workloads``, the
        networks about to be searched, and the built-in shape prior), then kept."""
        if "predictor" in options:
            from nn2hw.hardware.predicted import predictor_path

            return predictor_path(options["predictor"])
        runtime = device or RUNTIMES[0]
        threads = options.get("threads", 1)
        path = predictor_dir() / f"{default_predictor_name(runtime, threads)}.json"
        if not path.is_file():
            from nn2hw.predict import build

            budget_s = options.get("build_budget_s", DEFAULT_BUDGET_S)
            print(f"nn2hw: building this CPU's latency predictor ({runtime}, {threads} thread(s), up to "
                  f"{budget_s:g} s; once per machine) into {path}", flush=True)
            build("cpu", budget_s=budget_s, threads=threads, workloads=list(workloads) or None,
                  progress=lambda line: print(f"nn2hw: {line}", flush=True)).save(path)
        return path


def measuring_protocol(device: str | None, options: Mapping[str, Any]) -> Protocol:
    """The measuring protocol the options ask for on ``device`` (a runtime)."""
    from nn2hw.measure import Protocol

    return Protocol(runtime=device or RUNTIMES[0], threads=options.get("threads", 1),
                    warmup=options.get("warmup", 5), repeats=options.get("repeats", 30),
                    passes=options.get("passes", 1))


def default_predictor_name(runtime: str, threads: int) -> str:
    """This machine's predictor for a runtime and thread count (a name in ``NN2HW_CACHE/predictors``),
    its int8 kernels timed in the storage this CPU's exports use (``nn2hw.predict.kernels.native_int8``),
    its kernels those of this version of the detector (``DETECTOR_VERSION``), fitted by this regressor
    (``nn2hw.predict.kernel.REGRESSOR``)."""
    from nn2hw.measure import this_machine
    from nn2hw.predict.kernel import REGRESSOR
    from nn2hw.predict.kernels import DETECTOR_VERSION, native_int8

    return (f"cpu-{runtime}-t{threads}-{native_int8().name}-k{DETECTOR_VERSION}-{REGRESSOR}-"
            f"{this_machine(runtime).fingerprint()}")


def margin_of(options: Mapping[str, Any]) -> float:
    """The relative margin a measured median keeps below a latency spec (the ``margin`` option)."""
    return float(options.get("margin", DEFAULT_MARGIN))


def search_margin_of(options: Mapping[str, Any]) -> float:
    """The relative margin predicted candidates keep below a latency spec: the measurement margin
    plus the prediction margin."""
    return margin_of(options) + float(options.get("predict_margin", DEFAULT_PREDICT_MARGIN))


def measured_cost(template: HardwareTemplate, device: str, workload: Workload, measurement: Measurement,
                  kernel_layers: Mapping[str, tuple[str, ...]]) -> NetworkCost:
    """A measurement as a cost record: one ``LayerCost`` per runtime kernel (named by the first
    workload layer it runs, the others fused into it), plus the time outside kernels, so the records
    add up to the measured median. Profiling costs every kernel about the same few microseconds;
    when their sum exceeds the median, that per-kernel cost is taken out of each (``profiler_cost_ms``;
    said in the notes)."""
    by_name = {layer.name: layer for layer in workload.layers}
    total = measurement.kernels_ms
    cost_ms = profiler_cost_ms([k.median_ms for k in measurement.kernels], measurement.median_ms)
    costs: list[LayerCost] = []
    uncosted: list[Uncosted] = []
    seen: set[str] = set()
    for kernel in measurement.kernels:
        layers = [by_name[n] for n in kernel_layers.get(kernel.name, ()) if n in by_name and n not in seen]
        head = layers[0].name if layers else kernel.name
        op = kernel.op_type + (f" ({'+'.join(kernel.fused)})" if kernel.fused else "")
        label = bottleneck_of(layers) if layers else ("compute" if _dense(kernel.op_type) else "memory")
        costs.append(LayerCost(name=head, op=op, macs=sum(layer.macs for layer in layers), cycles=0.0,
                               latency_ms=max(kernel.median_ms - cost_ms, 0.0), bottleneck=label,
                               execution=Execution.ARRAY if label == "compute" else Execution.VECTOR))
        seen.add(head)
        for layer in layers[1:]:
            uncosted.append(Uncosted(layer.name, layer.op or layer.kind.value, FUSED_REASON.format(kernel=head),
                                     Execution.FUSED, head))
            seen.add(layer.name)
    overhead_ms = measurement.median_ms - total if not cost_ms else 0.0  # taken out: none left (no -1e-16)
    costs.append(LayerCost(name=OVERHEAD, op="runtime", macs=0, cycles=0.0, latency_ms=overhead_ms,
                           bottleneck="overhead", execution=Execution.VECTOR))
    untimed = (Uncosted("", "", UNKERNELED_REASON, Execution.LAYOUT) if measurement.runtime != "torch" else
               Uncosted("", "", UNPROFILED_REASON, Execution.FUSED, OVERHEAD))
    for layer in workload.layers:
        if layer.kind is not OpKind.INPUT and layer.name not in seen:
            uncosted.append(replace(untimed, name=layer.name, op=layer.op or layer.kind.value))
    notes = [f"measured: median {measurement.median_ms:.4g} ms (IQR {measurement.iqr_ms:.3g} ms) of "
             f"{measurement.runs} interleaved runs, {measurement.threads} thread(s), {measurement.runtime} "
             f"{measurement.runtime_version}; kernels {total:.4g} ms, outside kernels {overhead_ms:.3g} ms"]
    if cost_ms:
        notes.append(f"profiling cost each kernel {cost_ms * 1e3:.3g} us here, taken out of each so that the "
                     "kernels add up to the un-profiled median")
    return NetworkCost(template=template.name, device=device, design={}, clock_mhz=0.0, layers=tuple(costs),
                       uncosted=tuple(uncosted), notes=tuple(notes))


def profiler_cost_ms(kernel_ms: Sequence[float], median_ms: float) -> float:
    """The per-kernel cost ``c`` of profiling when the profiled kernels add up to more than the
    un-profiled median: the one with sum(max(t - c, 0)) == median, else 0.

    The profiler's cost is per kernel, not proportional to it: on a 2-core EPYC, ONNX Runtime
    profiled 33 one-value Neg ops at 5 us each while they ran at 0.6 us each unprofiled, and
    ResNet-20's 52 profiled kernels exceeded its median by 4.3 us per kernel. Scaling every kernel
    down by one factor instead (x0.887 there) took 11 % off each conv and left a 7 us unfused Add at
    6.2 us, of which by that per-kernel cost about 4 us are the profiler's."""
    excess = sum(kernel_ms) - median_ms
    if excess <= 0:
        return 0.0
    ordered = sorted(kernel_ms)
    remaining, dropped = sum(ordered), 0
    cost = (remaining - median_ms) / len(ordered)
    while cost > ordered[dropped]:  # kernels below the cost count 0: solve again on the rest
        remaining -= ordered[dropped]
        dropped += 1
        cost = (remaining - median_ms) / (len(ordered) - dropped)  # the largest alone always solves it
    return cost


def _dense(op_type: str) -> bool:
    return any(word in op_type for word in ("Conv", "Gemm", "MatMul"))


TEMPLATES.register(CpuTemplate.name, CpuTemplate())
