"""The Transformer remedies (``head_prune``, ``layer_drop``) on the FPGA, ASIC, chunk and cim templates (issue 10):
a ViT's space there has a heads dimension per encoder layer and a keep/drop one per layer but the first;
a ResNet-20's space is exactly what it was without them; a plan made of those dimensions applies to the
model and to the workload alike, lowers the template's latency and is named in the per-layer report.
Seconds: the packaged workloads and the 0.14 M-parameter ViT."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from nn2hw.api import zoo_workload
from nn2hw.compress import SpaceContext, apply_plan
from nn2hw.compress.layer_drop import block_of
from nn2hw.compress.quantize import ActivationRange
from nn2hw.hardware import get_template
from nn2hw.hardware.base import TRANSFORMER_REMEDIES, TRANSFORMER_SPACE_OPTIONS, HardwareTemplate
from nn2hw.plan import Plan
from nn2hw.report.layers import REMOVED, layer_rows
from nn2hw.space import build_space
from nn2hw.testing.transforms import signature
from nn2hw.workload import Workload, from_module

VIT = ("vit_fmnist", "fashion-mnist")
TARGETS = (("fpga:zcu102", {"linear": "engine"}), ("eyeriss", {}), ("systolic", {}), ("chunk", {}))
"""The FPGA template costs linear layers and matmuls only with ``linear=engine`` (else they run on the
host, uncosted, and no Transformer remedy is offered there: nothing it changes is costed)."""
CONTEXT = SpaceContext(activation_range=lambda _: ActivationRange(4.0, 4.0))


def _target(hardware: str, options: dict) -> tuple[HardwareTemplate, str | None, dict]:
    template, device = get_template(hardware)
    return template, device, template.parse_options(options)


def _best(workload: Workload, hardware: str, options: dict):
    template, device, parsed = _target(hardware, options)
    return template.explore(workload, device, **parsed).best


def _space(workload: Workload, hardware: str, options: dict, *, transformer: bool = True):
    """The search's space on the template: each layer's bottleneck on the base's best design, the
    template's remedies and options (without the Transformer remedies: the space before they were added)."""
    template, _, _ = _target(hardware, options)
    cost = _best(workload, hardware, options)
    labels = {layer.name: layer.bottleneck for layer in cost.layers}
    remedies = {label: tuple(t for t in names if transformer or t not in TRANSFORMER_REMEDIES)
                for label, names in template.remedies.items()}
    space_options = {k: v for k, v in template.space_options.items()
                     if transformer or k not in TRANSFORMER_SPACE_OPTIONS}
    return build_space(workload, labels, Plan.for_workload(workload, workload.name), remedies=remedies,
                       vocabulary=template.bottlenecks, space_options=space_options, context=CONTEXT)


def _unnamed(workload: Workload) -> list[tuple]:
    """``signature`` without names and inputs: a dropped block renumbers the functional ops after it."""
    return [row[1:2] + row[3:] for row in signature(workload)]


@pytest.fixture(scope="module")
def vit() -> tuple[torch.nn.Module, Workload]:
    from nn2hw import zoo

    return zoo.build(*VIT, pretrained=True).eval(), zoo_workload(*VIT)


@pytest.mark.parametrize(("hardware", "options"), TARGETS)
def test_a_vit_gets_heads_and_layer_drops_on_fpga_and_asic(vit, hardware, options):
    _, workload = vit
    space = _space(workload, hardware, options)
    by_technique = Counter(d.technique for d in space.dimensions)
    assert by_technique["head_prune"] == 4 and by_technique["layer_drop"] == 3  # encoder.layer.0 is never dropped
    heads = [d for d in space.dimensions if d.technique == "head_prune"]
    assert all(d.labels == ("4 heads", "3 heads", "2 heads", "1 heads") for d in heads)
    dropped = {block_of(d.layers[0]) for d in space.dimensions if d.technique == "layer_drop"}
    assert dropped == {"encoder.layer.1", "encoder.layer.2", "encoder.layer.3"}
    before = _space(workload, hardware, options, transformer=False)
    assert [d for d in space.dimensions if d.technique not in TRANSFORMER_REMEDIES] == list(before.dimensions)


def test_on_the_fpga_without_linear_engine_nothing_transformer_is_offered(vit):
    """Linear layers and matmuls run on the host there (uncosted), so no remedy of theirs is offered."""
    _, workload = vit
    techniques = {d.technique for d in _space(workload, "fpga:zcu102", {}).dimensions}
    assert not techniques & set(TRANSFORMER_REMEDIES)


