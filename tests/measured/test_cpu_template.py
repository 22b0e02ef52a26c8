"""The measured ``cpu`` template and the ``predictor`` template end to end: ``nn2hw analyze`` times the
network on this machine (per-layer times adding up to the median), a predictor file costs any
workload, and bad input is refused with its fix. Orderings and structure only, never milliseconds."""

from __future__ import annotations

import json
import math

import pytest

from nn2hw.api import analyze, load_workload
from nn2hw.cli import main
from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.hardware import get_template
from nn2hw.hardware.cpu import OVERHEAD
from nn2hw.measure import Measurement
from nn2hw.measured import Drift, MeasuredNetwork, check_verifiable, meets, missed

pytestmark = pytest.mark.timed  # times code on the CPU: runs alone (tests/conftest.py)

pytest.importorskip("onnxruntime", reason="the cpu template needs ONNX Runtime (pip install 'nn2hw[measure]')")


@pytest.fixture(autouse=True)
def cache(predictor_cache, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(predictor_cache))
    return predictor_cache


def test_analyze_times_the_network_and_its_layers_add_up_to_the_median(capsys, tmp_path):
    target = tmp_path / "r20.json"
    code = main(["analyze", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", "cpu",
                 "--json", str(target)])
    out, _ = capsys.readouterr()
    assert code == 0 and "measured: median" in out and "interleaved runs" in out
    data = json.loads(target.read_text())
    m = data["measurement"]
    assert data["latency_ms"] == pytest.approx(m["median_ms"])
    assert {"runs", "median_ms", "q1_ms", "q3_ms", "iqr_ms", "outliers", "threads", "runtime", "runtime_version",
            "machine", "kernels", "onnx"} <= set(m)
    assert m["runs"] == 30 and m["threads"] == 1 and m["runtime"] == "onnxruntime" and m["machine"]["cpu_model"]
    assert m["q1_ms"] <= m["median_ms"] <= m["q3_ms"] and m["iqr_ms"] == pytest.approx(m["q3_ms"] - m["q1_ms"])
    layers = data["layers"]
    overhead = [layer for layer in layers if layer["name"] == OVERHEAD]
    assert len(overhead) == 1 and sum(layer["latency_ms"] for layer in layers) == pytest.approx(m["median_ms"])
    assert overhead[0]["latency_ms"] >= 0 and overhead[0]["latency_ms"] < 0.5 * m["median_ms"]
    # every convolution is timed as (or inside) a kernel; the batch norms are fused into them
    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    timed = {layer["name"] for layer in layers} | {u["name"] for u in data["uncosted"] if u["execution"] == "fused"}
    convs = {layer.name for layer in workload.layers if layer.op == "Conv2d"}
    assert convs <= timed
    assert any("inside the runtime kernel" in u["reason"] and u["name"].endswith("bn1") for u in data["uncosted"])
    dense = sum(layer["latency_ms"] for layer in layers if layer["bottleneck"] == "compute")
    assert dense > 0.5 * sum(layer["latency_ms"] for layer in layers if layer["name"] != OVERHEAD)


def test_torch_runtime_times_modules_and_names_the_functional_ops():
    result = analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu:torch", hw_params={"repeats": "10"})
    m = result.measurement
    assert m is not None and m["runtime"] == "torch" and m["runs"] == 10
    assert result.latency_ms == pytest.approx(m["median_ms"])
    costed = {layer.name for layer in result.cost.layers}
    assert "layer1.0.conv1" in costed and "linear" in costed
    functional = [u for u in result.cost.uncosted if "functional op" in u.reason]
    assert functional and all(u.execution is not None for u in functional)


def test_an_onnx_file_is_timed_as_given(tmp_path):
    from nn2hw import zoo
    from nn2hw.deploy import export_onnx

    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    path = export_onnx(zoo.build("resnet20", "fashion-mnist"), tmp_path / "r20.onnx", workload=workload).path
    result = analyze(onnx=path, hardware="cpu:onnxruntime")
    assert result.measurement is not None and "onnx" not in result.measurement
    assert result.measurement["network"] and result.latency_ms == pytest.approx(result.measurement["median_ms"])


