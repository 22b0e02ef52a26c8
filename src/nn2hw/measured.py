"""Time the network a user deploys on this machine's CPU: the measured side of the ``cpu`` template.

A network (a torch model with its plan applied) is exported the way a user deploys it
(``nn2hw.deploy.export_onnx``: physically reduced shapes, int8 operators where the plan quantized)
and that file is timed with ONNX Runtime (``cpu:onnxruntime``), or the model itself with torch
(``cpu:torch``), under ``nn2hw.measure``'s protocol; several networks are timed interleaved, so
drift on a shared machine hits them alike. Every measurement is kept in the measurement store:
a network is never timed twice. The runtime's per-kernel times are mapped back to the workload's
layers (``measured_cost``).

A finalist's re-check is timed anew, interleaved with its base network (``measure_against_base``),
and its median referred to the base's reference timing (the one the spec was checked against):
a shared machine that runs slower for a while (another tenant, stop 31: the same export 18 %
slower ten minutes later) slows both alike, so that drift does not decide the re-check.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.hardware.base import HardwareTemplate
from nn2hw.hardware.cpu import margin_of, measured_cost, measuring_protocol
from nn2hw.hardware.records import NetworkCost
from nn2hw.measure import Measurement, MeasurementStore, Runner, measure, onnx_runner
from nn2hw.workload import Workload

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.deploy import ExportResult
    from nn2hw.plan import Plan

IQR_TO_SIGMA = 1.349
"""A normal distribution's IQR in standard deviations."""
MEDIAN_SE = 1.2533
"""Standard error of a sample median, in units of sigma / sqrt(n) (normal samples)."""


@dataclass(frozen=True)
class Drift:
    """How the machine ran while a network was timed against how it ran when its base network was
    timed for reference: the base's median in the same interleaved rounds over its reference median
    (1.1: 10 % slower now)."""

    base_now_ms: float
    base_reference_ms: float

    @property
    def factor(self) -> float:
        return self.base_now_ms / self.base_reference_ms

    def to_dict(self) -> dict[str, float]:
        return {"base_median_ms": self.base_now_ms, "base_reference_median_ms": self.base_reference_ms,
                "factor": self.factor}


@dataclass(frozen=True)
class MeasuredNetwork:
    """One network timed on this CPU: the cost record (per kernel, adding up to the median), the
    measurement (runs, median, IQR, threads, runtime, CPU) and the exported file that was timed.
    With ``drift`` (timed against its base) the median and the cost are referred to the base's
    reference timing: the measured median divided by the drift factor."""

    cost: NetworkCost
    measurement: Measurement
    export: ExportResult | None = None
    drift: Drift | None = None

    @property
    def median_ms(self) -> float:
        return self.measurement.median_ms / (1.0 if self.drift is None else self.drift.factor)

    def to_dict(self) -> dict[str, Any]:
        """The ``measurement`` section of a result: the measurement plus what was timed (and, timed
        against its base, the drift and the referred median)."""
        data = self.measurement.to_dict()
        if self.export is not None:
            data["onnx"] = self.export.to_dict()
        if self.drift is not None:
            data.update({"drift": self.drift.to_dict(), "referred_median_ms": self.median_ms})
        return data


def input_shape(workload: Workload, options: Mapping[str, Any]) -> tuple[int, ...]:
    """The timed input: the ``input_shape`` option or the workload's, with the ``batch`` option."""
    shape = tuple(options.get("input_shape") or workload.input_shape)
    if not shape:
        raise ConfigError(f"The workload {workload.name!r} does not record its input shape.",
                          "Give it as --hw-param input_shape=NxCxHxW.")
    return (options["batch"], *shape[1:]) if "batch" in options else shape


