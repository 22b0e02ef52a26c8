"""export_onnx: physically reduced shapes, exact int8 operators that ONNX Runtime runs as int8 kernels,
outputs within the stated tolerance, clear errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from nn2hw.compress import apply_plan, with_quantization
from nn2hw.deploy import export as export_module
from nn2hw.deploy import export_onnx
from nn2hw.errors import ConfigError, ModelError
from nn2hw.measure.int8 import INT8_STORAGES, native_int8_storage
from nn2hw.measure.machine import cpu_flags
from nn2hw.plan import Plan
from nn2hw.workload import from_module
from tests.deploy.variants import VARIANTS, cut, int8, zoo_case

SHAPE = (1, 1, 28, 28)


@pytest.fixture(scope="module")
def resnet20():
    torch.set_num_threads(1)
    return zoo_case("resnet20", "fashion-mnist", SHAPE, pretrained=True)


def _initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_outputs_match_torch_within_the_stated_tolerance(resnet20, variant, tmp_path):
    model, workload, plan0 = resnet20
    plan = VARIANTS[variant](plan0, workload, model)
    result = export_onnx(model, tmp_path / "m.onnx", plan=plan, workload=workload)
    assert result.checked and result.max_abs_error <= result.tolerance and result.top1_agreement >= 0.875
    assert len(result.sha256) == 64 and result.input_shape == SHAPE
    if variant == "int8 w8a8":
        assert "int8" in result.tolerance_rule and not result.fp32_layers
        assert set(result.int8_layers) == {l.name for l in workload.compute_layers}
    else:
        assert result.tolerance_rule.startswith("fp32") and not result.int8_layers


def test_a_channel_cut_is_physical(resnet20, tmp_path):
    model, workload, plan0 = resnet20
    plan = cut(0.5)(plan0, workload, model)
    result = export_onnx(model, tmp_path / "cut.onnx", plan=plan, workload=workload)
    weights, after = _initializers(result.path), apply_plan(plan, workload)
    halved = 0
    for layer in workload.compute_layers:
        shape = weights[f"{layer.name}.weight"].shape
        assert shape[:2] == (after.layer(layer.name).out_channels, after.layer(layer.name).in_channels), layer.name
        halved += shape[0] == layer.out_channels // 2
    # every cuttable layer (option-A shortcuts pin the residual widths of this ResNet-20)
    assert halved == sum(len(g.layers) for g in workload.coupling_groups if g.cuttable) > 0


def test_pattern_zeros_stay_dense(resnet20, tmp_path):
    model, workload, plan0 = resnet20
    result = export_onnx(model, tmp_path / "p.onnx", plan=VARIANTS["kernel patterns"](plan0, workload, model),
                         workload=workload)
    weights = _initializers(result.path)
    w = weights["layer1.0.conv1.weight"]
    assert w.shape == (16, 16, 3, 3) and (w == 0).mean() == pytest.approx(3 / 9)
    assert "layer1.0.conv1" in result.masked_layers


@pytest.mark.parametrize("storage", ["auto", "u8u8"])
def test_int8_file_has_int8_operators_and_ort_runs_int8_kernels(resnet20, storage, tmp_path):
    model, workload, plan0 = resnet20
    result = export_onnx(model, tmp_path / "q.onnx", plan=int8(plan0, workload, model), workload=workload,
                         int8_storage=storage)
    stored, why = native_int8_storage(cpu_flags()) if storage == "auto" else (storage, "asked for")
    assert result.int8_storage == stored and result.to_dict()["int8_storage"] == stored
    assert result.int8_storage_reason == why and result.to_dict()["int8_storage_reason"] == why
    graph = onnx.load(str(result.path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    dtype = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(INT8_STORAGES[stored].dtype))
    assert sum(t.data_type == dtype for t in graph.initializer) >= len(workload.compute_layers)
    # the profiler saw an int8 kernel for every quantized layer
    assert set(result.int8_kernels) == set(result.int8_layers)
    assert set(result.int8_kernels.values()) <= {"QLinearConv", "QGemm"}
    assert result.max_abs_error == 0.0  # power-of-two scales: exact on these inputs


def test_a_network_of_nested_containers_exports_every_layer_int8(tmp_path):
    """MobileNetV2's layers sit in containers inside containers (``features.1.conv.0.0``): the node
    ``/features/features.1/conv/conv.0/conv.0.0/Conv`` is that layer, so every layer is int8, each exact
    on its own input (the whole network within the float flips its check allows: with an input and an
    output format per layer, a float32 last bit in the torch model moves one rounding)."""
    model, workload, plan0 = zoo_case("mobilenetv2_fmnist", "fashion-mnist", SHAPE, pretrained=True)
    result = export_onnx(model, tmp_path / "q.onnx", plan=int8(plan0, workload, model), workload=workload)
    assert not result.fp32_layers and set(result.int8_layers) == {l.name for l in workload.compute_layers}
    assert set(result.int8_kernels) == set(result.int8_layers) and result.int8_layer_off == 0.0
    assert result.max_abs_error <= result.tolerance


def test_narrow_bits_are_clipped_exactly(resnet20, tmp_path):
    model, workload, plan0 = resnet20
    batch = torch.randn((8, 1, 28, 28), generator=torch.Generator().manual_seed(5))
    plan = with_quantization(plan0, workload, 5, act_bits=6, model=model, calibration=batch)
    result = export_onnx(model, tmp_path / "q6.onnx", plan=plan, workload=workload)
    assert len(result.int8_kernels) == len(workload.compute_layers)
    assert result.max_abs_error <= result.tolerance
    assert "Clip" in {n.op_type for n in onnx.load(str(result.path)).graph.node}


def test_an_int8_layer_reads_and_writes_on_scales_of_its_own(tmp_path):
    """Calibrated input and output formats become the QuantizeLinear scales before and after the
    int8 kernel (2^-7 in, 2^-2 out for a layer that multiplies by 32), and the file matches torch."""
    layer = torch.nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(4) * 32)
        layer.bias.zero_()
    model = torch.nn.Sequential(layer).eval()
    workload = from_module(model, torch.zeros(1, 4), name="wide")
    plan = with_quantization(Plan.for_workload(workload, "t"), workload, 8, act_bits=8, model=model,
                             calibration=torch.tensor([[0.9, -0.5, 0.25, 0.1]]))
    result = export_onnx(model, tmp_path / "wide.onnx", plan=plan, workload=workload)
    assert result.int8_layers == ("0",) and result.int8_layer_off == 0.0
    assert result.max_abs_error <= result.tolerance
    scales = {name: float(value) for name, value in _initializers(result.path).items() if name.endswith("_scale")}
    assert sorted(v for k, v in scales.items() if k.endswith(("x_scale", "y_scale"))) == [2.0 ** -7, 0.25]


def test_weight_only_quantization_stays_fp32_and_says_why(resnet20, tmp_path):
    model, workload, plan0 = resnet20
    plan = with_quantization(plan0, workload, 8)
    result = export_onnx(model, tmp_path / "w8.onnx", plan=plan, workload=workload)
    assert not result.int8_layers and set(result.fp32_layers) == {l.name for l in workload.compute_layers}
    assert "float activations" in result.fp32_layers["conv1"]
    conv1 = _initializers(result.path)["conv1.weight"]
    step = 2.0 ** (np.frexp(np.abs(conv1).max())[1] + 1 - 8)  # the weights sit on their 8-bit grid
    assert np.allclose(conv1 / step, np.rint(conv1 / step), atol=1e-3)


def test_int8_false_keeps_float_operators(resnet20, tmp_path):
    model, workload, plan0 = resnet20
    result = export_onnx(model, tmp_path / "f.onnx", plan=int8(plan0, workload, model), workload=workload, int8=False)
    assert not result.int8_layers and "int8 disabled" in result.fp32_layers["conv1"]
    assert "QLinearConv" not in {n.op_type for n in onnx.load(str(result.path)).graph.node}


def test_a_disagreement_is_an_error(resnet20, tmp_path, monkeypatch):
    model, _, plan0 = resnet20
    monkeypatch.setattr(export_module, "FP32_RTOL", -1.0)
    with pytest.raises(ModelError, match="disagrees with the torch model"):
        export_onnx(apply_plan(plan0, model, SHAPE), tmp_path / "x.onnx", input_shape=SHAPE)


@pytest.mark.parametrize("shape", [(0, 1, 28, 28), (1, -1, 28, 28), (1, 1.5, 28, 28), ()])
def test_bad_input_shapes(resnet20, shape, tmp_path):
    with pytest.raises(ConfigError, match="positive whole numbers"):
        export_onnx(resnet20[0], tmp_path / "x.onnx", input_shape=shape)


def test_unknown_input_shape(resnet20, tmp_path):
    with pytest.raises(ConfigError, match="input shape of the network is unknown"):
        export_onnx(resnet20[0], tmp_path / "x.onnx")


def test_an_op_the_exporter_cannot_write_is_named(tmp_path):
    class Spectrum(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).abs()

    with pytest.raises(ModelError, match="fft"):
        export_onnx(Spectrum(), tmp_path / "x.onnx", input_shape=(1, 1, 8, 8))