def test_bad_input_is_refused_with_its_fix(tmp_path):
    workload = tmp_path / "w.json"
    workload.write_text(load_workload(model="resnet20", dataset="fashion-mnist").to_json())
    with pytest.raises(ConfigError, match="workload file has no weights") as info:
        analyze(workload=str(workload), hardware="cpu")
    assert "predictor:FILE" in info.value.fix
    with pytest.raises(ConfigError, match="real device"):
        analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu", explore=True)
    with pytest.raises(ConfigError, match="input_shape"):
        analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu", hw_params={"input_shape": "1x0x28"})
    with pytest.raises(ConfigError, match="passes must be an integer 1..10") as info:
        analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu", hw_params={"repeats": "10", "passes": "11"})
    assert "at most one per timed run" in info.value.fix
    with pytest.raises(ConfigError, match="no option or design parameter 'Tm'"):
        analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu", hw_params={"Tm": "8"})
    with pytest.raises(ConfigError, match="No predictor file"):
        get_template(f"predictor:{tmp_path / 'missing.json'}")
    assert main(["analyze", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", "cpu", "--explore"]) == 2


def test_a_predictor_file_is_a_template(cache, tmp_path):
    from nn2hw.predict import load

    path = cache / "predictors" / "test-device.json"
    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    by_file = analyze(model="resnet20", dataset="fashion-mnist", hardware=f"predictor:{path}")
    by_name = analyze(model="resnet20", dataset="fashion-mnist", hardware="predictor:test-device")
    expected = load(path).predict(workload)
    assert by_file.latency_ms == pytest.approx(expected) and by_name.latency_ms == pytest.approx(expected)
    assert "test-device" in get_template("predictor")[0].devices()
    assert len(by_file.cost.layers) == 1 and by_file.cost.layers[0].bottleneck == "network"
    assert all(u.execution is not None for u in by_file.cost.uncosted)


def _measured(median_ms: float, q1_ms: float, q3_ms: float, runs: int = 30, overhead_ms: float = 0.0
              ) -> MeasuredNetwork:
    from nn2hw.hardware.records import NetworkCost
    from nn2hw.measure import KernelTime

    kernels = (KernelTime("k", "Conv", median_ms - overhead_ms),)
    m = Measurement(runs=runs, median_ms=median_ms, q1_ms=q1_ms, q3_ms=q3_ms, min_ms=q1_ms, max_ms=q3_ms, outliers=0,
                    threads=1, runtime="onnxruntime", runtime_version="x", machine={}, kernels=kernels,
                    network="0123456789abcdef-and-more")
    return MeasuredNetwork(NetworkCost("cpu", "onnxruntime", {}, 0.0, ()), m)


def test_a_spec_is_met_with_the_margin_and_refused_below_the_noise():
    quiet = _measured(1.0, 0.98, 1.02)
    assert meets(quiet, 1.05, 0.05) and not meets(quiet, 1.04, 0.05)
    check_verifiable(quiet, 0.6, 0.05)  # a median known to +-0.5 %: verifiable
    noisy = _measured(1.0, 0.7, 1.3)  # IQR 60 %: a median known to about +-10 %
    with pytest.raises(ConfigError, match="noise is too large") as info:
        check_verifiable(noisy, 0.6, 0.05)
    assert "margin" in info.value.fix and "IQR" in info.value.cause
    assert "`nn2hw measurements forget 0123456789abcdef`" in info.value.fix  # a stored noisy base is not re-timed
    wanted = float(info.value.fix.split("at least ")[1].split(",")[0])
    check_verifiable(noisy, 0.6, wanted + 1e-3)
    floor = _measured(1.0, 0.99, 1.01, overhead_ms=0.2)
    with pytest.raises(InfeasibleError, match="outside kernels") as bound:
        check_verifiable(floor, 0.15, 0.05)
    assert math.isclose(bound.value.best_bound, 0.2)


def test_a_network_timed_against_its_base_is_judged_on_its_median_referred_to_the_base_reference():
    """Timed while the machine ran 10 % slow (the base 1.1 x its reference timing), a raw 1.1 ms median
    is 1.0 ms referred: it meets a 1.05 ms spec with the 5 % margin, and alone it would not."""
    from dataclasses import replace

    raw = _measured(1.1, 1.08, 1.12)
    against = replace(raw, drift=Drift(base_now_ms=2.2, base_reference_ms=2.0))
    assert against.median_ms == pytest.approx(1.0) and not meets(raw, 1.05, 0.05) and meets(against, 1.05, 0.05)
    data = against.to_dict()
    assert data["median_ms"] == 1.1 and data["referred_median_ms"] == pytest.approx(1.0)
    assert data["drift"] == {"base_median_ms": 2.2, "base_reference_median_ms": 2.0, "factor": pytest.approx(1.1)}
    said = missed(against, 1.0, 0.05, predicted_ms=0.9)
    assert said.startswith("measured median 1.1 ms (IQR 0.04 ms, 1 ms referred to the base's reference timing: the "
                           "base ran x1.100 of it in the same rounds; predicted 0.9 ms)")


def test_a_finalist_is_timed_anew_in_the_same_rounds_as_its_base(tmp_path, monkeypatch):
    """``measure_against_base``: the cut network and the base timed together now (not read from the
    store), the cut's median and per-layer times divided by the base's drift from its reference."""
    from dataclasses import replace

    from nn2hw import zoo
    from nn2hw.compress import with_uniform_cut
    from nn2hw.measure import MeasurementStore
    from nn2hw.measured import measure_against_base, measure_models
    from nn2hw.plan import Plan

    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path))
    template, _ = get_template("cpu")
    model = zoo.build("resnet20", "fashion-mnist", pretrained=True).eval()
    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    plan = with_uniform_cut(Plan.for_workload(workload, "resnet20", "fashion-mnist"), workload, 0.5)
    options = {"repeats": 20}
    reference, = measure_models(template, "onnxruntime", options, [(model, workload, None)])
    stored = len(MeasurementStore(tmp_path / "measurements.sqlite").entries())
    timed = measure_against_base(template, "onnxruntime", options, model, workload, plan, reference)
    assert len(MeasurementStore(tmp_path / "measurements.sqlite").entries()) == stored  # timed apart from the store
    assert timed.drift is not None and timed.drift.base_reference_ms == reference.median_ms
    assert timed.median_ms == pytest.approx(timed.measurement.median_ms / timed.drift.factor)
    assert sum(layer.latency_ms for layer in timed.cost.layers) == pytest.approx(timed.median_ms)
    assert timed.median_ms < 0.9 * reference.median_ms and "referred to the base network's" in timed.cost.notes[-1]
    slow = replace(reference, measurement=replace(reference.measurement, median_ms=reference.median_ms / 2))
    halved = measure_against_base(template, "onnxruntime", options, model, workload, plan, slow)
    assert halved.median_ms < 0.6 * timed.median_ms  # a base that ran twice as fast then: the cut counts half


