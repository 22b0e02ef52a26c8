"""The Plan record: JSON round trip, stable keys, helpers, precise errors for bad plans."""

from __future__ import annotations

import hashlib
import json

import pytest

from nn2hw import __version__
from nn2hw.compress import apply_plan, transforms_of, validate_plan, with_cut, with_quantization
from nn2hw.errors import PlanError
from nn2hw.plan import LayerChoice, Plan
from tests.compress.cases import model_case


@pytest.fixture(scope="module")
def resnet():
    return model_case("tiny_resnet")


def _plan(workload) -> Plan:
    plan = Plan.for_workload(workload, "tiny_resnet", "cifar10", hardware={"template": "fpga", "Tm": 64, "Tn": 7})
    plan = with_cut(plan, workload, "layer1.0.conv1", 8).with_choice("layer1.0.conv2", patterns=[4, 1, 9, 30])
    return with_quantization(plan, workload, 8, "layer2.*", act_bits=8).with_choice("layer1.1.conv1", expand=1)


def test_json_round_trip_and_file(resnet, tmp_path):
    _, _, workload = resnet
    plan = _plan(workload)
    assert Plan.from_json(plan.to_json()) == plan
    assert Plan.load(plan.save(tmp_path / "sub" / "plan.json")) == plan
    data = json.loads(plan.to_json())
    assert data["layers"]["layer1.0.conv2"] == {"patterns": [4, 1, 9, 30]}
    assert data["metadata"] == {"nn2hw_version": __version__}
    assert data["hardware"] == {"Tm": 64, "Tn": 7, "template": "fpga"}
    assert transforms_of(plan.choices["layer1.1.conv1"]) == ("kernel_expand",)
    assert transforms_of(plan.choices["layer2.0.conv1"]) == ("quantize",)


def test_key_is_stable_and_content_based(resnet):
    _, _, workload = resnet
    plan = _plan(workload)
    reordered = Plan(plan.base_model, plan.dataset, dict(reversed(list(plan.choices.items()))),
                     {"Tn": 7, "Tm": 64, "template": "fpga"}, metadata={"note": "other run"})
    assert reordered.key == plan.key and hash(reordered) == hash(plan) and len(plan.key) == 16
    assert reordered != plan  # metadata and input shape differ, the content does not
    other_hw = plan.with_hardware({"template": "fpga", "Tm": 32})
    assert other_hw.key != plan.key and other_hw.network_key == plan.network_key
    assert plan.with_choice("layer1.0.conv2", patterns=[4, 1, 9, 31]).key != plan.key
    assert {plan, Plan.from_json(plan.to_json())} == {plan}  # hashable and usable in sets
    # the key is the sha256 of the canonical JSON content, the same in every process and version
    canonical = (b'{"base_model":"resnet20","dataset":"cifar10","hardware":null,'
                 b'"layers":{"layer1.0.conv1":{"weight_bits":8}}}')
    assert Plan("resnet20", "cifar10", {"layer1.0.conv1": LayerChoice(weight_bits=8)}).key == \
        hashlib.sha256(canonical).hexdigest()[:16]


def test_plan_is_frozen(resnet):
    plan = _plan(resnet[2])
    with pytest.raises(AttributeError):
        plan.base_model = "x"
    with pytest.raises(TypeError):
        plan.choices["layer1.0.conv2"] = LayerChoice()
    with pytest.raises(TypeError):
        plan.hardware["Tm"] = 1


def test_apply_workload_is_pure_and_apply_model_copies(resnet):
    model, _x, workload = resnet
    plan = _plan(workload)
    new = apply_plan(plan, workload)
    assert new.layer("layer1.0.conv1").out_channels == 8 and workload.layer("layer1.0.conv1").out_channels == 16
    assert new.layer("layer1.0.conv2").in_channels == 8 and new.layer("layer1.0.conv2").kept_per_kernel == 6
    assert new.layer("layer2.0.conv2").weight_bits == 8 and new.layer("layer1.1.conv1").kernel_h == 5
    assert apply_plan(plan, model) is not model
    with pytest.raises(PlanError, match="Workload or a torch nn.Module"):
        apply_plan(plan, "resnet20")


