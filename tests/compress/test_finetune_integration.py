"""Compressed zoo models through the evaluator's fine-tune loop: masks and grids hold, runs repeat exactly."""

from __future__ import annotations

import pytest
import torch

from nn2hw import zoo
from nn2hw.compress import apply_plan, with_patterns, with_quantization
from nn2hw.errors import DatasetError
from nn2hw.evaluate import finetune
from nn2hw.fixedpoint import fixed_point
from nn2hw.plan import Plan
from tests.compress import cases  # noqa: F401  (single-threaded torch)


@pytest.fixture(scope="module")
def fmnist_train():
    from nn2hw.data import load_dataset

    try:
        return load_dataset("fashion-mnist", "train")
    except DatasetError as exc:
        pytest.skip(f"Fashion-MNIST is not installed here: {exc}")


def _issue3_plan(model) -> Plan:
    """Issue 3's two settings at once: stage 1 pruned to PATn=4 (6 kept), 8-bit weights everywhere."""
    workload = zoo.workload("resnet20", "fashion-mnist")
    plan = with_patterns(Plan.for_workload(workload, "resnet20", "fashion-mnist"), workload, "layer1.*", model=model)
    return with_quantization(plan, workload, 8)


@pytest.mark.slow
def test_finetune_keeps_masks_and_quantization_and_is_deterministic(fmnist_train):
    torch.manual_seed(0)
    base = zoo.build("resnet20", "fashion-mnist")
    plan = _issue3_plan(base)
    assert all(len(plan.choices[f"layer1.{b}.conv{c}"].get("patterns")) == 4 for b in range(3) for c in (1, 2))
    runs = []
    for _ in range(2):
        model = apply_plan(plan, base)
        result = finetune(model, fmnist_train, batches=4, batch_size=16, threads=1, progress=False)
        assert result.batches == 4
        runs.append(model)
    for name, module in runs[0].named_modules():
        if name.startswith("layer1.") and name.endswith(("conv1", "conv2")):
            mask = module.parametrizations.weight[0].mask
            assert torch.all(module.weight[mask == 0] == 0) and set(mask.sum((2, 3)).unique().tolist()) == {6.0}
        if hasattr(module, "parametrizations"):
            int_bits = int(module.parametrizations.weight[-1].int_bits)
            assert torch.equal(module.weight, fixed_point(module.weight, 8, int_bits))
    first, second = runs[0].state_dict(), runs[1].state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
