"""TorchRunner (the cpu:torch Runner) and kernel_layers (runtime kernels -> workload layers)."""

from __future__ import annotations

import pytest
import torch

from nn2hw.deploy import TorchRunner, export_onnx, kernel_layers
from nn2hw.errors import ConfigError
from nn2hw.measure import Protocol, onnx_runner
from tests.deploy.variants import cut, int8, zoo_case

pytestmark = pytest.mark.timed  # times code on the CPU: runs alone (tests/conftest.py)

SHAPE = (1, 1, 28, 28)


@pytest.fixture(scope="module")
def resnet20():
    torch.set_num_threads(1)
    return zoo_case("resnet20", "fashion-mnist", SHAPE, pretrained=False)


def test_torch_runner_key_and_profile(resnet20):
    model, workload, plan0 = resnet20
    from nn2hw.compress import apply_plan

    runner = TorchRunner(model, SHAPE)
    assert runner.runtime == "torch" and runner.key == TorchRunner(model, SHAPE).key
    assert runner.key != TorchRunner(model, (2, 1, 28, 28)).key
    assert runner.key != TorchRunner(apply_plan(cut(0.5)(plan0, workload, model), model, SHAPE), SHAPE).key
    kernels = {k.name: k for k in runner.profile(3)}
    assert {"conv1", "layer1.0.conv1", "linear"} <= set(kernels) and kernels["conv1"].op_type == "Conv2d"
    assert all(k.median_ms > 0 for k in kernels.values())
    with pytest.raises(ConfigError):
        TorchRunner(model, (1, 0, 28, 28))


def _kernels(path):
    return [k.name for k in onnx_runner(path, Protocol(threads=1)).profile(1)]


def test_fp32_kernels_cover_every_layer_with_fused_chains_named(resnet20, tmp_path):
    model, workload, _ = resnet20
    path = export_onnx(model, tmp_path / "f.onnx", workload=workload).path
    mapping = kernel_layers(_kernels(path), workload)
    covered = {layer for layers in mapping.values() for layer in layers}
    assert covered >= {l.name for l in workload.layers if l.kind.value != "input"}
    fused = next(layers for layers in mapping.values() if "layer1.0.conv1" in layers)
    assert fused == ("layer1.0.conv1", "layer1.0.bn1", "relu_1")  # Conv+BatchNorm+Relu in one NCHWc kernel
    assert any(layers == (name,) for name, layers in mapping.items())  # layout reorders keep their own name


def test_kernels_map_onto_a_workload_read_from_the_onnx_file(resnet20, tmp_path):
    """`nn2hw analyze --onnx F --hardware cpu`: the NCHWc Conv+BatchNorm+Relu kernels, which ONNX Runtime
    names after the Relu's output ('/layer1/layer1.0/Relu_output_0_nchwc'), cover their conv."""
    from nn2hw.workload import from_onnx

    model, workload, _ = resnet20
    path = export_onnx(model, tmp_path / "f.onnx", workload=workload).path
    read = from_onnx(path)
    mapping = kernel_layers(_kernels(path), read)
    covered = {layer for layers in mapping.values() for layer in layers}
    assert covered >= {l.name for l in read.layers if l.kind.value != "input"}
    assert next(layers for layers in mapping.values() if "layer1.0.conv1" in layers) == (
        "layer1.0.conv1", "layer1.0.bn1", "layer1.0.Relu")


def test_int8_kernels_map_to_their_layer(resnet20, tmp_path):
    model, workload, plan0 = resnet20
    result = export_onnx(model, tmp_path / "q.onnx", plan=int8(plan0, workload, model), workload=workload)
    mapping = kernel_layers(_kernels(result.path), workload)
    conv = [layers for name, layers in mapping.items() if "/layer2/layer2.1/conv2/Conv" in name]
    assert conv and all(layers[0] == "layer2.1.conv2" for layers in conv)


def test_names_that_match_nothing_are_kept():
    from nn2hw.api import load_workload

    workload = load_workload(model="resnet20", dataset="fashion-mnist")
    assert kernel_layers(["ReorderInput_token_3", "/linear/Gemm", "/layer1/layer1.0/Add"], workload) == {
        "ReorderInput_token_3": ("ReorderInput_token_3",), "/linear/Gemm": ("linear",),
        # no kernel for conv2/bn2/relu_2 in this list: the Add is read as the end of their fused chain
        "/layer1/layer1.0/Add": ("layer1.0.conv2", "layer1.0.bn2", "add", "relu_2")}


def test_kernels_onnx_runtime_renamed_map_back_by_their_output(tmp_path):
    """The ViT on ONNX Runtime: Q.K^T fused with its scaling ('.../MatMul/MatMulScaleFusion/'), the
    residual add fused with its LayerNorm ('SkipLayerNormalization_token_N') and the erf GELU fused into
    one 'Gelu' kernel are each the kernel of their own layers, so every MAC is in a kernel's layers."""
    model, workload, _ = zoo_case("vit_fmnist", "fashion-mnist", SHAPE, pretrained=False)
    path = export_onnx(model, tmp_path / "vit.onnx", workload=workload).path
    kernels = onnx_runner(path, Protocol(threads=1)).profile(1)
    mapping = kernel_layers([k.name for k in kernels], workload, {k.name: k.output for k in kernels if k.output})
    by_op = {k.op_type: mapping[k.name] for k in kernels}
    assert by_op["FusedMatMul"] == ("encoder.layer.3.attention.self.matmul", "truediv_3")
    assert by_op["SkipLayerNormalization"] == ("add_8", "encoder.layer.3.output.LayerNorm")
    assert by_op["Gelu"] == ("encoder.layer.3.intermediate.intermediate_act_fn",)
    covered = {layer for layers in mapping.values() for layer in layers}
    assert sum(layer.macs for layer in workload.layers if layer.name in covered) == workload.macs
    gelu = next(k.name for k in kernels if k.op_type == "Gelu")
    assert kernel_layers([k.name for k in kernels], workload)[gelu] == (gelu,)  # by name alone it matches nothing