def test_unknown_layers_are_named_with_close_names(resnet):
    _, _, workload = resnet
    plan = Plan("t", choices={"layer1.0.conv3": LayerChoice(weight_bits=8), "bn1": LayerChoice(weight_bits=8)})
    with pytest.raises(PlanError) as err:
        validate_plan(plan, workload)
    text = str(err.value)
    assert "2 problems" in text and "no layer 'layer1.0.conv3'" in text
    assert "Did you mean 'layer1.0.conv2', 'layer1.0.conv1'" in text
    assert "'bn1' is a norm op" in text


def test_several_problems_are_reported_together(resnet):
    _, _, workload = resnet
    plan = Plan("t").with_choice("layer1.0.conv1", out_channels=40).with_choice("layer1.0.conv2", patterns=[99])
    with pytest.raises(PlanError, match=r"\(1\).*above its width.*\(2\).*ids 0..55"):
        validate_plan(plan, workload)


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ('{"base_model": "x"}', "not an nn2hw plan"),
    ('{"format": "nn2hw-plan", "version": 9, "base_model": "x"}', "format version 9"),
    ('{"format": "nn2hw-plan", "version": 1, "base_model": "x", "layrs": {}}', r"unknown fields \['layrs'\]"),
    ('{"format": "nn2hw-plan", "version": 1, "base_model": "x", "layers": {"a": {"weight_bits": {"x": 1}}}}',
     "not a JSON value"),
    ('{"format": "nn2hw-plan", "version": 1, "base_model": ""}', "needs a base model id"),
])
def test_bad_plan_files(text, message):
    with pytest.raises(PlanError, match=message):
        Plan.from_json(text)


@pytest.mark.parametrize("layers, message", [
    ({"a": {"weight_bit": 8}}, "Did you mean 'weight_bits'"),
    ({"a": {"weight_bits": 40}}, r"Layer 'a': weight_bits=40 is not an integer in 1..32"),
    ({"a": {"out_channels": 0}}, "zero channels"),
])
def test_the_transforms_check_their_fields(layers, message):
    """A plan is a record; the transforms that own its fields check them (no workload needed)."""
    plan = Plan.from_dict({"format": "nn2hw-plan", "version": 1, "base_model": "x", "layers": layers})
    with pytest.raises(PlanError, match=message):
        validate_plan(plan)


def test_bad_plan_values(tmp_path):
    with pytest.raises(PlanError, match="No plan file"):
        Plan.load(tmp_path / "missing.json")
    with pytest.raises(PlanError, match="not JSON-serializable"):
        Plan("x", hardware={"f": object()})
    with pytest.raises(PlanError, match="input_shape"):
        Plan("x", input_shape=(1, 0, 3))
    with pytest.raises(PlanError, match="input_dtype"):
        Plan("x", input_dtype="float128")
    with pytest.raises(PlanError, match=r"unknown fields \['bits'\]"):
        validate_plan(Plan("x").with_choice("a", bits=8))
    (tmp_path / "latin1.json").write_bytes(b'{"base_model": "caf\xe9"}')
    with pytest.raises(PlanError, match="not UTF-8"):
        Plan.load(tmp_path / "latin1.json")


def test_empty_choices_are_dropped_and_helpers_select_layers(resnet):
    _, _, workload = resnet
    assert Plan("x", choices={"a": LayerChoice()}) == Plan("x")
    eight = with_quantization(Plan.for_workload(workload, "t"), workload)
    assert sorted(eight.choices) == sorted(l.name for l in workload.compute_layers)
    assert {l.weight_bits for l in apply_plan(eight, workload).compute_layers} == {8}
    with pytest.raises(PlanError, match="No conv/linear layer matches 'stage9.*'"):
        with_quantization(eight, workload, 8, "stage9.*")


def test_model_without_input_shape_needs_an_example(resnet):
    model, x, _ = resnet
    plan = Plan("not-in-the-zoo").with_choice("layer1.0.conv1", weight_bits=8)
    with pytest.raises(PlanError, match="example_input"):
        apply_plan(plan, model)
    assert apply_plan(plan, model, example_input=x)(x).shape == (1, 10)
