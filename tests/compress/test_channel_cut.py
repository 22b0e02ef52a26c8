"""Channel cut: right filters kept, exact through BN / depthwise / concat / flatten, couplings, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nn2hw.compress import apply_plan, validate_plan, with_cut
from nn2hw.compress.channel_cut import CutChoice, filter_scores, top_filters
from nn2hw.errors import PlanError
from nn2hw.plan import Plan
from tests.compress.cases import MODELS, model_case


def test_filter_score_is_the_sum_of_per_kernel_l2_norms():
    w = torch.zeros(3, 2, 3, 3)
    w[0, 0, 0, 0], w[0, 1, 1, 1] = 3.0, 4.0  # two kernels of norm 3 and 4: score 7 (not the filter norm 5)
    w[1, 0] = 1.0  # one kernel of nine ones: norm 3
    w[2, 1, :, 0] = torch.tensor([2.0, 2.0, 1.0])  # norm 3
    assert filter_scores(w).tolist() == pytest.approx([7.0, 3.0, 3.0])
    assert top_filters(filter_scores(w), 2).tolist() == [0, 1]  # tie between 1 and 2 goes to the lower index
    assert filter_scores(torch.tensor([[1.0, -2.0], [0.5, 0.5]])).tolist() == [3.0, 1.0]  # linear: sum of |w|


def _silence(model: nn.Module, workload, group, drop: list[int]) -> None:
    """Make the ``drop`` channels of ``group`` exactly zero everywhere (weights, biases, BN affine)."""
    with torch.no_grad():
        for name in group.layers:
            m = model.get_submodule(name)
            m.weight[drop] = 0.0
            if m.bias is not None:
                m.bias[drop] = 0.0
        for name in group.followers:
            try:
                m = model.get_submodule(name)
            except AttributeError:
                continue
            if isinstance(m, (nn.BatchNorm2d, nn.Conv2d)):
                m.weight[drop] = 0.0
                if m.bias is not None:
                    m.bias[drop] = 0.0


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_cutting_silent_filters_keeps_the_function(model_name):
    """Zero the filters a cut should drop; the cut model then computes exactly the same outputs.

    This checks every index the cut touches: BN followers, depthwise convs, residual partners,
    concat offsets and the flatten into the classifier.
    """
    model, x, workload = model_case(model_name)
    plan = Plan.for_workload(workload, model_name)
    for group in workload.coupling_groups:
        if group.cuttable and group.channels >= 3:
            drop = list(range(0, group.channels, 3))  # spread over the channel range
            _silence(model, workload, group, drop)
            plan = with_cut(plan, workload, group.layers[0], group.channels - len(drop))
    assert plan.choices
    new = apply_plan(plan, model)
    torch.testing.assert_close(new(x), model(x), rtol=1e-5, atol=1e-5)


def test_coupled_layers_are_cut_by_one_set_of_summed_scores():
    model, _x, workload = model_case("mobile_like")
    group = workload.group_of("stem")
    assert set(group.layers) == {"stem", "block.project.0", "se.fc2"} and group.cuttable
    plan = with_cut(Plan.for_workload(workload, "mobile_like"), workload, "stem", 5)
    assert {n: c.get("out_channels") for n, c in plan.choices.items()} == dict.fromkeys(group.layers, 5)
    scores = sum(filter_scores(model.get_submodule(n).weight) for n in group.layers)
    expected = top_filters(scores, 5)
    new = apply_plan(plan, model)
    for name in group.layers:
        torch.testing.assert_close(new.get_submodule(name).weight, model.get_submodule(name).weight[expected])
    torch.testing.assert_close(new.get_submodule("block.project.1").running_mean,
                               model.get_submodule("block.project.1").running_mean[expected])
    assert new.get_submodule("block.expand.0").weight.shape[1] == 5  # consumer's inputs follow


def test_depthwise_conv_is_cut_with_its_producer():
    model, x, workload = model_case("mini_mobilenet_v2")
    new = apply_plan(with_cut(Plan.for_workload(workload, "m"), workload, "features.2.conv.0", 10), model)
    dw = new.get_submodule("features.2.conv.3")
    assert (dw.in_channels, dw.out_channels, dw.groups, tuple(dw.weight.shape)) == (10, 10, 10, (10, 1, 3, 3))
    assert new.get_submodule("features.2.conv.6").in_channels == 10
    assert new(x).shape == (1, 10)


def test_cut_model_trains():
    """A cut model keeps its output shape, and a few SGD steps lower the loss on a toy problem."""
    model, _x, workload = model_case("tiny_resnet")
    plan = with_cut(Plan.for_workload(workload, "t"), workload, "layer1.0.conv1", 6)
    plan = with_cut(plan, workload, "layer2.0.conv1", 12)
    new = apply_plan(plan, model).train()
    gen = torch.Generator().manual_seed(0)
    data, labels = torch.randn(16, 3, 16, 16, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    assert new(data).shape == model(data).shape
    opt = torch.optim.SGD(new.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(new(data), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_refused_cuts_name_their_reason():
    _, _, workload = model_case("tiny_resnet")
    plan = Plan.for_workload(workload, "t")
    with pytest.raises(PlanError, match=r"fixed by pad \(pad\).*conv1.*layer1\.0\.conv2") as err:
        validate_plan(with_cut(plan, workload, "layer1.0.conv2", 8), workload)
    assert "Leave this layer's width unchanged" in str(err.value)
    with pytest.raises(PlanError, match=r"linear \(network output\)"):
        validate_plan(plan.with_choice("linear", out_channels=5), workload)


def test_a_partial_cut_of_a_coupling_group_is_refused_naming_the_group():
    _, _, workload = model_case("mobile_like")
    plan = Plan.for_workload(workload, "m").with_choice("stem", out_channels=4)
    with pytest.raises(PlanError, match=r"breaks coupling group .*'stem'.*not cut") as err:
        validate_plan(plan, workload)
    assert "with_cut" in str(err.value)
    uneven = plan.with_choice("block.project.0", out_channels=4).with_choice("se.fc2", out_channels=3)
    with pytest.raises(PlanError, match="widths differ"):
        validate_plan(uneven, workload)


def test_cut_bounds_and_followers():
    _, _, workload = model_case("mini_mobilenet_v2")
    plan = Plan.for_workload(workload, "m")
    with pytest.raises(PlanError, match="zero channels"):
        CutChoice(out_channels=0)
    with pytest.raises(PlanError, match="above its width of 16"):
        validate_plan(plan.with_choice("features.1.conv.0", out_channels=17), workload)
    with pytest.raises(PlanError, match=r"does not define its own channels.*features\.1\.conv\.0"):
        validate_plan(plan.with_choice("features.1.conv.3", out_channels=8), workload)
    full = plan.with_choice("features.4.0", out_channels=32)  # keeping every channel is always allowed
    assert apply_plan(full, workload) == workload
