"""iSpace: bottleneck-driven dimensions, coupling-aware cuts, config validation, decoding."""

from __future__ import annotations

import hashlib
import json

import pytest

from nn2hw.compress import SpaceContext, apply_plan
from nn2hw.errors import ConfigError
from nn2hw.hardware.asic.template import AsicTemplate
from nn2hw.hardware.fpga import FpgaTemplate
from nn2hw.plan import Plan
from nn2hw.space import Dimension, JointSpace, SpaceConfig, build_space
from nn2hw.workload import from_module
from tests.workload.nets import TinyResNet

W = from_module(TinyResNet(), (1, 3, 32, 32), name="tiny")  # the test weights: TinyResNet is seeded
CONVS = [l.name for l in W.compute_layers if l.kind.value == "conv"]


MODEL = TinyResNet()
WEIGHTS = SpaceContext(weights=lambda name: MODEL.get_submodule(name).weight)  # patterns are chosen from weights


def space(bottleneck="C", config=None, template=FpgaTemplate, **kw):
    """The space ``template``'s remedies and space options give W (its options keep a CNN's blocks)."""
    return build_space(W, dict.fromkeys(CONVS, bottleneck), Plan.for_workload(W), remedies=template.remedies,
                       config=config, context=WEIGHTS, space_options=template.space_options, **kw)


def test_compute_bound_layers_get_patterns_and_coupling_aware_cuts():
    s = space("C")
    techniques = {d.technique for d in s.dimensions}
    assert techniques == {"kernel_pattern", "channel_cut"}
    cuts = [d for d in s.dimensions if d.technique == "channel_cut"]
    # only the cuttable groups: each block's inner conv (residual outputs are pinned by the option-A pad)
    assert [d.layers for d in cuts] == [("layer1.0.conv1",), ("layer1.1.conv1",), ("layer2.0.conv1",)]
    assert cuts[0].choices == (None, *({"out_channels": w} for w in (14, 12, 10, 8))) and cuts[0].labels[0] == "16 ch"


def test_weight_and_io_bound_layers_get_quantization_and_expansion():
    assert {d.technique for d in space("W").dimensions} == {"quantize", "channel_cut"}
    assert {d.technique for d in space("I").dimensions} == {"kernel_expand"}


def test_the_template_says_which_techniques_relieve_its_bottlenecks():
    asic = {d.technique for d in space("compute", template=AsicTemplate).dimensions}
    assert asic == {"channel_cut"}  # dense-kernel arrays: patterns would not shorten anything
    dram = {d.technique for d in space("dram", template=AsicTemplate).dimensions}
    assert dram == {"quantize", "channel_cut"}
    assert space("fill-drain", template=AsicTemplate).dimensions == ()
    custom = SpaceConfig.from_dict({"techniques": {"quantize": {"bottlenecks": ["compute"]}}})
    assert "quantize" in {d.technique for d in space("compute", custom, template=AsicTemplate).dimensions}


def test_3x3_layers_offer_three_pattern_densities():
    dim = next(d for d in space("C").dimensions if d.technique == "kernel_pattern")
    assert dim.labels == ("dense", "4 patterns, 6/9 kept", "4 patterns, 5/9 kept", "4 patterns, 4/9 kept")
    assert dim.leanest == 3


def test_decode_builds_a_valid_plan():
    s = space("C")
    leanest = s.decode(s.leanest())
    applied = apply_plan(leanest.plan, W)
    assert applied.macs < W.macs
    assert s.decode([0] * len(s.dimensions)).plan.choices == {}
    with pytest.raises(ConfigError, match="outside"):
        s.decode([99] * len(s.dimensions))


def test_config_restricts_and_extends(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("exclude: ['conv1']\n"
                    "techniques:\n  channel_cut: {keep: [0.5]}\n"
                    "overrides:\n  'layer2.*': {quantize: [8, 4], kernel_pattern: false}\n")
    s = space("C", SpaceConfig.load(path))
    names = [d.name for d in s.dimensions]
    assert "kernel_pattern:conv1" not in names and "kernel_pattern:layer2.0.conv1" not in names
    assert "quantize:layer2.0.conv1" in names
    assert [d.choices for d in s.dimensions if d.name == "channel_cut:layer1.0.conv1"] == [(None, {"out_channels": 8})]


@pytest.mark.parametrize("text, match", [
    ({"techniqes": {}}, "Unknown top-level section 'techniqes'.*Did you mean 'techniques'"),
    ({"techniques": {"quantise": {}}}, "Unknown technique 'quantise'"),
    ({"techniques": {"quantize": {"bits": [0]}}}, "bit widths"),
    ({"techniques": {"channel_cut": {"keep": [1.5]}}}, "kept fractions"),
    ({"techniques": {"channels": {"keep": [0.5]}}}, "nn2hw now names it 'channel_cut'"),
    ({"overrides": {"x": {"kernel_expand": [2]}}}, "odd kernel"),
    ({"include": "conv1"}, "list of non-empty strings"),
])
def test_bad_configs_name_the_field(tmp_path, text, match):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(text))
    with pytest.raises(ConfigError, match=match):
        SpaceConfig.load(path)


def test_malformed_files_are_clear(tmp_path):
    (tmp_path / "bad.yaml").write_text("techniques: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SpaceConfig.load(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="space configuration file .* does not exist"):
        SpaceConfig.load(tmp_path / "missing.json")


def test_hardware_knobs_join_the_space_and_decode():
    knob = Dimension("hw:ports", "hardware", (), (None, {"Wp": 10, "Ip": 10, "Op": 12}), ("auto", "10/10/12"), 0)
    assert knob not in space("I", hardware=[knob]).dimensions  # by default the DSE picks every axis
    s = space("I", SpaceConfig.from_dict({"hardware": ["po*"]}), hardware=[knob])
    assert s.dimensions[-1] is knob
    assert s.decode([0] * (len(s.dimensions) - 1) + [1]).hardware == {"Wp": 10, "Ip": 10, "Op": 12}


def test_space_key_changes_with_the_space():
    assert space("C").key == space("C").key != space("W").key


def test_joint_space_key_is_the_stored_one():
    """Stored studies are keyed by it: the sha256 of the JSON list of [network, space key] pairs."""
    c, w = space("C"), space("W")
    stored = hashlib.sha256(json.dumps([["a", c.key], ["b", w.key]]).encode()).hexdigest()[:16]
    assert JointSpace((("a", c), ("b", w))).key == stored


def test_bottleneck_labels_are_the_templates():
    config = SpaceConfig.from_dict({"techniques": {"kernel_pattern": {"bottlenecks": ["X"]}}})
    with pytest.raises(ConfigError, match=r"names \['X'\].*O \(storing output\)"):
        space("C", config, vocabulary=FpgaTemplate.bottlenecks)
