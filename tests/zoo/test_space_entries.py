"""The parametric zoo entries ``fbnet`` and ``nb201``: exactly the networks the supernets derive, any
architecture and width, options checked by the builders themselves."""

from __future__ import annotations

import random

import pytest
import torch

from nn2hw import zoo
from nn2hw.errors import CheckpointError, ConfigError
from nn2hw.workload.spaces.fbnet import FBNET_DEPTH, FBNET_OPS
from nn2hw.workload.spaces.nb201 import NB201_OPS, check_nb201
from nn2hw.zoo.archs.supernet import FBNetSupernet, NB201Supernet

WIDTH = 0.25
_RNG = random.Random(11)
FBNET_ARCHS = {
    "reference": list(dict(zoo.entry("fbnet").options)["arch"]),
    "random": [_RNG.randrange(len(FBNET_OPS)) for _ in range(FBNET_DEPTH)],
    "skips and grouped": [8, 1, 5, 8, 8, 1, 5, 8, 8, 1, 5, 8, 8, 1, 5, 8, 8, 1, 5, 8, 8, 1],
}
NB201_ARCHS = {
    "reference": dict(zoo.entry("nb201").options)["arch"],
    "every op": [0, 1, 2, 3, 4, 3],
    "a zero node": [0, 2, 4, 0, 0, 1],  # node 1's only edge is none: a zero tensor feeds node 3
}
FBNET_BITS = (None, (32, 8, 4))


def _same_layout(left: torch.nn.Module, right: torch.nn.Module) -> None:
    assert [(k, tuple(v.shape)) for k, v in left.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in right.state_dict().items()]


def _trained_bn(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """``net`` after one training-mode forward, so that its batch-norm statistics are not the defaults."""
    with torch.no_grad():
        net.train()(x)
    return net.eval()


@pytest.fixture(scope="module", params=FBNET_BITS, ids=["float", "bits"])
def fbnet_supernet(request):
    torch.manual_seed(0)
    return FBNetSupernet("fashion-mnist", bits=request.param, width_mult=WIDTH)


@pytest.fixture(scope="module")
def nb201_supernet():
    torch.manual_seed(0)
    return NB201Supernet("fashion-mnist", bits=(32, 8, 4), channels=8, cells=2)


def _indices(net, arch):
    ops = list(check_nb201(arch)) if isinstance(arch, str) else list(arch)
    return ops + [1] * (net.positions if net.bits else 0)


@pytest.mark.parametrize("arch", list(FBNET_ARCHS.values()), ids=list(FBNET_ARCHS))
def test_fbnet_entry_is_the_supernets_derived_network(fbnet_supernet, arch):
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    derived = _trained_bn(fbnet_supernet.derive(_indices(fbnet_supernet, arch)), x)
    built = zoo.build("fbnet", "fashion-mnist", arch=arch, width_mult=WIDTH)
    _same_layout(built, derived)
    built.load_state_dict(derived.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(built.eval()(x), derived(x))
    names = [layer.name for layer in zoo.workload("fbnet", "fashion-mnist", arch=arch, width_mult=WIDTH).layers]
    assert names == [layer.name for layer in fbnet_supernet.workload(_indices(fbnet_supernet, arch)).layers]


@pytest.mark.parametrize("arch", list(NB201_ARCHS.values()), ids=list(NB201_ARCHS))
def test_nb201_entry_is_the_supernets_derived_network(nb201_supernet, arch):
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    derived = _trained_bn(nb201_supernet.derive(_indices(nb201_supernet, arch)), x)
    built = zoo.build("nb201", "fashion-mnist", arch=arch, channels=8, cells=2)
    _same_layout(built, derived)
    built.load_state_dict(derived.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(built.eval()(x), derived(x))
    names = [layer.name for layer in zoo.workload("nb201", "fashion-mnist", arch=arch, channels=8, cells=2).layers]
    assert names == [layer.name for layer in nb201_supernet.workload(_indices(nb201_supernet, arch)).layers]


@pytest.mark.parametrize("name, supernet, options", [
    ("fbnet", lambda: FBNetSupernet("cifar10", width_mult=WIDTH), {"width_mult": WIDTH}),
    ("nb201", lambda: NB201Supernet("cifar10", channels=8, cells=1), {"channels": 8, "cells": 1}),
])
def test_cifar10_variant_and_the_defaults_match_the_supernets(name, supernet, options):
    with torch.device("meta"):
        net = supernet()
        arch = dict(zoo.entry(name).options)["arch"]
        _same_layout(zoo.build(name, "cifar10", **options), net.derive(_indices(net, arch)))


def test_default_architectures_are_the_documented_ones():
    fbnet, nb201 = dict(zoo.entry("fbnet").options), dict(zoo.entry("nb201").options)
    k3_e6 = [op.name for op in FBNET_OPS].index("k3_e6")
    assert tuple(fbnet["arch"]) == (k3_e6,) * FBNET_DEPTH and fbnet["width_mult"] == 1.0
    assert check_nb201(nb201["arch"]) == (NB201_OPS.index("nor_conv_3x3"),) * 6
    assert (nb201["channels"], nb201["cells"]) == (16, 5)  # NAS-Bench-201's C and N
    assert "k3_e6" in zoo.entry("fbnet").notes and "nor_conv_3x3" in zoo.entry("nb201").notes


@pytest.mark.parametrize("name, options, message", [
    ("fbnet", {"arch": [0] * 21}, "has 22 blocks; this one has 21"),
    ("fbnet", {"arch": [0] * 21 + [9]}, "Block 21 of the FBNet architecture has op index 9"),
    ("fbnet", {"width_mult": 0}, "width multiplier must be a positive number"),
    ("fbnet", {"depth": 3}, "Cannot build fbnet with options \\['depth'\\]"),
    ("nb201", {"arch": [0] * 5}, "has 6 edges; this architecture has 5"),
    ("nb201", {"arch": [0] * 5 + [5]}, "op index 5, outside 0..4"),
    ("nb201", {"arch": "|nor_conv_3x3~0|+|bogus~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"}, "bogus"),
    ("nb201", {"channels": 0}, "channels must be a positive integer"),
])
def test_bad_options_are_the_builders_errors(name, options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        zoo.build(name, "fashion-mnist", **options)
    assert caught.value.fix


@pytest.mark.parametrize("name", ["fbnet", "nb201"])
def test_no_pretrained_weights_is_a_clear_error(name):
    assert not any(v.sources for v in zoo.entry(name).variants)
    with pytest.raises(CheckpointError, match=f"No pretrained weights exist for {name} \\(fashion-mnist\\)"):
        zoo.build(name, "fashion-mnist", pretrained=True)
    with pytest.raises(CheckpointError, match="--checkpoint FILE"):
        zoo.build(name, "cifar10", pretrained=True)
