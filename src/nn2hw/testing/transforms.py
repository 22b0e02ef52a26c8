"""The compression-transform conformance suite: what every transform must keep, as pytest tests.

Subclass ``TransformContract`` and give the ``transform`` fixture (optionally ``case``: a model
and an example input on which the transform has something to offer)::

    class TestMyTransform(TransformContract):
        @pytest.fixture
        def transform(self):
            return MyTransform()

The suite checks that the transform declares its fields and options, that choice 0 of every
dimension it offers is the identity, and that rewriting the model (torch) and rewriting its
workload (no torch) agree on every layer's shapes, bits and MACs.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from nn2hw.compress import SpaceContext, Transform, apply_plan, validate_plan
from nn2hw.plan import Plan
from nn2hw.space import build_space
from nn2hw.workload import Workload, from_module


class ContractNet(nn.Module):
    """A stem, a residual block, a depthwise-separable block, a 5x5 conv and a classifier: a bit of
    every structure the built-in transforms treat (coupled channels, depthwise followers, kernels
    of two sizes, linear layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.separable = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                       nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                       nn.ReLU(), nn.Conv2d(16, 12, 1, bias=False), nn.BatchNorm2d(12))
        self.wide = nn.Conv2d(12, 12, 5, padding=2)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        x = torch.relu(self.wide(self.separable(x)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def signature(workload: Workload) -> list[tuple]:
    """What a transform may change, per layer (op names aside: parametrized modules rename them)."""
    return [(l.name, l.kind, tuple(l.inputs), l.in_channels, l.out_channels, l.in_h, l.in_w, l.out_h, l.out_w,
             l.kernel_h, l.kernel_w, l.stride_h, l.pad_h, l.pad_w, l.groups, l.kept_per_kernel, l.weight_bits,
             l.input_bits, l.output_bits, l.macs) for l in workload.layers]


def _every_bottleneck(workload: Workload, transform: Transform) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Bottlenecks and remedies that offer ``transform`` on every compute layer."""
    return {layer.name: "any" for layer in workload.compute_layers}, {"any": (transform.name,)}


class TransformContract:
    """Fields and options declared, choice 0 is the identity, torch and workload sides agree."""

    @pytest.fixture
    def case(self) -> tuple[nn.Module, torch.Tensor]:
        """A model in eval mode and an example input: ``ContractNet`` on a 1x3x12x12 image by default."""
        torch.manual_seed(0)
        return ContractNet().eval(), torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))

    def _space(self, transform: Transform, model: nn.Module, x: torch.Tensor):
        workload = from_module(model, x, name="contract")
        bottlenecks, remedies = _every_bottleneck(workload, transform)
        weights = SpaceContext(weights=lambda name: model.get_submodule(name).weight)
        return workload, build_space(workload, bottlenecks, Plan.for_workload(workload, "contract"),
                                     remedies=remedies, context=weights)

    def test_declares_itself(self, transform: Transform) -> None:
        assert transform.name and transform.label and isinstance(transform.order, int)
        assert transform.fields() and all(f.default is None for f in dataclasses.fields(transform.choice_type))
        transform.choice_type()  # every field unset is a valid (empty) choice
        assert transform.option_name and transform.option_help
        assert all(transform.check_option(v) for v in transform.default_options)

    def test_choice_zero_is_the_identity(self, transform: Transform, case) -> None:
        model, x = case
        workload, space = self._space(transform, model, x)
        if not space.dimensions:
            pytest.skip(f"{transform.name} offers nothing on this model; give a case fixture where it does")
        assert all(d.choices[0] is None and d.technique == transform.name for d in space.dimensions)
        plan = space.decode([0] * len(space.dimensions)).plan
        assert plan.choices == {} and apply_plan(plan, workload) == workload

    def test_model_and_workload_rewrites_agree(self, transform: Transform, case) -> None:
        model, x = case
        workload, space = self._space(transform, model, x)
        if not space.dimensions:
            pytest.skip(f"{transform.name} offers nothing on this model; give a case fixture where it does")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        plan = space.decode([len(d.choices) - 1 for d in space.dimensions]).plan  # the last choice of each
        assert plan.choices, "a choice other than 0 must change something"
        validate_plan(plan, workload)
        new = apply_plan(plan, model, x)
        rewritten = apply_plan(plan, workload)
        assert signature(from_module(new, x, name="contract")) == signature(rewritten)
        assert rewritten != workload
        assert new(x).shape == model(x).shape
        after = model.state_dict()
        assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
