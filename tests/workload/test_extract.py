"""Extraction from torch: fx and hook paths agree, couplings, unknown ops kept, fallback works."""

from __future__ import annotations

import pytest
import torch

from nn2hw.errors import ConfigError, ModelError
from nn2hw.workload import OpKind, Workload, from_module
from tests.workload.nets import MobileLike, SelfConcat, TinyResNet, Untraceable, WithUnknownOps


def _signature(w: Workload) -> list[tuple]:
    return [(l.name, l.kind, l.in_channels, l.out_channels, l.in_h, l.in_w, l.out_h, l.out_w, l.kernel_h,
             l.stride_h, l.pad_h, l.groups) for l in w.compute_layers]


@pytest.mark.parametrize("net, shape", [(TinyResNet, (1, 3, 32, 32)), (MobileLike, (2, 3, 16, 16)),
                                        (SelfConcat, (1, 3, 8, 8))])
def test_fx_and_hooks_give_the_same_graph(net, shape):
    model = net()
    fx, hooks = from_module(model, shape, method="fx"), from_module(model, shape, method="hooks")
    assert fx.source == "torch.fx" and hooks.source == "hooks"
    assert _signature(fx) == _signature(hooks)
    assert [(l.kind, l.out_channels) for l in fx] == [(l.kind, l.out_channels) for l in hooks]
    assert fx.macs == hooks.macs
    assert [g.layers for g in fx.coupling_groups] == [g.layers for g in hooks.coupling_groups]


def test_tiny_resnet_layers_and_macs():
    w = from_module(TinyResNet(), (1, 3, 32, 32))
    convs = [l for l in w.compute_layers if l.kind is OpKind.CONV]
    assert [l.name for l in convs][:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    down = w.layer("layer2.0.conv1")
    assert (down.in_channels, down.out_channels, down.stride_h, down.out_h) == (16, 32, 2, 16)
    hand = 32 * 32 * 16 * 3 * 9 + 4 * (32 * 32 * 16 * 16 * 9) + 16 * 16 * 32 * 16 * 9 + 16 * 16 * 32 * 32 * 9 + 32 * 10
    assert w.macs == hand
    assert w.outputs == ("linear",)
    assert {l.kind for l in w} >= {OpKind.INPUT, OpKind.NORM, OpKind.ACT, OpKind.ELTWISE, OpKind.PAD, OpKind.SLICE,
                                   OpKind.POOL, OpKind.RESHAPE}


def test_residual_coupling_and_option_a_pin():
    w = from_module(TinyResNet(), (1, 3, 32, 32))
    stage1 = w.group_of("layer1.0.conv2")
    assert stage1.layers == ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    assert not stage1.cuttable and any("pad" in reason for reason in stage1.fixed_by)
    inner = w.group_of("layer1.0.conv1")
    assert inner.layers == ("layer1.0.conv1",) and inner.cuttable
    assert not w.group_of("linear").cuttable  # the class count is fixed


def test_depthwise_se_and_concat_coupling():
    w = from_module(MobileLike(), (2, 3, 16, 16))
    dw = w.layer("block.dw.0")
    assert dw.conv_type == "depthwise"
    expand = w.group_of("block.expand.0")
    assert "block.dw.0" in expand.followers and expand.cuttable
    # the residual add ties stem and project; the SE multiply ties fc2 to them as well
    residual = w.group_of("stem")
    assert set(residual.layers) == {"stem", "block.project.0", "se.fc2"}
    cat = next(l for l in w if l.kind is OpKind.CONCAT)
    assert cat.out_channels == 16 and set(cat.inputs) == {"branch_a", "branch_b"}
    assert w.group_of("branch_a").cuttable  # a concat input can be cut on its own
    head = w.layer("head.1")
    assert (head.kind, head.in_channels, head.batch) == (OpKind.LINEAR, 16 * 64, 2)


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_a_tensor_concatenated_with_itself_counts_twice(method):
    w = from_module(SelfConcat(), (1, 3, 8, 8), method=method)
    cat, add = w.layer("cat"), w.layer("add")
    assert (cat.kind, cat.inputs, cat.in_channels, cat.out_channels) == (OpKind.CONCAT, ("a", "a"), 4, 8)
    assert (add.kind, add.inputs) == (OpKind.ELTWISE, ("cat",))  # z + z reads one channel space: listed once
    assert not w.unsupported and Workload.from_json(w.to_json()) == w
    cut = w.with_changes({"a": {"out_channels": 3}})
    assert (cut.layer("cat").out_channels, cut.layer("add").out_channels, cut.layer("b").in_channels) == (6, 6, 6)


def test_untraceable_model_falls_back_to_hooks():
    w = from_module(Untraceable(), (1, 3, 8, 8))
    assert w.source == "hooks"
    assert [l.name for l in w.compute_layers] == ["a", "b", "fc"]
    add = next(l for l in w if l.kind is OpKind.ELTWISE)
    assert set(add.inputs) == {"a", "b"}
    with pytest.raises(ModelError, match="torch.fx cannot trace"):
        from_module(Untraceable(), (1, 3, 8, 8), method="fx")


def test_unknown_ops_are_listed_not_dropped():
    w = from_module(WithUnknownOps(), (1, 2, 20))
    ops = {l.op for l in w.unsupported}
    assert "LSTM" in ops and "fft_rfft" in ops
    assert w.layer("conv").kind is OpKind.CONV and w.layer("fc").kind is OpKind.LINEAR


def test_bad_inputs_are_clear():
    with pytest.raises(ConfigError, match="example input"):
        from_module(TinyResNet(), "not a shape")
    with pytest.raises(ModelError, match="Module"):
        from_module(object(), (1, 3, 8, 8))
    with pytest.raises(ModelError, match="input of shape"):
        from_module(TinyResNet(), (1, 5, 32, 32), method="hooks")


def test_extraction_restores_training_mode():
    model = TinyResNet().train()
    from_module(model, torch.zeros(1, 3, 32, 32))
    assert model.training
