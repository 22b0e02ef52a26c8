"""Bundles of a parametric zoo model (``base_options``): a searched FBNet architecture at width 0.25 with
8-bit blocks rebuilds exactly without a user builder, through ``load_bundle``, a family and ``nn2hw export``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from nn2hw import zoo
from nn2hw.bundle import BundleFamily, FamilyVariant, load_bundle, load_family, save_bundle, save_family
from nn2hw.cli import main
from nn2hw.compress import apply_plan
from nn2hw.errors import CheckpointError, PlanError
from nn2hw.plan import Plan
from nn2hw.zoo.archs.supernet import FBNetSupernet

ARCH = (3, 0, 8, 1, 2, 5, 4, 6, 7, 8, 3, 0, 1, 2, 3, 8, 4, 5, 6, 7, 0, 3)
WIDTH = 0.25
EIGHT = 1  # index of 8 in the supernet's bits (32, 8, 4)
OPTIONS = {"arch": ARCH, "width_mult": WIDTH}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """(bundle folder, saved model, plan, input): the derived network of ``ARCH``, every block at 8 bits."""
    torch.manual_seed(0)
    supernet = FBNetSupernet("fashion-mnist", bits=(32, 8, 4), width_mult=WIDTH)
    indices = [*ARCH, *[EIGHT] * len(ARCH)]
    derived = supernet.derive(indices)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        derived.train()(x)  # batch-norm statistics that are not the defaults
    plan = supernet.bit_plan(indices, base_model="fbnet")
    model = apply_plan(plan, derived.eval()).eval()
    folder = save_bundle(tmp_path_factory.mktemp("fbnet") / "best", model, plan, base_options=OPTIONS)
    return folder, model, plan, x


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def _edit_record(folder, **changes):
    record = json.loads((folder / "bundle.json").read_text())
    record.update(changes)
    (folder / "bundle.json").write_text(json.dumps(record))


def test_the_plan_quantizes_every_searched_conv_to_8_bits(searched):
    _, _, plan, _ = searched
    bits = {choice.get("weight_bits") for choice in plan.choices.values()} - {None}
    assert bits == {8} and len(plan.choices) > 40


def test_load_bundle_rebuilds_the_searched_network_exactly(searched):
    folder, model, plan, x = searched
    record = json.loads((folder / "bundle.json").read_text())
    assert record["base_model"] == "fbnet" and record["base_options"] == {"arch": list(ARCH), "width_mult": WIDTH}
    loaded, loaded_plan, _ = load_bundle(folder)
    assert loaded_plan == plan
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_family_variant_loads_through_the_same_path(searched, tmp_path):
    folder, model, plan, x = searched
    variant = FamilyVariant(level_ms=1.0, latency_ms=0.5, metrics={"top1": 90.0}, bundle=folder.name,
                            plan_key=plan.key, changed_layers=len(plan.choices))
    save_family(BundleFamily(folder.parent, "top1", (variant,)))
    family = load_family(folder.parent)
    loaded, _, _ = family.load(family.select(1.0))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_nn2hw_export_writes_the_int8_network(searched, tmp_path, capsys):
    folder, _, _, _ = searched
    out = tmp_path / "fbnet.onnx"
    assert main(["export", str(folder), "--onnx", str(out), "--json", str(tmp_path / "e.json")]) == 0
    summary = json.loads((tmp_path / "e.json").read_text())
    assert summary["checked"] and summary["max_abs_error"] <= summary["tolerance"]
    assert summary["input_shape"] == [1, 1, 28, 28] and summary["int8_layers"]


def test_a_bundle_without_options_records_none(tmp_path):
    model = zoo.build("nb201", "fashion-mnist", channels=4, cells=1)  # entry default channels 16: a mismatch
    plan = Plan("nb201", "fashion-mnist")
    with pytest.raises(CheckpointError, match="structure plan .* gives 'nb201': .*shape mismatches"):
        save_bundle(tmp_path / "a", model, plan)
    default = zoo.build("nb201", "fashion-mnist").eval()
    folder = save_bundle(tmp_path / "b", default, plan, base_options={})
    assert "base_options" not in json.loads((folder / "bundle.json").read_text())
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(load_bundle(folder)[0](x), default(x))


def test_numpy_options_are_recorded_as_json(searched, tmp_path):
    _, model, plan, _ = searched
    options = {"arch": list(np.array(ARCH)), "width_mult": np.float64(WIDTH)}  # NumPy scalars, e.g. from argmax
    folder = save_bundle(tmp_path / "np", model, plan, base_options=options)
    assert json.loads((folder / "bundle.json").read_text())["base_options"] == {"arch": list(ARCH),
                                                                                "width_mult": WIDTH}


@pytest.mark.parametrize("options, message", [
    ({"arch": ARCH, "width_mult": 0.5}, "gives 'fbnet' \\(arch=.*width_mult=0.5\\): .*shape mismatches"),
    ({"arch": ARCH[:21], "width_mult": WIDTH}, "cannot be built: An FBNet architecture has 22 blocks"),
    ({"arch": ARCH, "width_mult": float("nan")}, "not JSON-serializable"),
    ({"arch": ARCH, "width_mult": object()}, "not JSON-serializable"),
    ({"arch": np.array(ARCH), "width_mult": WIDTH}, "not JSON-serializable.*list of ints"),
    ([("arch", ARCH)], "must be a mapping of option names"),
])
def test_wrong_or_unrecordable_options_are_refused_before_writing(searched, tmp_path, options, message):
    _, model, plan, _ = searched
    with pytest.raises(CheckpointError, match=message) as caught:
        save_bundle(tmp_path / "bad", model, plan, base_options=options)
    assert caught.value.fix and not (tmp_path / "bad").exists()


def test_forgotten_options_are_named_in_the_plan_error(searched, tmp_path):
    _, model, plan, _ = searched  # the entry's default architecture lacks the searched one's layers
    with pytest.raises(PlanError, match="does not apply to 'fbnet': 'fbnet' has no layer") as caught:
        save_bundle(tmp_path / "bad", model, plan)
    assert "base_options" in caught.value.fix and not (tmp_path / "bad").exists()


def test_options_with_a_builder_are_refused(searched, tmp_path):
    _, model, plan, _ = searched
    with pytest.raises(CheckpointError, match="zoo build options, but a builder builds"):
        save_bundle(tmp_path / "b", model, plan, base_options=OPTIONS,
                    builder=lambda name, dataset: zoo.build(name, dataset, **OPTIONS))


@pytest.mark.parametrize("recorded, message", [
    ({"arch": list(ARCH), "width_mult": 0.5}, "does not fit plan .* on 'fbnet' \\(arch=.*width_mult=0.5\\)"),
    ({"arch": list(ARCH)[:21], "width_mult": WIDTH}, "cannot be built: An FBNet architecture has 22 blocks"),
    ([1, 2], "bundle.json: The base model's options must be a mapping"),
])
def test_edited_options_in_bundle_json_are_named(searched, tmp_path, recorded, message):
    folder = _copy(searched[0], tmp_path)
    _edit_record(folder, base_options=recorded)
    with pytest.raises(CheckpointError, match=message):
        load_bundle(folder)


def test_a_bundle_without_its_options_no_longer_fits(searched, tmp_path):
    folder = _copy(searched[0], tmp_path)
    record = json.loads((folder / "bundle.json").read_text())
    del record["base_options"]
    (folder / "bundle.json").write_text(json.dumps(record))
    with pytest.raises(PlanError, match="does not apply to 'fbnet': 'fbnet' has no layer") as caught:
        load_bundle(folder)
    assert "base_options" in caught.value.fix
