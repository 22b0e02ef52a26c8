"""Quantization (error bounds, clamping, integer bits, STE gradients) and kernel expansion (same function)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nn2hw.compress import apply_plan, validate_plan, with_quantization
from nn2hw.compress.channel_cut import CutChoice
from nn2hw.compress.kernel_expand import ExpandChoice
from nn2hw.compress.kernel_pattern import PatternChoice
from nn2hw.compress.quantize import QuantChoice, auto_int_bits
from nn2hw.errors import PlanError
from nn2hw.fixedpoint import fixed_point
from nn2hw.plan import Plan
from nn2hw.workload import from_module
from tests.compress.cases import model_case


@pytest.mark.parametrize("bits, int_bits", [(8, 1), (8, 0), (4, 2), (16, 3), (6, -2)])
def test_fixed_point_grid_error_and_clamp(bits, int_bits):
    """Reference §2.5: round to a multiple of 2^-frac, clamp to [-2^(int-1), 2^(int-1) - 2^-frac]."""
    step, top = 2.0 ** (int_bits - bits), 2.0 ** (int_bits - 1)
    x = torch.linspace(-1.5 * top, 1.5 * top, 2001, dtype=torch.float64)
    q = fixed_point(x, bits, int_bits)
    assert torch.equal(torch.round(q / step), q / step)  # on the grid
    assert q.min() == -top and q.max() == top - step  # clamped
    inside = (x >= -top) & (x <= top - step)
    assert (q - x)[inside].abs().max() <= step / 2 + 1e-12
    assert len(q.unique()) <= 2 ** bits


def test_auto_int_bits_keeps_the_largest_weight_unclipped():
    assert auto_int_bits(torch.tensor([0.9, -0.3]), 8) == 1  # [-1, 1)
    assert auto_int_bits(torch.tensor([0.3]), 8) == 0  # [-0.5, 0.5), HotNAS's "0 int bits"
    assert auto_int_bits(torch.tensor([-3.0]), 8) == 3  # [-4, 4)
    assert auto_int_bits(torch.tensor([0.01]), 8) == -5  # [-2^-7, 2^-7): all 8 bits for the fraction
    assert auto_int_bits(torch.zeros(3), 8) == 1
    for w in (torch.tensor([0.9]), torch.tensor([0.3]), torch.tensor([-3.0])):
        assert fixed_point(w, 8, auto_int_bits(w, 8)).sub(w).abs().max() <= 2.0 ** (auto_int_bits(w, 8) - 9)


def test_quantized_weights_and_ste_gradient():
    model, x, workload = model_case("tiny_resnet")
    plan = with_quantization(Plan.for_workload(workload, "t"), workload, 4, "layer1.0.conv1", weight_int_bits=0)
    new = apply_plan(plan, model).train()
    conv = new.get_submodule("layer1.0.conv1")
    w = conv.weight
    assert len(w.unique()) <= 16 and torch.equal(w, fixed_point(w, 4, 0))
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    new(x).square().sum().backward()
    original = conv.parametrizations.weight.original
    assert original.grad is not None and original.grad.abs().sum() > 0  # the STE passes gradients through
    assert x.grad is not None and x.grad.abs().sum() > 0
    opt = torch.optim.SGD(new.parameters(), lr=0.1)
    opt.step()
    assert torch.equal(conv.weight, fixed_point(conv.weight, 4, 0))  # still on the grid after a step


def test_activation_quantization_reaches_workload_and_gradients():
    model, x, workload = model_case("mini_mobilenet_v2")
    plan = with_quantization(Plan.for_workload(workload, "m"), workload, None, "features.1.*", act_bits=4,
                                                              act_int_bits=2)
    layer = apply_plan(plan, workload).layer("features.1.conv.3")
    assert (layer.weight_bits, layer.input_bits, layer.output_bits) == (16, 4, 4)
    new = apply_plan(plan, model)
    dw = new.get_submodule("features.1.conv.3")
    assert isinstance(dw, nn.Conv2d)
    seen = []
    dw.register_forward_hook(lambda m, a, out: seen.append((a[0], out)))
    x = x.clone().requires_grad_(True)
    new(x).sum().backward()
    (inp, out), = seen
    expected = fixed_point(nn.Conv2d.forward(dw, fixed_point(inp, 4, 2)), 4, 2)  # input and output quantized
    assert torch.equal(out, expected) and not torch.equal(inp, fixed_point(inp, 4, 2))
    assert x.grad.abs().sum() > 0


def test_eight_bit_weights_change_the_output_little():
    model, x, workload = model_case("tiny_resnet")
    new = apply_plan(with_quantization(Plan.for_workload(workload, "t"), workload, 8), model)
    assert {l.weight_bits for l in from_module(new, x).compute_layers} == {8}
    ref = model(x)
    assert (new(x) - ref).abs().max() < 0.05 * ref.abs().max()


def test_bad_bits():
    with pytest.raises(PlanError, match=r"weight_bits=33 is not an integer in 1..32"):
        QuantChoice(weight_bits=33)
    with pytest.raises(PlanError, match=r"act_bits=0 is not an integer in 1..32"):
        QuantChoice(act_bits=0)
    with pytest.raises(PlanError, match=r"weight_int_bits=9 is not an integer in -24..8"):
        QuantChoice(weight_bits=8, weight_int_bits=9)
    with pytest.raises(PlanError, match="weight_int_bits is set without weight_bits"):
        QuantChoice(weight_int_bits=2)
    with pytest.raises(PlanError, match="weight_bits=True"):
        QuantChoice(weight_bits=True)
    with pytest.raises(PlanError, match="out_int_bits is set without act_bits"):
        QuantChoice(weight_bits=8, out_int_bits=3)
    with pytest.raises(PlanError, match=r"out_int_bits=9 is not an integer in -24..8"):
        QuantChoice(act_bits=8, out_int_bits=9)


def test_a_layer_reads_and_writes_on_grids_of_its_own():
    """A layer whose output range is 2^5 times its input's (a Transformer's FFN output: GELU values in,
    outlier dimensions out) quantizes its input on the step its input range needs, not the output's."""
    layer = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(4) * 32)
    model = nn.Sequential(layer)
    workload = from_module(model, torch.zeros(1, 4), name="wide")
    batch = torch.tensor([[0.9, -0.5, 0.25, 0.1]])
    plan = with_quantization(Plan.for_workload(workload, "t"), workload, 8, act_bits=8, model=model,
                             calibration=batch)
    choice = plan.choices["0"]
    assert (choice.get("act_int_bits"), choice.get("out_int_bits")) == (1, 6)  # [-1, 1) in, [-32, 32) out
    x = torch.tensor([[0.3, 0.0, 0.0, 0.0]])  # 0.3 on the input's 2^-7 grid, times 32, on the output's 2^-2
    expected = torch.round(torch.round(x * 128) / 128 * 32 * 4) / 4
    assert torch.equal(apply_plan(plan, model)(x), expected)


