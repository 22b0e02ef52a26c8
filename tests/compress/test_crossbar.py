"""The crossbar fine-tuning transforms (``nn2hw.compress.crossbar``): variation-aware training
injects fresh weight noise in training mode only and leaves the workload alone; polarization
projects every column fragment to one sign and keeps it through fine-tuning; bad plan values are
PlanErrors naming the fix."""

from __future__ import annotations

import pytest
import torch

from nn2hw.compress import TRANSFORMS, apply_plan, validate_plan, with_noise_training, with_polarization
from nn2hw.compress.crossbar import NoiseChoice
from nn2hw.errors import PlanError
from nn2hw.hardware.polarity import fragment_signs, mixed_fragments
from nn2hw.plan import Plan
from nn2hw.testing.transforms import ContractNet
from nn2hw.workload import from_module

X = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def case():
    torch.manual_seed(0)
    model = ContractNet().eval()
    return model, from_module(model, X[:1], name="contract")


def _layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


def test_both_are_registered_training_recipes_without_a_search_dimension(case):
    _, workload = case
    for name in ("noise_train", "polarize"):
        transform = TRANSFORMS.get(name)
        assert transform.offer(workload, workload.compute_layers[0], (0.1,), None) is None
    plan = with_polarization(with_noise_training(Plan.for_workload(workload, "contract"), workload, 0.1), workload, 8)
    validate_plan(plan, workload)
    assert apply_plan(plan, workload) == workload  # shapes, bits and MACs unchanged


def test_noise_training_draws_fresh_noise_in_training_only(case):
    model, workload = case
    noisy = apply_plan(with_noise_training(Plan.for_workload(workload, "contract"), workload, 0.1), model)
    assert torch.equal(noisy.eval()(X), model(X))
    noisy.train()
    first, second = noisy.head.weight.detach().clone(), noisy.head.weight.detach().clone()
    assert not torch.equal(first, second)
    spread = float((first - model.head.weight.detach()).std() / model.head.weight.detach().abs().max())
    assert spread == pytest.approx(0.1, rel=0.3)
    loss = noisy(X).sum()
    loss.backward()
    assert noisy.head.parametrizations.weight.original.grad is not None


def test_clipping_bounds_each_layer_by_its_std_in_training_and_in_the_network_deployed(case):
    model, workload = case
    plan = with_noise_training(Plan.for_workload(workload, "contract"), workload, 0.1, clip=1.5)
    assert {c.get("train_clip") for c in plan.choices.values()} == {1.5}
    clipped = apply_plan(plan, model).eval()
    bounds = {}
    for name, module in _layers(clipped).items():
        raw = module.parametrizations.weight.original.detach()
        bounds[name] = bound = float(raw.std()) * 1.5
        weight = module.weight.detach()
        assert torch.equal(weight, raw.clamp(-bound, bound))  # eval: clipped, no noise
        assert (raw.abs() > bound).any() and float(weight.abs().max()) == pytest.approx(bound)
    from nn2hw.evaluate.variation import baked
    deployed = baked(clipped)
    assert torch.equal(deployed.head.weight, clipped.head.weight)  # what a crossbar is programmed with
    clipped.train()
    head = clipped.head.parametrizations.weight.original.detach().clamp(-bounds["head"], bounds["head"])
    spread = float((clipped.head.weight.detach() - head).std())
    assert spread / bounds["head"] == pytest.approx(0.1, rel=0.3)  # the noise scales with the clipped max|w|
    described = TRANSFORMS.get("noise_train").describe(NoiseChoice(train_sigma=0.1, train_clip=1.5), None, None)
    assert described == "trained with weight noise 0.1, clipped at 1.5 std"


def test_clipping_alone_keeps_a_layer_of_equal_weights(case):
    model, workload = case
    with torch.no_grad():
        model.head.weight.fill_(0.3)
    plan = Plan.for_workload(workload, "contract").with_choice("head", train_clip=2.0)
    validate_plan(plan, workload)
    clipped = apply_plan(plan, model).train()
    assert torch.equal(clipped.head.weight, model.head.weight)  # std 0: nothing to clip, and no noise asked


def test_polarization_projects_and_stays_polarized_through_fine_tuning(case):
    model, workload = case
    polarized = apply_plan(with_polarization(Plan.for_workload(workload, "contract"), workload, 8), model)
    before = {n: m.weight.detach().numpy() for n, m in _layers(model).items()}
    for name, module in _layers(polarized).items():
        weight = module.weight.detach().numpy()
        assert mixed_fragments(weight, 8) == 0 and mixed_fragments(before[name], 8) > 0
        kept = (weight != 0)
        assert (weight[kept] == before[name][kept]).all()  # the projection only zeroes weights
        assert (fragment_signs(before[name], 8) * before[name] >= 0)[kept].all()
    optimizer = torch.optim.SGD(polarized.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(polarized.train()(X), torch.tensor([0, 1, 2, 3])).backward()
        optimizer.step()
    assert all(mixed_fragments(m.weight.detach().numpy(), 8) == 0 for m in _layers(polarized).values())


@pytest.mark.parametrize(("field", "value", "words"), [
    ("train_sigma", 0.0, "train_sigma=0.0"), ("train_sigma", 2, "train_sigma=2"),
    ("polarize_rows", 0, "polarize_rows=0"), ("train_clip", 0, "train_clip=0"), ("train_clip", 25.0, "train_clip=25.0"),
    ("train_clip", True, "train_clip=True"),
])
def test_bad_values_are_plan_errors(case, field, value, words):
    _, workload = case
    plan = Plan.for_workload(workload, "contract").with_choice("head", **{field: value})
    with pytest.raises(PlanError, match=words):
        validate_plan(plan, workload)