@pytest.mark.parametrize(("hardware", "options", "counts"), [
    ("fpga:zcu102", {}, {"channel_cut": 9, "quantize": 7}),
    ("fpga:zcu102", {"linear": "engine"}, {"channel_cut": 9, "quantize": 8}),
    ("eyeriss", {}, {"channel_cut": 9, "quantize": 1}),
    ("systolic", {}, {"quantize": 12, "channel_cut": 6}),
    ("chunk", {}, {"quantize": 13, "channel_cut": 6}),
    ("cim", {}, {"quantize": 20}),
])
def test_a_resnet20_space_is_exactly_what_it_was(hardware, options, counts):
    """Counts recorded before the Transformer remedies were added to these templates."""
    workload = zoo_workload("resnet20", "fashion-mnist")
    space = _space(workload, hardware, options)
    assert space.dimensions == _space(workload, hardware, options, transformer=False).dimensions
    assert Counter(d.technique for d in space.dimensions) == counts


@pytest.mark.parametrize(("hardware", "options"), TARGETS)
def test_a_plan_of_those_dimensions_builds_on_both_sides_and_costs_less(vit, hardware, options):
    model, workload = vit
    space = _space(workload, hardware, options)
    vector = [0] * len(space.dimensions)
    for i, d in enumerate(space.dimensions):
        if (d.technique, d.layers[0]) in (("head_prune", "encoder.layer.0.attention.self.query"),
                                          ("layer_drop", "encoder.layer.3.attention.self.query")):
            vector[i] = d.leanest  # 1 head of 4 in layer 0; layer 3 dropped
    plan = space.decode(vector).plan
    after = apply_plan(plan, workload)
    new = apply_plan(plan, model)
    image = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert _unnamed(from_module(new, image, name=workload.name)) == _unnamed(after)
    with torch.no_grad():
        assert new(image).shape == model(image).shape

    template, device, parsed = _target(hardware, options)
    base = _best(workload, hardware, options)
    same_design = template.cost(after, base.design, device, **parsed)
    assert same_design.latency_ms < base.latency_ms and _best(after, hardware, options).latency_ms < base.latency_ms
    attention = ("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.matmul",
                 "encoder.layer.0.attention.self.matmul_1", "encoder.layer.0.attention.output.dense")
    was = {c.name: c for c in base.layers if c.name in attention}  # the chunk template leaves matmuls to the host
    now = {c.name: c for c in same_design.layers if c.name in attention}
    assert "encoder.layer.0.attention.self.query" in was and now.keys() == was.keys()
    assert all(now[n].macs * 4 == was[n].macs and now[n].cycles <= was[n].cycles for n in was)  # 1 head of 4
    assert sum(c.cycles for c in now.values()) < sum(c.cycles for c in was.values())  # (a tile may stay as long)

    rows = {r.layer: r for r in layer_rows(base, same_design, {}, plan, workload, after)}
    query = rows["encoder.layer.0.attention.self.query"]
    assert query.technique == "head removal" and query.choice == "1 heads (64->16 ch)"
    assert query.solution_ms <= query.base_ms
    dense = rows["encoder.layer.3.intermediate.dense"]
    assert (dense.technique, dense.choice, dense.solution_ms) == ("layer drop", "block encoder.layer.3 dropped", 0.0)
    gone = [r for name, r in rows.items() if block_of(name) == "encoder.layer.3"]
    assert gone and all(r.technique in ("layer drop", REMOVED) and r.solution_ms == 0.0 for r in gone)


def test_the_transformer_remedies_have_one_owner():
    """Every template that offers channel cuts offers the Transformer remedies for the same labels,
    with the options that keep a CNN's blocks (the cpu's and predictor's included)."""
    for name in ("fpga", "eyeriss", "systolic", "nvdla", "shidiannao", "chunk", "cpu", "predictor", "hetero"):
        template, _ = get_template(name)
        for label, names in template.remedies.items():
            assert ("channel_cut" in names) == (set(TRANSFORMER_REMEDIES) <= set(names)), (name, label)
        assert template.space_options["layer_drop"] == TRANSFORMER_SPACE_OPTIONS["layer_drop"], name


def test_on_cim_a_crossbar_bound_vit_gets_layer_drops_not_heads(vit):
    """Every costed layer of the ViT is crossbar-bound on cim's best design: its time is its 50 token rows
    times the input cycles, whatever its width, so fewer heads would not shorten it; a dropped encoder
    layer takes its six linear layers' crossbar time with it (layers run one after another)."""
    _, workload = vit
    base = _best(workload, "cim", {})
    assert {c.bottleneck for c in base.layers} == {"crossbar"}
    space = _space(workload, "cim", {})
    assert Counter(d.technique for d in space.dimensions) == {"quantize": 26, "layer_drop": 3}
    vector = [d.leanest if (d.technique, d.layers[0]) == ("layer_drop", "encoder.layer.3.attention.self.query")
              else 0 for d in space.dimensions]
    after = apply_plan(space.decode(vector).plan, workload)
    template, device, parsed = _target("cim", {})
    same_design = template.cost(after, base.design, device, **parsed)
    block = sum(c.latency_ms for c in base.layers if block_of(c.name) == "encoder.layer.3")
    assert block > 0 and same_design.latency_ms == pytest.approx(base.latency_ms - block)
