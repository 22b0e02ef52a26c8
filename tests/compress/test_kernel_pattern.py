"""Kernel patterns: HotNAS's library sizes and order, max-norm choice per kernel, masks that survive training."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest
import torch
from torch import nn

from nn2hw.compress import apply_plan, validate_plan, with_patterns
from nn2hw.compress.kernel_pattern import (
    best_library_patterns,
    library_size,
    pattern_library,
    pattern_mask,
    prunable_positions,
    rank_combinations,
    top_patterns,
)
from nn2hw.errors import PlanError
from nn2hw.plan import Plan
from tests.compress.cases import model_case


@pytest.mark.parametrize("kernel, zeros, keep_last, size, ones", [
    (3, 3, None, 56, 6),  # reference §2.5: C(8,3)
    (3, 2, None, 21, 7),  # HotNAS's z=2 loop never prunes position 8: C(7,2)
    (3, 2, False, 28, 7),  # without the quirk: C(8,2)
    (3, 4, None, 70, 5),  # C(8,4)
    (5, 6, None, 924, 19),  # reference §2.5: C(12,6)
    (7, 10, None, comb(20, 10), 39),  # same rule on the 7x7 outer ring (20 prunable)
])
def test_library_sizes_and_ones(kernel, zeros, keep_last, size, ones):
    assert library_size(kernel, zeros, keep_last) == size
    for pid in (0, size // 2, size - 1):
        mask = pattern_mask(kernel, pid, zeros, keep_last)
        assert mask.sum() == ones and mask[kernel // 2, kernel // 2]


def test_defaults_match_hotnas():
    assert library_size(3) == 56 and library_size(5) == 924 and library_size(7) == comb(20, 10)
    assert 8 not in prunable_positions(3, keep_last=True) and 4 not in prunable_positions(3)
    # 5x5: the centre 3x3 and the 4 mid-edges are never pruned (HotNAS's fix_one_set)
    assert set(range(25)) - set(prunable_positions(5)) == {2, 10, 14, 22, 6, 7, 8, 11, 12, 13, 16, 17, 18}


def test_ids_follow_hotnas_loop_order():
    """Id i is the i-th mask of HotNAS's nested loops: zeroed positions in lexicographic order."""
    library = pattern_library(3, 3)
    loops = [c for c in itertools.combinations(range(9), 3) if 4 not in c]
    for pid, zeroed in enumerate(loops):
        assert set(np.flatnonzero(~library[pid].reshape(-1))) == set(zeroed)
    combos = np.array(list(itertools.combinations(range(12), 6)))
    assert rank_combinations(12, combos).tolist() == list(range(924))


def test_best_library_pattern_is_the_max_norm_mask():
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    library = torch.from_numpy(pattern_library(3, 3)).float()
    brute = torch.einsum("oikl,pkl->oip", w * w, library).argmax(-1).reshape(-1)
    assert best_library_patterns(w).tolist() == brute.tolist()


def test_each_kernel_takes_the_best_of_the_layer_patterns():
    model, _x, workload = model_case("tiny_resnet")
    ids = (3, 17, 30, 55)
    new = apply_plan(Plan.for_workload(workload, "t").with_choice("layer1.0.conv1", patterns=ids), model)
    conv, w = new.get_submodule("layer1.0.conv1"), model.get_submodule("layer1.0.conv1").weight.detach()
    masks = torch.from_numpy(np.stack([pattern_mask(3, i) for i in ids])).float()
    kept = torch.einsum("oikl,pkl->oip", w * w, masks)
    chosen = conv.parametrizations.weight[0].mask
    for o in range(w.shape[0]):
        for i in range(w.shape[1]):
            p = int(kept[o, i].argmax())
            assert torch.equal(chosen[o, i], masks[p])
    assert torch.equal(conv.weight, w * chosen)
    assert set((chosen.sum(dim=(2, 3))).unique().tolist()) == {6.0}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_masks_survive_optimizer_steps(optimizer):
    model, _x, workload = model_case("mini_mobilenet_v2")
    plan = with_patterns(Plan.for_workload(workload, "m"), workload, "features.*", model=model)
    new = apply_plan(plan, model).train()
    pruned = {n: m for n, m in new.named_modules() if hasattr(m, "parametrizations")}
    assert "features.1.conv.3" in pruned  # depthwise convs are pruned too
    opt = (torch.optim.SGD(new.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4) if optimizer == "sgd"
           else torch.optim.Adam(new.parameters(), lr=0.01))
    for _ in range(3):
        opt.zero_grad()
        new(torch.randn(4, 3, 16, 16)).square().mean().backward()
        opt.step()
    for name, module in pruned.items():
        mask = module.parametrizations.weight[0].mask
        assert torch.all(module.weight[mask == 0] == 0), name
        assert torch.any(module.weight != model.get_submodule(name).weight * mask), "the kept weights did train"


