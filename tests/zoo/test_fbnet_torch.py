"""FBNet torch modules: their extracted workloads equal ``nn2hw.bench``'s torch-free FBNet workloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn2hw.bench import FBNET_OPS, fbnet_workload, random_arch
from nn2hw.bench.fbnet import fbnet_layout
from nn2hw.errors import ConfigError
from nn2hw.workload import OpKind, Workload, from_module
from nn2hw.zoo.archs.fbnet import fbnet_network

EVERY_OP = [i % len(FBNET_OPS) for i in range(22)]
"""Each of the 9 ops at least twice: grouped blocks, identity and projecting skips, strided k5 blocks."""

_FIELDS = ("kind", "in_channels", "out_channels", "in_h", "in_w", "out_h", "out_w", "kernel_h", "kernel_w",
           "stride_h", "stride_w", "pad_h", "pad_w", "groups", "bias")


def extracted(arch: list[int] | tuple[int, ...], dataset: str) -> Workload:
    size = fbnet_layout(dataset).input_size
    with torch.device("meta"):
        model = fbnet_network(arch, dataset)
    return from_module(model, torch.empty((1, 3, size, size), device="meta"))


def compute_layers(work: Workload) -> dict[str, tuple[object, ...]]:
    return {layer.name: tuple(getattr(layer, f) for f in _FIELDS) for layer in work.layers if layer.is_compute}


def _archs(dataset: str) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(11 if dataset == "cifar100" else 12)
    return [tuple(EVERY_OP), (8,) * 22] + [random_arch(rng) for _ in range(3)]


@pytest.mark.parametrize("dataset", ["cifar100", "ImageNet"])
def test_extracted_conv_layers_and_totals_equal_the_bench_workload(dataset: str) -> None:
    for arch in _archs(dataset):
        torch_work, bench_work = extracted(arch, dataset), fbnet_workload(arch, dataset)
        ours, theirs = compute_layers(torch_work), compute_layers(bench_work)
        assert list(ours) == list(theirs), arch  # same conv/linear layers, same names, same order
        assert ours == theirs, arch  # channels, sizes, kernels, strides, padding, groups, bias
        assert torch_work.macs == bench_work.macs
        assert torch_work.parameters == bench_work.parameters
        assert sum(p.numel() for p in fbnet_network(arch, dataset).parameters()) == bench_work.parameters


def test_grouped_blocks_and_residuals_are_wired_as_scheduled() -> None:
    work = extracted(EVERY_OP, "cifar100")
    by_name = {layer.name: layer for layer in work.layers}
    expand, project = by_name["cells.1.conv1"], by_name["cells.1.conv3"]  # block 1: k3_e1_g2, 16 -> 24
    assert (expand.groups, project.groups, expand.in_channels, project.out_channels) == (2, 2, 16, 24)
    assert by_name["cells.1.conv2"].groups == by_name["cells.1.conv2"].in_channels  # depthwise
    adds = [layer for layer in work.layers if layer.kind is OpKind.ELTWISE]
    assert len(adds) == sum(1 for layer in fbnet_workload(EVERY_OP, "cifar100").layers if layer.kind is OpKind.ELTWISE)
    assert work.outputs == ("fc",) and work.layers[-1].out_shape == (1, 100)


def test_the_network_runs_and_counts_classes() -> None:
    torch.manual_seed(0)
    model = fbnet_network(EVERY_OP, "cifar10").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    with torch.device("meta"):
        assert fbnet_network(EVERY_OP, "ImageNet").fc.out_features == 1000


def test_bad_architectures_and_datasets_are_refused() -> None:
    with pytest.raises(ConfigError, match="has 21 op indices"):
        fbnet_network([0] * 21)
    with pytest.raises(ConfigError, match="op index 9"):
        fbnet_network([0] * 21 + [9])
    with pytest.raises(ConfigError, match="no input setting"):
        fbnet_network([0] * 22, "ImageNet16-120")
