"""Variants of one base model trained as slices of one set of weights (``nn2hw.compress._joint``):
every parameter a cut, a grown kernel, a pattern mask, a quantizer or a dropped block leaves is
recomputed exactly from the base's; the joint module runs each variant as it runs alone; a joint
fine-tune moves one shared set, and afterwards every variant is again exactly its slice of it."""

from __future__ import annotations

import copy

import pytest
import torch

from nn2hw import evaluate, zoo
from nn2hw.compress import apply_plan, with_cut, with_dropped_blocks, with_patterns, with_quantization
from nn2hw.compress._joint import JointNetworks, base_name, derivations
from nn2hw.compress.block_prune import with_block_pruning
from nn2hw.compress.channel_cut import with_uniform_cut
from nn2hw.compress.head_prune import with_heads
from nn2hw.plan import Plan
from tests.data.helpers import real_fmnist


@pytest.fixture(scope="module")
def base():
    return zoo.build("resnet20", "fashion-mnist", pretrained=False)


@pytest.fixture(scope="module")
def workload():
    return zoo.workload("resnet20", "fashion-mnist")


def plans(workload, base):
    empty = Plan.for_workload(workload, "resnet20", "fashion-mnist")
    loose = with_cut(empty, workload, "layer3.0.conv1", 32)
    middle = with_quantization(with_uniform_cut(loose, workload, 0.75), workload, 8)
    tight = with_dropped_blocks(with_patterns(middle, workload, "layer1.*", model=base), workload, ["layer2.1"])
    return loose, middle, tight


def test_every_parameter_of_a_cut_quantized_patterned_or_dropped_variant_derives_from_the_base(base, workload):
    for plan in plans(workload, base):
        variant = apply_plan(plan, base)
        shared, own = derivations(base, variant)
        assert own == () and set(shared) == {n for n, _ in variant.named_parameters()}
    tight = apply_plan(plans(workload, base)[-1], base)
    names = {n for n, _ in tight.named_parameters()}
    assert "layer1.0.conv1.parametrizations.weight.original" in names  # a masked, quantized weight
    assert not any(n.startswith("layer2.1.") for n in names)  # the dropped block has none


def test_a_grown_kernel_is_the_base_kernel_padded(base, workload):
    plan = Plan.for_workload(workload, "resnet20", "fashion-mnist").with_choice("layer1.0.conv1", expand=1)
    variant = apply_plan(plan, base)
    shared, own = derivations(base, variant)
    assert own == () and variant.get_parameter("layer1.0.conv1.weight").shape[-1] == 5
    assert shared["layer1.0.conv1.weight"].steps  # recorded, not merely equal


def test_a_parameter_the_steps_do_not_give_is_the_variants_own(base, workload):
    variant = apply_plan(plans(workload, base)[0], base)
    with torch.no_grad():
        variant.get_parameter("linear.bias").add_(1.0)  # changed after the plan: no longer the base's
    shared, own = derivations(base, variant)
    assert own == ("linear.bias",) and "linear.weight" in shared


def test_names_of_parametrized_weights_map_to_the_base_names():
    assert base_name("a.b.parametrizations.weight.original") == "a.b.weight"
    assert base_name("parametrizations.weight.original") == "weight"
    assert base_name("a.b.weight") == "a.b.weight"


def test_the_joint_module_runs_each_variant_as_it_runs_alone(base, workload):
    variants = [apply_plan(p, base) for p in plans(workload, base)]
    alone = [copy.deepcopy(v).eval() for v in variants]
    joint = JointNetworks(base, variants).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        outputs = joint(x)
        assert outputs.shape[0] == 3
        for out, v in zip(outputs, alone):
            torch.testing.assert_close(out, v(x), rtol=0, atol=1e-6)
    shared, own = joint.counts()
    assert own == 0 and shared > sum(p.numel() for p in base.parameters())  # the variants overlap


@pytest.mark.data
def test_a_joint_fine_tune_trains_one_set_of_weights_every_variant_is_a_slice_of(base, workload):
    train = zoo.prepare(real_fmnist("train"), "resnet20")
    variants = [apply_plan(p, base) for p in plans(workload, base)]
    joint = JointNetworks(base, variants)
    trainable = {n for n, p in joint.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("shared.") for n in trainable)  # no variant keeps a copy to train
    evaluate.finetune(joint, train, batches=4, lr=0.01, progress=False, teacher=base, distill=0.5)
    state = joint.shared_state()
    moved = [n for n, p in base.named_parameters() if not torch.equal(p, state[n])]
    assert "conv1.weight" in moved and "linear.weight" in moved
    trained_base = copy.deepcopy(base)
    trained_base.load_state_dict(state, strict=False)
    for variant in joint.materialize():
        shared, own = derivations(trained_base, variant)
        assert own == () and shared  # each variant is exactly its plan's slice of the one trained set


def test_a_transformers_removed_heads_pruned_blocks_and_dropped_layers_derive_from_the_base():
    """The ViT: 2 of 4 heads in layer 0, then FFN blocks pruned, then int8 and layer 3 dropped."""
    base = zoo.build("vit_fmnist", "fashion-mnist", pretrained=False)
    workload = zoo.workload("vit_fmnist", "fashion-mnist")
    heads = with_heads(Plan.for_workload(workload, "vit_fmnist", "fashion-mnist"), workload, 2, "encoder.layer.0.*")
    blocks = with_block_pruning(heads, workload, 16, 0.5, "*intermediate.dense")
    dropped = with_dropped_blocks(with_quantization(blocks, workload, 8), workload, ["encoder.layer.3"])
    variants = [apply_plan(p, base) for p in (heads, blocks, dropped)]
    for variant in variants:
        shared, own = derivations(base, variant)
        assert own == () and len(shared) == len(list(variant.parameters()))
    assert variants[0].get_parameter("encoder.layer.0.attention.self.query.weight").shape[0] < \
        base.get_parameter("encoder.layer.0.attention.self.query.weight").shape[0]  # heads removed: rows taken
    alone = [copy.deepcopy(v).eval() for v in variants]
    joint = JointNetworks(base, variants).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        for out, v in zip(joint(x), alone):
            torch.testing.assert_close(out, v(x), rtol=0, atol=1e-6)
