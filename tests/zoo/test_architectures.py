"""Every zoo architecture: published state-dict layout, parameter and MAC counts, a forward pass."""

from __future__ import annotations

import pytest
import torch

from nn2hw import zoo
from nn2hw.workload import OpKind
from nn2hw.zoo.archs.cifar_resnet import OptionAShortcut
from tests.zoo.keys import listing_path, read_listing

VARIANTS = [(name, v.dataset) for name in zoo.list_models() for v in zoo.entry(name).variants]
SLOW_FORWARD = {"alexnet", "vgg11", "vgg16", "resnet34", "resnet50"}  # large weights: > 5 s on a busy 2-core box

# torchvision's weight metadata (``num_params`` and ``_ops`` in GMACs, torchvision/models/*.py)
TORCHVISION = {
    "alexnet": (61_100_840, 0.714), "vgg11": (132_863_336, 7.609), "vgg16": (138_357_544, 15.47),
    "resnet18": (11_689_512, 1.814), "resnet34": (21_797_672, 3.664), "resnet50": (25_557_032, 4.089),
    "mobilenet_v2": (3_504_872, 0.301), "mnasnet0_5": (2_218_512, 0.104), "mnasnet1_0": (4_383_312, 0.314),
    "squeezenet1_0": (1_248_424, 0.819),
}
# NN2HW_DATA/zoo/cifar10/SOURCE.md: trainable parameters of the published checkpoints
CIFAR_PARAMS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018}


def _meta_model(name: str, dataset: str) -> torch.nn.Module:
    with torch.device("meta"):
        return zoo.build(name, dataset)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, dataset", VARIANTS)
def test_state_dict_keys_and_shapes_match_the_published_layout(name, dataset):
    listing = read_listing(listing_path(name, dataset, zoo.entry(name).default_dataset))
    state = _meta_model(name, dataset).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == listing


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_imagenet_params_and_macs_equal_torchvision_metadata(name):
    params, gmacs = TORCHVISION[name]
    assert _params(_meta_model(name, "imagenet")) == params
    assert round(zoo.workload(name).macs / 1e9, 3 if gmacs < 10 else 2) == gmacs


@pytest.mark.parametrize("name", sorted(CIFAR_PARAMS))
def test_cifar_resnet_params_equal_the_checkpoints(name):
    assert _params(_meta_model(name, "cifar10")) == CIFAR_PARAMS[name]


def test_resnet20_macs_by_hand():
    # He et al. CIFAR ResNet-20 at 32x32: stem, 3 stages x 3 blocks x 2 convs, linear 64 -> 10
    stem = 32 * 32 * 16 * 3 * 9
    stage1 = 6 * (32 * 32 * 16 * 16 * 9)
    stage2 = 16 * 16 * 32 * 16 * 9 + 5 * (16 * 16 * 32 * 32 * 9)
    stage3 = 8 * 8 * 64 * 32 * 9 + 5 * (8 * 8 * 64 * 64 * 9)
    hand = stem + stage1 + stage2 + stage3 + 64 * 10
    w = zoo.workload("resnet20")
    assert w.macs == hand == 40_551_040
    assert round(w.macs / 1e6, 2) == 40.55  # issue #2
    assert w.name == "resnet20" and w.input_shape == (1, 3, 32, 32)
    assert len([l for l in w.compute_layers if l.kind is OpKind.CONV]) == 19


def test_resnet18_macs_by_hand():
    def conv(size, cout, cin, k):
        return size * size * cout * cin * k * k

    stem = conv(112, 64, 3, 7)
    layer1 = 4 * conv(56, 64, 64, 3)
    stages = 0
    for size, width in ((28, 128), (14, 256), (7, 512)):
        stages += conv(size, width, width // 2, 3) + 3 * conv(size, width, width, 3) + conv(size, width, width // 2, 1)
    hand = stem + layer1 + stages + 512 * 1000
    macs = zoo.workload("resnet18").macs
    assert macs == hand == 1_814_073_344
    assert round(macs / 1e9, 3) == 1.814  # issue #2


def test_workload_batch_and_dataset_variant():
    w = zoo.workload("resnet20", "fashion-mnist", batch=4)
    assert w.input_shape == (4, 1, 28, 28)
    first = w.compute_layers[0]
    assert (first.in_channels, first.in_h, first.batch) == (1, 28, 4)
    assert w.layer("layer3.0.conv1").out_h == 7  # 28 -> 14 -> 7


def test_mnasnet_legacy_stem_is_unscaled():
    legacy, current = _meta_model("mnasnet0_5_legacy", "imagenet"), _meta_model("mnasnet0_5", "imagenet")
    assert legacy.layers[0].weight.shape == (32, 3, 3, 3) and current.layers[0].weight.shape == (16, 3, 3, 3)
    assert legacy.layers[6].weight.shape == (16, 32, 1, 1) and current.layers[6].weight.shape == (8, 16, 1, 1)
    # everything from the second stack on is identical
    assert [p.shape for p in legacy.layers[9:].parameters()] == [p.shape for p in current.layers[9:].parameters()]


def test_option_a_shortcut_pads_zeros_evenly_around_the_identity():
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4) + 1
    y = OptionAShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()


def test_fashion_mnist_models_are_small():
    # "a few hundred thousand parameters at most" / "~0.5-1 M" (team brief for the Fashion-MNIST zoo)
    assert 100_000 < _params(_meta_model("mobilenetv2_fmnist", "fashion-mnist")) < 400_000
    assert 500_000 <= _params(_meta_model("vgg_fmnist", "fashion-mnist")) <= 1_000_000


@pytest.mark.parametrize("name, dataset", [
    pytest.param(n, d, marks=pytest.mark.slow) if n in SLOW_FORWARD else (n, d) for n, d in VARIANTS])
def test_build_runs_a_forward_pass(name, dataset):
    variant = zoo.entry(name).variant(dataset)
    model = zoo.build(name, dataset).eval()
    batch = 1 if dataset == "imagenet" else 2
    with torch.no_grad():
        if variant.tokens:  # token ids; an embedding model (0 classes) returns unit vectors
            logits = model(torch.randint(0, 100, (batch, *variant.input_shape)))
        else:
            logits = model(torch.randn(batch, *variant.input_shape))
    assert logits.shape == (batch, variant.num_classes or logits.shape[1])
    assert torch.isfinite(logits).all()