def test_top_patterns_and_helper():
    model, _x, workload = model_case("tiny_resnet")
    weights = [model.get_submodule(n).weight for n in ("layer1.0.conv1", "layer1.0.conv2")]
    ids = top_patterns(weights, 4)
    votes = np.bincount(np.concatenate([best_library_patterns(w) for w in weights]), minlength=56)
    assert len(ids) == 4 and min(votes[list(ids)]) >= max(np.delete(votes, list(ids)))
    plan = with_patterns(Plan.for_workload(workload, "t"), workload, "layer1.*", model=model)
    assert sorted(plan.choices) == ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"]
    assert apply_plan(plan, workload).layer("layer1.1.conv2").kept_per_kernel == 6
    with pytest.raises(PlanError, match="either the pattern ids or the base model"):
        with_patterns(Plan.for_workload(workload, "t"), workload, "layer1.*")


def test_bad_pattern_choices():
    _, _, workload = model_case("concat_net")
    plan = Plan.for_workload(workload, "c")
    with pytest.raises(PlanError, match=r"pattern ids \[56\] are outside its 3x3 library with 3 zeros \(ids 0..55\)"):
        validate_plan(plan.with_choice("a", patterns=[0, 56]), workload)
    with pytest.raises(PlanError, match=r"kernel 1x1\) has no pattern library"):
        validate_plan(plan.with_choice("c", patterns=[0]), workload)
    with pytest.raises(PlanError, match="can zero 1..12 positions, not 13"):
        validate_plan(plan.with_choice("b", patterns=[0], pattern_zeros=13), workload)
    with pytest.raises(PlanError, match="repeats an id"):
        validate_plan(plan.with_choice("a", patterns=[1, 1]))
    assert apply_plan(plan.with_choice("b", patterns=[0, 923]), workload).layer("b").kept_per_kernel == 19


def test_patterns_apply_to_the_expanded_kernel():
    _, _, workload = model_case("concat_net")
    plan = Plan.for_workload(workload, "c").with_choice("a", expand=1, patterns=[0, 900])
    assert apply_plan(plan, workload).layer("a").kept_per_kernel == 19
    with pytest.raises(PlanError, match="5x5 library"):
        validate_plan(plan.with_choice("a", patterns=[0, 924]), workload)


def test_masked_model_is_a_plain_nn_module():
    model, _x, workload = model_case("tiny_resnet")
    new = apply_plan(with_patterns(Plan.for_workload(workload, "t"), workload, "layer1.*", model=model), model)
    assert isinstance(new.get_submodule("layer1.0.conv1"), nn.Conv2d)
    assert "layer1.0.conv1.parametrizations.weight.0.mask" in new.state_dict()


def test_helper_refuses_to_choose_patterns_for_expanded_kernels():
    model, _x, workload = model_case("tiny_resnet")
    plan = Plan.for_workload(workload, "t").with_choice("layer1.0.conv1", expand=1)
    with pytest.raises(PlanError, match=r"\['layer1.0.conv1'\] have other kernel sizes"):
        with_patterns(plan, apply_plan(plan, workload), "layer1.0.*", model=model)
    explicit = with_patterns(plan, apply_plan(plan, workload), "layer1.0.conv1", [0, 923])
    assert apply_plan(explicit, workload).layer("layer1.0.conv1").kept_per_kernel == 19
