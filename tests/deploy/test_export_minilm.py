"""The int8 export of a partly quantized MiniLM classifier: its int8 layers compute exactly what the
fake-quantized torch layers compute (the bias is added on the int32 accumulator's grid on both sides),
the check passes where float rounding alone flips the Transformer's fixed-point roundings, and a
wrong int8 layer or a bias off its grid is still refused."""

from __future__ import annotations

import pytest
import torch
from onnx import numpy_helper

from nn2hw import zoo
from nn2hw.compress import apply_plan, with_quantization
from nn2hw.compress._torch import ACT_QUANTIZER_ATTR
from nn2hw.deploy import export as export_module
from nn2hw.deploy import export_onnx
from nn2hw.deploy import freeze as freeze_module
from nn2hw.errors import ModelError
from nn2hw.plan import Plan

pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install "nn2hw[measure]"')
pytest.importorskip("safetensors", reason='needs safetensors: pip install "nn2hw[text]"')

SEQ_LEN = 64
FFN_0_2 = ("encoder.layer.[0-2].intermediate.dense", "encoder.layer.[0-2].output.dense")
"""w8a8 on the FFN of blocks 0-2 (and layer 0's query): the plan the export refused before its
layers added their bias on the int32 grid (max error 1.2 at the logits, top-1 agreement 37.5 %)."""


@pytest.fixture(scope="module")
def minilm():
    from tests.zoo.test_bert import _minilm_files

    _minilm_files()  # skips with the reason when all-MiniLM-L6-v2 is not installed
    torch.set_num_threads(1)
    model = zoo.build("minilm_l6", "wordnet-supersense", pretrained=True).eval()
    workload = zoo.workload("minilm_l6", "wordnet-supersense", seq_len=SEQ_LEN)
    plan = Plan.for_workload(workload, "minilm_l6", "wordnet-supersense")
    ids = torch.randint(1000, 5000, (8, SEQ_LEN), generator=torch.Generator().manual_seed(5))  # word pieces
    for layers in (*FFN_0_2, "encoder.layer.0.attention.self.query"):
        plan = with_quantization(plan, workload, 8, layers, act_bits=8, model=model, calibration=ids)
    return model, workload, plan


@pytest.mark.parametrize("storage", ["auto", "u8u8"])
def test_a_partly_int8_minilm_exports_and_its_int8_layers_are_exact(minilm, storage, tmp_path):
    model, workload, plan = minilm
    result = export_onnx(model, tmp_path / "m.onnx", plan=plan, workload=workload, int8_storage=storage)
    assert len(result.int8_layers) == 7 and set(result.int8_kernels.values()) == {"QGemm"}
    assert result.int8_layer_off == 0.0  # every int8 layer equals its torch layer on its own input
    assert result.max_abs_error <= result.tolerance and "float32-vs-float64" in result.tolerance_rule


def test_the_float_export_of_the_same_plan_passes_too(minilm, tmp_path):
    model, workload, plan = minilm
    result = export_onnx(model, tmp_path / "f.onnx", plan=plan, workload=workload, int8=False)
    assert not result.int8_layers and result.max_abs_error <= result.tolerance


def test_torch_adds_the_bias_on_the_accumulator_grid_and_keeps_the_trained_one(minilm):
    model, _, plan = minilm
    quantized = apply_plan(plan, model, (1, SEQ_LEN))
    name = "encoder.layer.0.intermediate.dense"
    module, base = quantized.get_submodule(name), model.get_submodule(name)
    assert torch.equal(quantized.state_dict()[f"{name}.bias"], base.bias)  # the state_dict is unchanged
    _, layers = freeze_module.freeze(quantized)
    step = layers[name].bias_step
    x = torch.randn(2, 5, 384, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = module(x)
        grid = torch.round(base.bias / step) * step
        act = getattr(module, ACT_QUANTIZER_ATTR)
        want = act.output(torch.nn.functional.linear(act.input(x), module.weight, grid))
    assert torch.equal(y, want) and not torch.equal(grid, base.bias)


def _corrupt_scale(layer_scope: str):
    """quantize_graph, then the input/output scale of one int8 layer doubled: a wrong grid."""
    real = export_module.quantize_graph

    def wrong(proto, layers, storage):
        rewrite = real(proto, layers, storage)
        scale = next(t for t in proto.graph.initializer if layer_scope in t.name and t.name.endswith("_x_scale"))
        scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 2, scale.name))
        return rewrite

    return wrong


def test_a_wrong_int8_layer_is_refused(minilm, tmp_path, monkeypatch):
    model, workload, plan = minilm
    monkeypatch.setattr(export_module, "quantize_graph", _corrupt_scale("/encoder/layer.1/output/dense/"))
    with pytest.raises(ModelError, match="int8 layer 'encoder.layer.1.output.dense' .* computes something other"):
        export_onnx(model, tmp_path / "w.onnx", plan=plan, workload=workload)


def test_a_bias_off_the_accumulator_grid_is_refused(minilm, tmp_path, monkeypatch):
    """The bug this file guards: torch adding its float bias where the int8 kernel adds it rounded."""
    model, workload, plan = minilm
    monkeypatch.setattr(freeze_module, "accumulator_bias", lambda bias, *_: bias)
    with pytest.raises(ModelError, match="biases of layer .* are not"):
        export_onnx(model, tmp_path / "b.onnx", plan=plan, workload=workload)
