"""Must-show on the Fashion-MNIST zoo ResNet-20 (full 10,000-image test set), issue 3:

- the packaged checkpoint reaches >= 93 % top-1, and every packaged one scores what the catalog says;
- 8-bit weights (fake-quantized, no fine-tuning) lose <= 0.3 points;
- every 3x3 conv of stage 1 pruned to PATn=4 patterns (6 kept weights) and fine-tuned 100 batches
  ends within 1 point of the baseline;
- channel cuts keep the output shape and the cut model trains.

The pattern fine-tune uses lr 0.001, not HotNAS's default 0.1: on this converged checkpoint
(94.46 %) 100 batches of 32 at lr 0.1 drop even the *unpruned* model to 66.7 % (pruned: 66.3 %),
at lr 0.01 to 90.1 % (pruned 89.3 %), while at lr 0.001 the pruned model ends at 94.10 % (unpruned
94.35 %; pruned without fine-tuning 92.10 %). Measured with these tests' code, seed 0.
"""

from __future__ import annotations

import pytest
import torch

from nn2hw import evaluate, zoo
from nn2hw.compress import apply_plan, with_cut, with_patterns, with_quantization
from nn2hw.plan import Plan
from nn2hw.zoo.catalog import FASHION_MNIST_CHECKPOINTS
from tests.data.helpers import real_fmnist

pytestmark = pytest.mark.slow  # four passes over 10,000 images and two 100-batch fine-tunes


@pytest.fixture(scope="module")
def data():
    return (zoo.prepare(real_fmnist("train"), "resnet20"), zoo.prepare(real_fmnist("test"), "resnet20"))


@pytest.fixture(scope="module")
def base():
    return zoo.build("resnet20", "fashion-mnist", pretrained=True)


@pytest.fixture(scope="module")
def workload():
    return zoo.workload("resnet20", "fashion-mnist")


@pytest.fixture(scope="module")
def baseline(base, data):
    return evaluate.test(base, data[1], progress=False)


def test_zoo_checkpoint_reaches_93_percent(baseline):
    assert (baseline.n_images, baseline.partial) == (10000, False)
    assert baseline.top1 >= 93.0


@pytest.mark.parametrize("name", sorted(FASHION_MNIST_CHECKPOINTS))
def test_every_packaged_checkpoint_scores_what_the_catalog_says(name, data):
    measured = evaluate.test(zoo.build(name, "fashion-mnist", pretrained=True), data[1], progress=False)
    floor = 86.0 if name == "vit_fmnist" else 93.0  # a 139k-parameter ViT trained 20 epochs here: 86.38 %
    assert measured.top1 == pytest.approx(FASHION_MNIST_CHECKPOINTS[name][2], abs=0.01) and measured.top1 >= floor


def test_8_bit_weights_lose_at_most_0_3_points(base, workload, data, baseline):
    plan = with_quantization(Plan.for_workload(workload, "resnet20", "fashion-mnist"), workload, 8)
    quantized = evaluate.test(apply_plan(plan, base), data[1], progress=False)
    assert baseline.top1 - quantized.top1 <= 0.3


def test_stage1_patterns_after_100_batches_within_1_point(base, workload, data, baseline):
    plan = with_patterns(Plan.for_workload(workload, "resnet20", "fashion-mnist"), workload, "layer1.*", model=base)
    pruned = apply_plan(plan, base)
    convs = [f"layer1.{b}.conv{c}" for b in range(3) for c in (1, 2)]
    assert sorted(plan.choices) == convs and all(len(plan.choices[n].get("patterns")) == 4 for n in convs)
    for name in convs:  # 6 of 9 weights kept in every kernel
        weight = pruned.get_submodule(name).weight.detach()
        assert ((weight != 0).sum((2, 3)) <= 6).all()
    evaluate.finetune(pruned, data[0], batches=100, lr=0.001, progress=False)
    for name in convs:  # the masks hold through fine-tuning
        assert ((pruned.get_submodule(name).weight.detach() != 0).sum((2, 3)) <= 6).all()
    tuned = evaluate.test(pruned, data[1], progress=False)
    assert baseline.top1 - tuned.top1 <= 1.0


def test_channel_cuts_keep_shapes_and_train(base, workload, data):
    plan = Plan.for_workload(workload, "resnet20", "fashion-mnist")
    for stage, width in ((1, 8), (2, 16), (3, 32)):  # every block's inner conv at half width
        for block in range(3):
            plan = with_cut(plan, workload, f"layer{stage}.{block}.conv1", width)
    cut = apply_plan(plan, base)
    assert cut.get_submodule("layer2.1.conv1").out_channels == 16
    assert cut.get_submodule("layer2.1.conv2").in_channels == 16
    images, _ = data[1].batch(torch.arange(8).numpy())
    assert cut(images).shape == (8, 10)
    before = evaluate.test(cut, data[1].take(2000), progress=False)
    evaluate.finetune(cut, data[0], batches=100, progress=False)
    after = evaluate.test(cut, data[1].take(2000), progress=False)
    assert after.partial and after.top1 > before.top1
