"""Every registered transform keeps the transform contract; all of them combined agree on real models.

The per-transform contract (``nn2hw.testing.TransformContract``) runs on its own network; here the
example plans of ``cases.py`` also run on zoo and test models, alone and combined:
``from_module(apply_plan(plan, model), x) == apply_plan(plan, from_module(model, x))`` on every
layer's names, channels, kernel, padding, kept weights per kernel and bit widths.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nn2hw.compress import TRANSFORMS, apply_plan, transforms_of
from nn2hw.plan import Plan
from nn2hw.testing.transforms import TransformContract, signature
from nn2hw.workload import from_module
from tests.compress.cases import EXAMPLES, MODELS, everything, model_case


class TestEveryTransform(TransformContract):
    @pytest.fixture(params=TRANSFORMS.names())
    def transform(self, request):
        return TRANSFORMS.get(request.param)


def _check_agreement(model_name: str, build) -> tuple:
    model, x, workload = model_case(model_name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = build(Plan.for_workload(workload, model_name), workload, model)
    assert plan.choices, "the example plan must choose something"
    new = apply_plan(plan, model)
    assert signature(from_module(new, x, name=model_name)) == signature(apply_plan(plan, workload))
    assert new(x).shape == model(x).shape
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(hasattr(m, "nn2hw_layer_fields") for m in model.modules())
    return plan, workload, new


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("transform", sorted(EXAMPLES))
def test_example_plans_agree_on_real_models(transform, model_name):
    plan, workload, _ = _check_agreement(model_name, EXAMPLES[transform])
    assert {transform} == {t for c in plan.choices.values() for t in transforms_of(c)}
    assert apply_plan(plan, workload) != workload


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_all_transforms_combined_agree(model_name):
    plan, workload, _new = _check_agreement(model_name, everything)
    assert {t for c in plan.choices.values() for t in transforms_of(c)} == set(EXAMPLES)
    assert apply_plan(plan, workload).macs < workload.macs


def test_workload_side_needs_no_torch():
    """apply_plan(plan, workload) and validate_plan run without importing torch (cost checks stay instant)."""
    code = (
        "import sys, json\n"
        "from nn2hw.workload import Workload\n"
        "from nn2hw.plan import Plan\n"
        "from nn2hw.compress import apply_plan, with_quantization\n"
        "w = Workload.from_json(sys.stdin.read())\n"
        "p = with_quantization(Plan.for_workload(w, 'x'), w, 8).with_choice('layer1.0.conv1', out_channels=4, "
        "patterns=[1, 2, 3, 4], expand=1)\n"
        "assert apply_plan(p, w).layer('layer1.0.conv1').kept_per_kernel == 25 - 6\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    _, _, workload = model_case("tiny_resnet")
    done = subprocess.run([sys.executable, "-c", code], input=workload.to_json(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_plan_rewrites_the_workload_once_per_transform(monkeypatch):
    """Checking a plan and applying it share one pass: each selected transform rewrites the workload once."""
    from nn2hw.workload import Workload

    _, _, workload = model_case("tiny_resnet")
    plan = everything(Plan.for_workload(workload, "tiny_resnet"), workload, None)
    selected = {t for c in plan.choices.values() for t in transforms_of(c)}
    calls = []
    rewrite = Workload.with_changes
    monkeypatch.setattr(Workload, "with_changes", lambda self, changes: calls.append(1) or rewrite(self, changes))
    rewritten = apply_plan(plan, workload)
    assert len(calls) == len(selected) > 1 and rewritten != workload