@pytest.mark.parametrize("build, message", [
    (lambda: ExpandChoice(expand=0), "expand=0 is not an integer >= 1"),
    (lambda: CutChoice(out_channels=-2), "out_channels=-2 is not an integer >= 1"),
    (lambda: PatternChoice(patterns=(1,), pattern_zeros=1.5), "pattern_zeros=1.5 is not an integer >= 1"),
])
def test_integer_fields_without_an_upper_bound_say_so(build, message):
    with pytest.raises(PlanError, match=message):
        build()


@pytest.mark.parametrize("stride, dilation, groups", [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 4)])
def test_kernel_expansion_keeps_the_function(stride, dilation, groups):
    conv = nn.Sequential(nn.Conv2d(4, 8, 3, stride, dilation, dilation, groups=groups))
    x = torch.randn(2, 4, 11, 11)
    plan = Plan("seq", input_shape=(2, 4, 11, 11)).with_choice("0", expand=1)
    new = apply_plan(plan, conv)
    assert new[0].kernel_size == (5, 5) and new[0].padding == (2 * dilation,) * 2  # grows by the dilation
    torch.testing.assert_close(new(x), conv(x), rtol=0, atol=1e-6)


def test_kernel_expansion_on_models():
    model, x, workload = model_case("concat_net")
    plan = Plan.for_workload(workload, "c").with_choice("b", expand=1).with_choice("stem", expand=2)
    new = apply_plan(plan, model)
    torch.testing.assert_close(new(x), model(x), rtol=0, atol=1e-6)
    layer = apply_plan(plan, workload).layer("b")
    assert (layer.kernel_h, layer.kernel_w, layer.pad_h, layer.pad_w) == (7, 7, 3, 3)
    with pytest.raises(PlanError, match="not a 2-D convolution"):
        validate_plan(plan.with_choice("fc", expand=1), workload)


def test_calibrated_activation_int_bits_hold_the_largest_values():
    model, _x, workload = model_case("tiny_resnet")
    batch = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 3
    plan = with_quantization(Plan.for_workload(workload, "t"), workload, 8, act_bits=8, model=model,
                                                              calibration=batch)
    largest = {}
    for layer in workload.compute_layers:
        model.get_submodule(layer.name).register_forward_hook(
            lambda m, a, out, n=layer.name: largest.__setitem__(n, (a[0].abs().max(), out.abs().max())))
    model(batch)
    for name, choice in plan.choices.items():
        for bits, seen in zip((choice.get("act_int_bits"), choice.get("out_int_bits")), largest[name], strict=True):
            assert 2.0 ** (bits - 2) <= seen <= 2.0 ** (bits - 1), name
    with pytest.raises(PlanError, match="needs act_bits and the base model"):
        with_quantization(Plan("t"), workload, 8, calibration=batch, model=model)
