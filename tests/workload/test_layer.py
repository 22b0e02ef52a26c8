"""The IR itself: validation, MAC counts, rewriting with channel propagation, serialization."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nn2hw.errors import ConfigError, ModelError, PlanError
from nn2hw.workload import Layer, OpKind, Workload, from_module
from tests.workload.nets import MobileLike, TinyResNet, Untraceable, WithUnknownOps


def conv(name, cin, cout, size, k=3, inputs=(), **kw):
    return Layer(name=name, kind=OpKind.CONV, inputs=inputs, in_channels=cin, out_channels=cout, in_h=size,
                 in_w=size, out_h=size, out_w=size, kernel_h=k, kernel_w=k, pad_h=k // 2, pad_w=k // 2, **kw)


def test_macs_count_kept_pattern_weights():
    layer = conv("c", 16, 32, 8)
    assert layer.dense_macs == layer.macs == 8 * 8 * 32 * 16 * 9
    pruned = Layer(**{**layer.to_dict(), "kept_per_kernel": 4})
    assert pruned.macs == 8 * 8 * 32 * 16 * 4 and pruned.dense_macs == layer.dense_macs


@pytest.mark.parametrize("field, value", [("in_channels", 0), ("kernel_h", -1), ("batch", 1.5), ("weight_bits", 0)])
def test_non_positive_sizes_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        Layer(**{**conv("c", 4, 4, 4).to_dict(), field: value})


def test_groups_and_pattern_bounds_are_checked():
    with pytest.raises(ConfigError, match="groups"):
        conv("c", 6, 4, 4, groups=4)
    with pytest.raises(ConfigError, match="kept_per_kernel"):
        conv("c", 4, 4, 4, kept_per_kernel=10)


def test_workload_order_and_names_are_checked():
    a = conv("a", 3, 4, 8)
    with pytest.raises(ModelError, match="do not come before"):
        Workload("w", (conv("b", 4, 4, 8, inputs=("a",)), a))
    with pytest.raises(ModelError, match="two layers"):
        Workload("w", (a, a))
    with pytest.raises(PlanError, match="no layer 'b'"):
        Workload("w", (a,)).layer("b")


def test_channel_cut_propagates_to_consumers():
    w = from_module(TinyResNet(), (1, 3, 32, 32))
    cut = w.with_changes({"layer1.0.conv1": {"out_channels": 10}})
    assert cut.layer("layer1.0.bn1").out_channels == 10
    assert cut.layer("layer1.0.conv2").in_channels == 10
    assert cut.layer("layer1.0.conv2").out_channels == 16
    assert cut.macs < w.macs and w.layer("layer1.0.conv1").out_channels == 16  # original untouched


def test_cut_through_flatten_into_linear():
    w = from_module(MobileLike(), (2, 3, 16, 16))
    cut = w.with_changes({"branch_b": {"out_channels": 4}})
    assert cut.layer("head.1").in_channels == (6 + 4) * 64


def test_breaking_an_add_is_refused():
    w = from_module(TinyResNet(), (1, 3, 32, 32))
    with pytest.raises(PlanError, match="disagree"):
        w.with_changes({"layer1.0.conv2": {"out_channels": 8}})


def test_depthwise_follows_its_producer():
    w = from_module(MobileLike(), (2, 3, 16, 16))
    cut = w.with_changes({"block.expand.0": {"out_channels": 20}})
    dw = cut.layer("block.dw.0")
    assert (dw.in_channels, dw.out_channels, dw.groups) == (20, 20, 20)
    assert cut.layer("block.project.0").in_channels == 20


def test_kernel_expansion_needs_padding():
    w = from_module(TinyResNet(), (1, 3, 32, 32))
    grown = w.with_changes({"layer1.0.conv1": {"kernel_h": 5, "kernel_w": 5, "pad_h": 2, "pad_w": 2}})
    assert grown.layer("layer1.0.conv1").out_h == 32
    with pytest.raises(PlanError, match="padding"):
        w.with_changes({"layer1.0.conv1": {"kernel_h": 5, "kernel_w": 5}})


def test_json_round_trip():
    w = from_module(MobileLike(), (2, 3, 16, 16))
    again = Workload.from_json(w.to_json())
    assert again == w and hash(again) == hash(w)
    with pytest.raises(ConfigError, match="unknown fields"):
        Layer.from_dict({**w.layers[1].to_dict(), "colour": "red"})


@settings(max_examples=40, deadline=None)
@given(keeps=st.lists(st.integers(1, 16), min_size=2, max_size=2),
       layer=st.sampled_from(["layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1"]))
def test_fewer_channels_never_add_macs(keeps, layer):
    w = _RESNET
    small, large = sorted(keeps)
    macs_small = w.with_changes({layer: {"out_channels": small}}).macs
    macs_large = w.with_changes({layer: {"out_channels": large}}).macs
    assert macs_small <= macs_large <= w.macs
    assert (macs_small < macs_large) == (small < large)


_RESNET = from_module(TinyResNet(), (1, 3, 32, 32))


@pytest.mark.parametrize("net, shape", [(TinyResNet, (1, 3, 32, 32)), (MobileLike, (2, 3, 16, 16)),
                                        (Untraceable, (1, 3, 8, 8)), (WithUnknownOps, (1, 2, 20))])
def test_no_change_is_the_identity(net, shape):
    w = from_module(net(), shape)
    assert w.with_changes({}) == w