def measure_models(template: HardwareTemplate, device: str | None, options: Mapping[str, Any],
                   networks: Sequence[tuple[nn.Module, Workload, Plan | None]], *,
                   store: MeasurementStore | None = None, check: bool = True) -> list[MeasuredNetwork]:
    """Time ``(model, workload, plan)`` networks interleaved: the base ``model`` with ``plan``
    applied (None: the model as it is), whose ``workload`` (the plan applied) names the kernels.
    ONNX Runtime times each network's exported file (int8 where the plan quantized weights and
    activations to 8 bits), torch the model itself."""
    from nn2hw.compress import apply_plan
    from nn2hw.deploy import TorchRunner, export_onnx, kernel_layers
    from nn2hw.deploy.inputs import input_dtype

    protocol = measuring_protocol(device, options)
    runners: list[Runner] = []
    exports: list[ExportResult | None] = []
    with tempfile.TemporaryDirectory(prefix="nn2hw-measure-") as folder:
        for i, (model, workload, plan) in enumerate(networks):
            shape = input_shape(workload, options)
            if protocol.runtime == "torch":
                runners.append(TorchRunner(model if plan is None else apply_plan(plan, model, shape), shape,
                                           threads=protocol.threads, dtype=input_dtype(workload)))
                exports.append(None)
                continue
            exported = export_onnx(model, Path(folder) / f"network{i}.onnx", plan=plan, workload=workload,
                                   input_shape=shape, check=check)
            runners.append(onnx_runner(exported.path, protocol))
            exports.append(exported)
        measurements = measure(runners, protocol, store=store)
    results = []
    for (_, workload, _), measurement, export in zip(networks, measurements, exports, strict=True):
        mapping = kernel_layers([k.name for k in measurement.kernels], workload, _kernel_outputs(measurement))
        cost = measured_cost(template, protocol.runtime, workload, measurement, mapping)
        results.append(MeasuredNetwork(cost, measurement, export))
    return results


def measure_against_base(template: HardwareTemplate, device: str | None, options: Mapping[str, Any],
                         model: nn.Module, workload: Workload, plan: Plan, reference: MeasuredNetwork
                         ) -> MeasuredNetwork:
    """The network ``plan`` makes of ``model`` (base ``workload``) timed now, interleaved with the base
    network in a throwaway store (both timed anew), its median and cost referred to ``reference``
    (the base's timing the spec was checked against): x reference median / base median now."""
    from nn2hw.compress import apply_plan

    with tempfile.TemporaryDirectory(prefix="nn2hw-against-base-") as folder:
        base_now, timed = measure_models(template, device, options,
                                         [(model, workload, None), (model, apply_plan(plan, workload), plan)],
                                         store=MeasurementStore(Path(folder) / "pair.sqlite"))
    drift = Drift(base_now.measurement.median_ms, reference.measurement.median_ms)
    note = (f"referred to the base network's reference timing: the base ran {drift.base_now_ms:.4g} ms in the same "
            f"rounds against {drift.base_reference_ms:.4g} ms then (x{drift.factor:.3f}), so each time here is the "
            f"measured one / {drift.factor:.3f}")
    layers = tuple(replace(layer, latency_ms=layer.latency_ms / drift.factor) for layer in timed.cost.layers)
    return replace(timed, cost=replace(timed.cost, layers=layers, notes=(*timed.cost.notes, note)), drift=drift)


def measure_onnx_file(template: HardwareTemplate, device: str | None, options: Mapping[str, Any], path: str | Path,
                      workload: Workload, *, store: MeasurementStore | None = None) -> MeasuredNetwork:
    """Time an ONNX file as it is (ONNX Runtime only: a file has no torch model)."""
    from nn2hw.deploy import kernel_layers

    protocol = measuring_protocol(device, options)
    if protocol.runtime != "onnxruntime":
        raise ConfigError(f"An ONNX file is timed with ONNX Runtime, not {protocol.runtime}.",
                          "Use --hardware cpu:onnxruntime with --onnx, or give a zoo --model for cpu:torch.")
    shapes = {_input_name(path): input_shape(workload, options)}
    measurement, = measure([onnx_runner(path, protocol, input_shapes=shapes)], protocol, store=store)
    mapping = kernel_layers([k.name for k in measurement.kernels], workload, _kernel_outputs(measurement))
    return MeasuredNetwork(measured_cost(template, protocol.runtime, workload, measurement, mapping), measurement)


