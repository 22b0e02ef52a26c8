"""The CANAO-style joint space on a measured CPU (issue 10, part 4): for a Transformer, the ``cpu`` and
``predictor`` templates offer per encoder layer the heads (``head_prune``), the FFN width (``channel_cut``
of the intermediate dense layer), the layer itself (``layer_drop``) and int8 (``quantize`` w8a8), and
never block-structured pruning (its zeros stay dense: 1.00x measured); a CNN's space is what it was.
Seconds: tiny networks and the packaged ResNet-20 workload, no timing."""

from __future__ import annotations

from collections import Counter

import pytest

from nn2hw.compress import SpaceContext
from nn2hw.compress.layer_drop import block_of
from nn2hw.compress.quantize import ActivationRange
from nn2hw.hardware import get_template
from nn2hw.hardware.predicted import bottleneck_of
from nn2hw.plan import Plan
from nn2hw.space import SpaceConfig, build_space
from nn2hw.testing import nets
from nn2hw.workload import from_module

TEMPLATES = ("cpu", "predictor")


def _space(workload, template_name, config=None):
    """The template's space with each dense layer labelled as its kernel would be ('compute')."""
    template = get_template("cpu")[0] if template_name == "cpu" else _predictor_template()
    labels = {layer.name: bottleneck_of([layer]) for layer in workload.compute_layers}
    return build_space(workload, labels, Plan.for_workload(workload, workload.name), remedies=template.remedies,
                       vocabulary=template.bottlenecks, space_options=template.space_options, config=config,
                       context=SpaceContext(activation_range=lambda _: ActivationRange(4.0, 4.0)))


def _predictor_template():
    from nn2hw.hardware.base import TEMPLATES

    return TEMPLATES.get("predictor")


@pytest.fixture(scope="module")
def tiny_bert():
    model, inputs = nets.bert(layers=3, heads=4, intermediate=64)
    return from_module(model, inputs, name="tiny-bert")


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_transformer_gets_heads_ffn_width_layers_and_int8_but_no_block_pruning(tiny_bert, template):
    space = _space(tiny_bert, template)
    by_technique = Counter(d.technique for d in space.dimensions)
    assert by_technique["head_prune"] == 3 and by_technique["layer_drop"] == 2  # a block per layer; layer 0 kept
    assert "block_prune" not in by_technique and "kernel_pattern" not in by_technique
    ffn = [d for d in space.dimensions if d.technique == "channel_cut"]
    assert {d.layers for d in ffn} == {(f"encoder.layer.{i}.intermediate.dense",) for i in range(3)}
    assert all(d.labels[0] == "64 ch" and "32 ch" in d.labels for d in ffn)
    heads = next(d for d in space.dimensions if d.technique == "head_prune")
    assert heads.labels == ("4 heads", "3 heads", "2 heads", "1 heads")
    int8 = [d for d in space.dimensions if d.technique == "quantize"]
    assert int8 and all(d.labels[1:] == ("w8a8",) for d in int8)
    dropped = {block_of(d.layers[0]) for d in space.dimensions if d.technique == "layer_drop"}
    assert dropped == {"encoder.layer.1", "encoder.layer.2"}


def test_the_leanest_transformer_is_much_cheaper_and_keeps_a_layer(tiny_bert):
    from nn2hw.compress import apply_plan, validate_plan

    space = _space(tiny_bert, "cpu")
    leanest = space.decode([d.leanest for d in space.dimensions]).plan
    validate_plan(leanest, tiny_bert)
    lean = apply_plan(leanest, tiny_bert)
    assert lean.macs < 0.2 * tiny_bert.macs
    assert any(layer.name.startswith("encoder.layer.0.") for layer in lean.layers)


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_cnn_space_is_unchanged_and_a_space_file_still_drops_its_blocks(template):
    from nn2hw.api import zoo_workload

    workload = zoo_workload("resnet20", "fashion-mnist")
    assert Counter(d.technique for d in _space(workload, template).dimensions) == {"quantize": 20, "channel_cut": 9}
    config = SpaceConfig.from_dict({"techniques": {"layer_drop": {"drop": [True]}}})
    offered = {block_of(d.layers[0]) for d in _space(workload, template, config).dimensions
               if d.technique == "layer_drop"}
    assert offered == {"layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"}


def test_attention_only_layer_drops_on_a_cnn_are_an_error_naming_the_value():
    from nn2hw.api import zoo_workload
    from nn2hw.errors import ConfigError

    config = SpaceConfig.from_dict({"techniques": {"layer_drop": {"drop": ["attention"]}}})
    with pytest.raises(ConfigError, match="'attention'"):
        _space(zoo_workload("resnet20", "fashion-mnist"), "cpu", config)
    with pytest.raises(ConfigError, match="techniques.layer_drop.drop"):
        SpaceConfig.from_dict({"techniques": {"layer_drop": {"drop": ["all"]}}})


def test_a_finalist_whose_export_fails_its_check_is_refused_not_fatal():
    """A partly int8 MiniLM whose ONNX Runtime output strays from torch's fixed-point model fails the
    export check; in finalize's re-check that refuses the finalist (a minimal plan then falls back to
    the trial as searched) instead of ending the search."""
    from types import SimpleNamespace

    from nn2hw.errors import ModelError
    from nn2hw.search.finalize import Checked, _measured

    def timed(plans, repeats_factor=1, against_base=False):
        raise ModelError("The exported network0.onnx disagrees with the torch model.", "Export with int8=False.")

    refused = _measured(SimpleNamespace(timed=timed), 7, Checked({}, None))  # type: ignore[arg-type]
    assert isinstance(refused, str) and refused.startswith("trial 7:") and "export check" in refused