def test_passes_are_an_option_of_the_protocol():
    from nn2hw.hardware.cpu import measuring_protocol

    assert measuring_protocol(None, {"passes": 3, "repeats": 12}).passes == 3
    assert measuring_protocol(None, {}).passes == 1


def test_batch_and_input_shape_are_options():
    one = analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu", hw_params={"repeats": "10"})
    eight = analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu",
                    hw_params={"repeats": "10", "batch": "8"})
    larger = analyze(model="resnet20", dataset="fashion-mnist", hardware="cpu",
                     hw_params={"repeats": "10", "input_shape": "1x1x56x56"})
    assert eight.measurement["onnx"]["input_shape"][0] == 8 and larger.measurement["onnx"]["input_shape"][2] == 56
    assert eight.latency_ms > 2 * one.latency_ms and larger.latency_ms > 2 * one.latency_ms


def test_the_same_network_measured_twice_interleaved_agrees_within_the_reported_iqr(tmp_path):
    """Two sessions of one exported network, timed in the same interleaved rounds (the protocol a
    search uses to compare a candidate with its base): drift hits both alike."""
    from dataclasses import dataclass

    from nn2hw import zoo
    from nn2hw.deploy import export_onnx
    from nn2hw.measure import MeasurementStore, Protocol, measure, onnx_runner

    @dataclass
    class Renamed:  # the same network under another store key, so it is timed again
        runner: object
        key: str

        def __getattr__(self, name):
            return getattr(self.runner, name)

        def run(self):
            self.runner.run()

        def profile(self, runs):
            return self.runner.profile(runs)

    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    path = export_onnx(zoo.build("resnet20", "fashion-mnist"), tmp_path / "r20.onnx", workload=workload).path
    protocol = Protocol(repeats=40, profile_runs=0)
    first = onnx_runner(path, protocol)
    second = Renamed(onnx_runner(path, protocol), first.key + "-again")
    a, b = measure([first, second], protocol, store=MeasurementStore(tmp_path / "m.sqlite"))
    assert abs(a.median_ms - b.median_ms) <= max(a.iqr_ms, b.iqr_ms)


def test_profiling_cost_is_taken_out_per_kernel_not_in_proportion():
    """Kernels profiled at 100, 7 and 7 us in a network whose un-profiled median is 102 us: profiling
    cost 4 us each (not 10.5 % of each); a kernel below that cost counts 0, and the rest still add up."""
    from nn2hw.hardware.cpu import profiler_cost_ms

    assert profiler_cost_ms([0.100, 0.007, 0.007], 0.102) == pytest.approx(0.004)
    assert profiler_cost_ms([0.100, 0.007, 0.007], 0.120) == 0.0  # under the median: nothing to take out
    cost = profiler_cost_ms([0.100, 0.001, 0.007], 0.096)  # the 1 us kernel is all profiler: 0, the others 6 us
    assert cost == pytest.approx(0.0055) and (0.100 - cost) + (0.007 - cost) == pytest.approx(0.096)
    assert profiler_cost_ms([0.003, 0.002], 0.0) == 0.003