def _kernel_outputs(measurement: Measurement) -> dict[str, str]:
    """Kernel name -> the tensor it writes, where the runtime recorded it."""
    return {k.name: k.output for k in measurement.kernels if k.output}


def _input_name(path: str | Path) -> str:
    """The name of the graph input an ONNX file is fed through (its first input that is not a
    weight: older exports list initializers among the inputs)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return next(i.name for i in graph.input if i.name not in weights)


def meets(measured: MeasuredNetwork, latency_ms: float, margin: float) -> bool:
    """A measured median (referred to the base's reference timing, when timed against it) meets a
    latency spec with the margin kept for measurement drift."""
    return measured.median_ms * (1 + margin) <= latency_ms


def missed(measured: MeasuredNetwork, latency_ms: float | None, margin: float, predicted_ms: float) -> str:
    """Why a measured network misses a latency spec with the margin ('' when it meets it, or
    without a latency spec)."""
    if latency_ms is None or meets(measured, latency_ms, margin):
        return ""
    m, drift = measured.measurement, measured.drift
    referred = "" if drift is None else (f", {measured.median_ms:.4g} ms referred to the base's reference timing: "
                                         f"the base ran x{drift.factor:.3f} of it in the same rounds")
    return (f"measured median {m.median_ms:.4g} ms (IQR {m.iqr_ms:.3g} ms{referred}; predicted "
            f"{predicted_ms:.4g} ms) does not keep the {margin:.0%} margin below {latency_ms:g} ms")


def verified_base(template: HardwareTemplate, device: str | None, options: Mapping[str, Any], model: nn.Module,
                  workload: Workload, latency_ms: float | None) -> MeasuredNetwork:
    """The base network measured (or read from the store) and checked by ``check_verifiable``. A
    measurement too noisy to verify ``latency_ms`` is forgotten and timed once more before that
    refusal stands: one taken while another job ran would otherwise stay in the store and refuse
    every later search of this network."""
    from nn2hw.measure import default_store

    base, = measure_models(template, device, options, [(model, workload, None)])
    if latency_ms is None:
        return base
    try:
        check_verifiable(base, latency_ms, margin_of(options))
        return base
    except ConfigError:  # too noisy (a spec below the runtime's floor is an InfeasibleError: no retry)
        key, protocol = base.measurement.network, measuring_protocol(device, options).key()
        default_store().forget(lambda entry: entry.network == key and entry.protocol == protocol)
    base, = measure_models(template, device, options, [(model, workload, None)])
    check_verifiable(base, latency_ms, margin_of(options))
    return base


def check_verifiable(base: MeasuredNetwork, latency_ms: float, margin: float) -> None:
    """Refuse a latency spec this machine's measurements cannot verify: one below the time the
    runtime spends outside kernels (no network change removes it), or a margin smaller than twice
    the standard error of a median at the base network's noise (a pass would be a coin toss)."""
    m = base.measurement
    floor = max(m.overhead_ms, 0.0)
    if latency_ms <= floor:
        raise InfeasibleError(
            f"A latency spec of {latency_ms:g} ms is below the {floor:.3g} ms this runtime spends outside kernels "
            f"on every inference (measured on the base network: median {m.median_ms:.4g} ms).",
            "Relax --latency-ms above it.", best_bound=floor)
    relative_sigma = m.iqr_ms / IQR_TO_SIGMA / m.median_ms
    standard_error = MEDIAN_SE * relative_sigma / math.sqrt(m.runs)
    if margin < 2 * standard_error:
        raise ConfigError(
            f"The measurement noise is too large to verify a latency spec with a {margin:.1%} margin: the base "
            f"network's median {m.median_ms:.4g} ms has an IQR of {m.iqr_ms:.3g} ms over {m.runs} runs, so a median "
            f"is known to about ±{standard_error:.1%} (one standard error).",
            f"Raise --hw-param margin to at least {2 * standard_error:.3f}, or repeats (now {m.runs}); or, if "
            "another job ran while it was timed, forget the stored measurement (`nn2hw measurements forget "
            f"{m.network[:16]}`) and run again on a quieter machine (fewer concurrent jobs).")
