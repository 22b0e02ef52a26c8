"""The FBNet space as workloads: structure, hand-counted MACs and parameters, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nn2hw.bench import FBNET_DEPTH, FBNET_OPS, fbnet_blocks, fbnet_table_keys, fbnet_workload, random_arch
from nn2hw.errors import ConfigError
from nn2hw.workload import OpKind, Workload

MIXED = [8, 8, 1, 5, 7, 2, 8, 3, 4, 6, 0, 8, 5, 1, 2, 3, 8, 7, 6, 4, 0, 8]
"""Every op; identity skips (blocks 0, 6, 11), a strided skip (block 1 on ImageNet), a widening skip
(block 21), a grouped first block of a stage (13) and a strided k5_e6 (17)."""

# The test's own copy of the space, from HW-NAS-Bench's FBNet_Infer (kernel, expansion, groups; None = skip).
_SPEC = [(3, 1, 1), (3, 1, 2), (3, 3, 1), (3, 6, 1), (5, 1, 1), (5, 1, 2), (5, 3, 1), (5, 6, 1), None]
_SETTINGS = {"cifar100": (32, 1, [1, 1, 2, 2, 1, 2, 1], 1504, 100),
             "ImageNet": (224, 2, [1, 2, 2, 2, 1, 2, 1], 1984, 1000)}


def hand_counts(arch: list[int], dataset: str) -> tuple[int, int]:
    """(MACs, parameters incl. batch-norm scale and shift and the classifier's bias) by the block formula."""
    size, stem_stride, strides, header, classes = _SETTINGS[dataset]
    size //= stem_stride
    macs, params = size * size * 3 * 16 * 9, 3 * 16 * 9 + 2 * 16
    cin, block = 16, 0
    for depth, cout, stride in zip([1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352], strides):
        for position in range(depth):
            s = stride if position == 0 else 1
            out = size // s
            spec = _SPEC[arch[block]]
            if spec is None:
                if s != 1 or cin != cout:  # 1x1 conv + BN
                    macs += out * out * cin * cout
                    params += cin * cout + 2 * cout
            else:
                k, e, g = spec
                mid = cin * e
                macs += size * size * cin * mid // g + out * out * mid * k * k + out * out * mid * cout // g
                params += cin * mid // g + mid * k * k + mid * cout // g + 2 * (mid + mid + cout)
            cin, size, block = cout, out, block + 1
    macs += size * size * 352 * header + header * classes
    params += 352 * header + 2 * header + header * classes + classes
    return macs, params


@pytest.mark.parametrize(("arch", "dataset"), [([0] * 22, "cifar100"), (MIXED, "ImageNet"), (MIXED, "cifar100")])
def test_macs_and_parameters_equal_hand_counts(arch, dataset):
    workload = fbnet_workload(arch, dataset)
    assert (workload.macs, workload.parameters) == hand_counts(arch, dataset)


def test_hand_count_formula_on_paper():
    """The all-k3_e1 CIFAR network's stem, first block and head, counted by hand."""
    workload = fbnet_workload([0] * 22, "cifar100")
    macs = {layer.name: layer.macs for layer in workload}
    assert macs["stem.conv"] == 32 * 32 * 3 * 16 * 9 == 442_368
    assert macs["cells.0.conv1"] + macs["cells.0.conv2"] + macs["cells.0.conv3"] == 262_144 + 147_456 + 262_144
    assert macs["header.conv"] == 4 * 4 * 352 * 1504 and macs["fc"] == 1504 * 100


def _consistent(workload: Workload) -> None:
    """Every operand shape is its producer's output shape; the workload survives a JSON round trip."""
    index = {layer.name: layer for layer in workload}
    for layer in workload:
        assert layer.in_shapes == tuple(index[name].output_shape for name in layer.inputs), layer.name
    assert Workload.from_json(workload.to_json()) == workload
    assert workload.coupling_groups and not workload.unsupported


@pytest.mark.parametrize("dataset", ["cifar100", "ImageNet", "cifar10"])
def test_workload_is_a_valid_graph(dataset):
    for arch in ([0] * 22, MIXED, [8] * 22, [1] * 22):
        workload = fbnet_workload(arch, dataset)
        _consistent(workload)
        assert workload.outputs == ("fc",)
        assert workload.layer("fc").out_channels == {"cifar100": 100, "ImageNet": 1000, "cifar10": 10}[dataset]


def test_residual_adds_name_block_output_and_input():
    workload = fbnet_workload(MIXED, "ImageNet")
    net = fbnet_blocks(MIXED, "ImageNet")
    adds = [layer for layer in workload if layer.kind is OpKind.ELTWISE]
    expected = [b.index for b in net.blocks if not b.op.is_skip and b.keeps_shape]
    assert [a.name for a in adds] == [f"cells.{i}.add" for i in expected]
    order = [layer.name for layer in workload]
    for add in adds:
        block = add.name.split(".")[1]
        assert add.inputs[0] == f"cells.{block}.bn3"
        identity = add.inputs[1]  # the layer just before the block's first conv
        assert order.index(identity) == order.index(f"cells.{block}.conv1") - 1


def test_skips_and_groups():
    workload = fbnet_workload(MIXED, "ImageNet")
    names = {layer.name for layer in workload}
    assert not any(n.startswith(("cells.0.", "cells.6.", "cells.11.")) for n in names)  # identity skips
    strided = workload.layer("cells.1.conv")
    assert (strided.in_channels, strided.out_channels, strided.stride_h, strided.out_h) == (16, 24, 2, 56)
    assert workload.layer("cells.21.conv").out_channels == 352
    assert workload.layer("cells.13.conv1").groups == 2 and workload.layer("cells.13.conv3").groups == 2
    assert workload.layer("cells.13.shuffle").kind is OpKind.RESHAPE
    dw = workload.layer("cells.17.conv2")
    assert (dw.conv_type, dw.kernel_h, dw.stride_h, dw.pad_h, dw.in_h, dw.out_h) == ("depthwise", 5, 2, 2, 14, 7)


def test_spatial_sizes_follow_the_table_keys():
    """The workload's feature sizes are the H in each block's HW-NAS-Bench key."""
    for dataset in ("cifar100", "ImageNet"):
        workload = fbnet_workload([0] * 22, dataset)
        keys = fbnet_table_keys([0] * 22, dataset)
        for i, key in enumerate(keys[1:23]):
            assert key.startswith(f"ConvBlock_H{workload.layer(f'cells.{i}.conv1').in_h}_")
        assert keys[-2].startswith(f"AvgP_H{workload.layer('avgpool').in_h}_")


def test_table_keys_follow_the_api_format():
    keys = fbnet_table_keys([0] * 21 + [1], "cifar100")
    assert len(keys) == FBNET_DEPTH + 4
    assert keys[0] == "ConvNorm_H32_W32_Cin3_Cout16_kernel3_stride1_group1"
    assert keys[1] == "ConvBlock_H32_W32_Cin16_Cout16_exp1_kernel3_stride1_group1"
    assert keys[22] == "ConvBlock_H4_W4_Cin184_Cout352_exp1_kernel3_stride1_group2"
    assert keys[-3:] == ["ConvNorm_H4_W4_Cin352_Cout1504_kernel1_stride1_group1",
                         "AvgP_H4_W4_Cin1504_Cout1504_kernel4_stride1", "FC_Cin1504_Cout100"]
    assert fbnet_table_keys(MIXED, "ImageNet")[2] == "Skip_H112_W112_Cin16_Cout24_stride2"


def test_random_arch_is_seeded_and_in_range():
    a, b = random_arch(np.random.default_rng(3)), random_arch(np.random.default_rng(3))
    assert a == b and len(a) == FBNET_DEPTH and all(0 <= i < len(FBNET_OPS) for i in a)
    assert all(type(i) is int for i in a)


@pytest.mark.parametrize(("arch", "dataset", "words"), [
    ([0] * 21, "cifar100", ["22 blocks", "21 op indices", "exactly 22"]),
    ([0] * 21 + [9], "cifar100", ["Block 21", "9", "outside 0..8", "8=skip"]),
    ([0] * 21 + [-1], "cifar100", ["Block 21", "-1"]),
    ([0] * 21 + [True], "cifar100", ["Block 21", "True"]),
    ("0" * 22, "cifar100", ["sequence of 22"]),
    ([0] * 22, "mnist", ["'mnist'", "ImageNet", "cifar100"]),
])
def test_bad_input_names_cause_and_fix(arch, dataset, words):
    for build in (fbnet_workload, fbnet_table_keys):
        with pytest.raises(ConfigError) as info:
            build(arch, dataset)
        assert info.value.fix and all(w in str(info.value) for w in words), str(info.value)


def test_numpy_indices_and_dataset_case_are_accepted():
    assert fbnet_workload(np.zeros(22, dtype=np.int64), "imagenet") == fbnet_workload([0] * 22, "ImageNet")


def test_importing_bench_loads_no_torch():
    code = "import sys, nn2hw.bench; nn2hw.bench.fbnet_workload([0] * 22); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
