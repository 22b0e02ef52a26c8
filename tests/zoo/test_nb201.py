"""The NAS-Bench-201 cell space: encodings, the TinyNetwork's state-dict layout, its workload against hand counts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from nn2hw.errors import ConfigError
from nn2hw.workload import OpKind
from nn2hw.workload.spaces.nb201 import (
    NB201_OPS,
    NB201_SIZE,
    check_nb201,
    format_nb201,
    nb201_code,
    nb201_from_code,
    parse_nb201,
    random_nb201,
)
from nn2hw.zoo.archs.nb201 import nb201_network, nb201_workload

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP_ONLY = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # node 3 gets only 'none': the cell is zero
IDENTITY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # the cell is its input
EVERY_OP = "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


# --- encodings -----------------------------------------------------------------------------------


def test_the_canonical_string_parses_to_six_op_indices_and_back() -> None:
    assert NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert parse_nb201(BEST) == (3, 3, 3, 1, 3, 3)
    assert format_nb201((3, 3, 3, 1, 3, 3)) == BEST
    assert format_nb201(f"  {EVERY_OP}\n") == EVERY_OP
    assert check_nb201(np.array([2, 4, 0, 1, 3, 4])) == parse_nb201(EVERY_OP)


def test_codes_number_all_15625_cells_once_and_round_trip() -> None:
    assert NB201_SIZE == 15625
    seen = set()
    for code in range(NB201_SIZE):
        ops = nb201_from_code(code)
        assert nb201_code(ops) == code
        assert parse_nb201(format_nb201(ops)) == ops
        seen.add(ops)
    assert len(seen) == NB201_SIZE
    assert nb201_from_code(0) == (0,) * 6 and nb201_from_code(NB201_SIZE - 1) == (4,) * 6
    assert nb201_code(BEST) == int("333133", 5)  # base 5, edge 1<-0 the most significant digit


@pytest.mark.parametrize(("text", "cause"), [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "has 2 node(s)"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "has 1 edge(s)"),
    ("|conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "'conv_3x3'"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "comes from node 1"),
    ("|nor_conv_3x3|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "not 'op~source'"),
    ("nor_conv_3x3~0+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "'|' bars"),
    ("", "has 1 node(s)"),
])
def test_a_malformed_string_is_refused_naming_the_fault(text: str, cause: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_nb201(text)
    assert cause in info.value.cause
    assert info.value.fix


def test_a_misspelt_operation_gets_the_close_name() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'avg_pool_3x3'"):
        parse_nb201(BEST.replace("skip_connect", "avg_pool_3X3"))


@pytest.mark.parametrize(("arch", "cause"), [
    ([3, 3, 3, 1, 3], "has 5 op indices"),
    ([3, 3, 3, 1, 3, 3, 0], "has 7 op indices"),
    ([3, 3, 3, 1, 3, 5], "Edge 5 of the NAS-Bench-201 architecture has op index 5"),
    ([3, -1, 3, 1, 3, 3], "op index -1"),
    ([3, True, 3, 1, 3, 3], "op index True"),
    ([3, 1.0, 3, 1, 3, 3], "op index 1.0"),
    (3, "got 3"),
    (b"|none~0|", "got b"),
])
def test_bad_op_indices_are_refused(arch: object, cause: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_nb201(arch)  # type: ignore[arg-type]
    assert cause in info.value.cause
    assert info.value.fix


@pytest.mark.parametrize("code", [-1, NB201_SIZE, True, 3.0])
def test_codes_outside_the_space_are_refused(code: object) -> None:
    with pytest.raises(ConfigError, match="0..15624"):
        nb201_from_code(code)  # type: ignore[arg-type]


def test_random_cells_are_valid_and_seeded() -> None:
    draws = [random_nb201(np.random.default_rng(7)) for _ in range(2)]
    assert draws[0] == draws[1] and check_nb201(draws[0]) == draws[0]


def test_the_encodings_need_no_torch() -> None:
    code = ("import sys; from nn2hw.workload.spaces.nb201 import format_nb201; format_nb201([3] * 6); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the torch module ----------------------------------------------------------------------------


def test_state_dict_keys_follow_the_published_tinynetwork_layout() -> None:
    keys = set(nb201_network(EVERY_OP).state_dict())
    assert len(nb201_network(EVERY_OP).cells) == 17  # 5 cells, reduction, 5 cells, reduction, 5 cells
    expected = {"stem.0.weight", "stem.1.running_var", "cells.0.layers.0.op.1.weight", "cells.0.layers.0.op.2.bias",
                "cells.0.layers.4.op.1.weight", "cells.5.conv_a.op.1.weight", "cells.5.conv_b.op.2.running_mean",
                "cells.5.downsample.1.weight", "cells.16.layers.4.op.2.num_batches_tracked",
                "cells.11.downsample.1.weight", "lastact.0.weight", "classifier.weight", "classifier.bias"}
    assert expected <= keys
    # none, skip and pool edges hold no parameters but keep their position (edge 4 is still layers.4)
    assert not any(k.startswith(("cells.0.layers.1.", "cells.0.layers.2.", "cells.0.layers.3.",
                                 "cells.0.layers.5.")) for k in keys)
    conv_edges = {k.split(".op.")[0] for k in keys if ".layers." in k}
    assert len(conv_edges) == 15 * 2


def test_checkpoints_load_between_networks_of_one_cell_and_not_across_cells() -> None:
    source = nb201_network(BEST, "cifar100").state_dict()
    nb201_network(BEST, "cifar100").load_state_dict(source, strict=True)
    with pytest.raises(RuntimeError):
        nb201_network(EVERY_OP, "cifar100").load_state_dict(source, strict=True)


@pytest.mark.parametrize(("dataset", "size", "classes"), [("cifar10", 32, 10), ("cifar100", 32, 100),
                                                          ("ImageNet16-120", 16, 120)])
def test_each_dataset_gets_its_classes_and_runs_on_its_images(dataset: str, size: int, classes: int) -> None:
    torch.manual_seed(0)
    for arch in (EVERY_OP, SKIP_ONLY, IDENTITY):
        model = nb201_network(arch, dataset, cells=1).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, size, size))
        assert out.shape == (2, classes) and torch.isfinite(out).all()


def test_bad_dataset_and_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="no dataset 'imagenet'"):
        nb201_network(BEST, "imagenet")
    with pytest.raises(ConfigError, match="channels must be a positive integer"):
        nb201_network(BEST, channels=0)
    with pytest.raises(ConfigError, match="Batch size"):
        nb201_workload(BEST, batch=0)


# --- the workload ---------------------------------------------------------------------------------


def test_workload_macs_and_parameters_equal_hand_counts() -> None:
    work = nb201_workload(BEST, "cifar10")
    # stem 3->16 3x3 at 32x32; per stage five cells of five 3x3 convs, C^2*9*H*W = 2,359,296 MACs at every stage;
    # reduction blocks: 3x3 s2 + 3x3 + 1x1 shortcut; classifier 64->10
    stem = 3 * 16 * 9 * 32 * 32
    cells = 3 * 5 * 5 * (16 * 16 * 9 * 32 * 32)
    reductions = (16 * 32 * 9 * 16 * 16 + 32 * 32 * 9 * 16 * 16 + 16 * 32 * 16 * 16) + \
                 (32 * 64 * 9 * 8 * 8 + 64 * 64 * 9 * 8 * 8 + 32 * 64 * 8 * 8)
    assert work.macs == stem + cells + reductions + 64 * 10 == 184_730_240
    # params: convs, BN scale + shift, classifier weight + bias
    stem_p = 3 * 16 * 9 + 2 * 16
    cells_p = 5 * 5 * sum(9 * c * c + 2 * c for c in (16, 32, 64))
    reductions_p = (16 * 32 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32 + 16 * 32) + \
                   (32 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 2 * 64 + 32 * 64)
    params = stem_p + cells_p + reductions_p + 2 * 64 + 64 * 10 + 10
    assert work.parameters == params == 1_288_506
    assert sum(p.numel() for p in nb201_network(BEST).parameters()) == params


@pytest.mark.parametrize("arch", [SKIP_ONLY, IDENTITY, (0,) * 6])
def test_cells_without_convs_leave_only_the_skeleton(arch: str | tuple[int, ...]) -> None:
    work = nb201_workload(arch, "ImageNet16-120")
    stem = 3 * 16 * 9 * 16 * 16
    reductions = (16 * 32 * 9 * 8 * 8 + 32 * 32 * 9 * 8 * 8 + 16 * 32 * 8 * 8) + \
                 (32 * 64 * 9 * 4 * 4 + 64 * 64 * 9 * 4 * 4 + 32 * 64 * 4 * 4)
    assert work.macs == stem + reductions + 64 * 120
    assert not any(".layers." in layer.name for layer in work.layers if layer.is_compute)
    assert work.outputs == ("classifier",)
    assert work.layers[-1].out_shape == (1, 120)


def test_every_edge_op_appears_as_its_layers_in_order() -> None:
    work = nb201_workload(EVERY_OP, "cifar100", batch=2)
    by_name = {layer.name: layer for layer in work.layers}
    # nor_conv_1x1 on edge 0: ReLU -> conv -> BN
    relu, conv, bn = (by_name[f"cells.0.layers.0.op.{i}"] for i in range(3))
    assert (relu.kind, conv.kind, bn.kind) == (OpKind.ACT, OpKind.CONV, OpKind.NORM)
    assert conv.inputs == (relu.name,) and bn.inputs == (conv.name,)
    assert (conv.kernel_h, conv.stride_h, conv.pad_h, conv.in_channels, conv.bias) == (1, 1, 0, 16, False)
    assert by_name["cells.12.layers.4.op.1"].kernel_h == 3 and by_name["cells.12.layers.4.op.1"].in_h == 8
    # avg_pool_3x3 on edges 1 and 5: 3x3 stride-1 pools
    pool = by_name["cells.0.layers.1.op"]
    assert (pool.kind, pool.kernel_h, pool.stride_h, pool.pad_h, pool.out_h) == (OpKind.POOL, 3, 1, 1, 32)
    counts = {kind: sum(layer.kind is kind for layer in work.layers) for kind in OpKind}
    assert counts[OpKind.CONV] == 15 * 2 + 7  # two conv edges per cell; stem + 2 x (conv_a, conv_b, shortcut)
    assert counts[OpKind.POOL] == 15 * 2 + 3  # two pool edges per cell; 2 shortcut pools + the global pool
    assert counts[OpKind.LINEAR] == 1
    assert work.input_shape == (2, 3, 32, 32) and work.name == "nb201-cifar100-240134"


def test_the_workload_equals_extraction_of_the_built_network() -> None:
    from nn2hw.workload import from_module

    arch = random_nb201(np.random.default_rng(3))
    direct = from_module(nb201_network(arch, "cifar10"), (1, 3, 32, 32), name="x")
    built = nb201_workload(arch, "cifar10")
    assert [(layer.name, layer.kind, layer.macs) for layer in direct.layers] == \
        [(layer.name, layer.kind, layer.macs) for layer in built.layers]
