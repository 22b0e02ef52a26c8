"""Result bundles: exact rebuild (bit-identical outputs), no pickled modules, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from nn2hw import zoo
from nn2hw.bundle import load_bundle, save_bundle
from nn2hw.compress import apply_plan
from nn2hw.errors import CheckpointError, UnknownNameError
from nn2hw.plan import Plan
from nn2hw.workload import from_module
from tests.compress.cases import MODELS, everything, model_case


def _finetuned_resnet20():
    """A zoo ResNet-20 with every transform applied and one SGD step taken (so weights differ from init)."""
    torch.manual_seed(0)
    base = zoo.build("resnet20", "cifar10").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    workload = from_module(base, x[:1], name="resnet20")
    # no input shape in the plan: the bundle reads the zoo's
    plan = everything(Plan("resnet20", "cifar10", hardware={"template": "fpga", "Tm": 64}), workload, base)
    model = apply_plan(plan, base, x[:1]).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model(x).square().mean().backward()
    opt.step()
    return model.eval(), plan, x


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, plan, x = _finetuned_resnet20()
    folder = save_bundle(tmp_path_factory.mktemp("bundle") / "resnet20-best", model, plan)
    return folder, model, plan, x


def test_bundle_rebuilds_the_model_exactly(saved):
    folder, model, plan, x = saved
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.json", "hardware.json", "plan.json", "weights.pt"]
    loaded, loaded_plan, hardware = load_bundle(folder)
    assert loaded_plan == plan and hardware == {"template": "fpga", "Tm": 64}
    assert torch.equal(loaded(x), model(x))
    record = json.loads((folder / "bundle.json").read_text())
    assert record["base_model"] == "resnet20" and record["dataset"] == "cifar10"
    assert record["torch_version"] == torch.__version__ and len(record["weights_sha256"]) == 64


def test_weights_are_tensors_only(saved):
    folder = saved[0]
    state = torch.load(folder / "weights.pt", weights_only=True)  # refuses anything but tensors and containers
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert any(k.endswith("parametrizations.weight.0.mask") for k in state)


def test_custom_builder_and_explicit_hardware(tmp_path):
    factory, _shape = MODELS["concat_net"]
    model, x, workload = model_case("concat_net")
    plan = everything(Plan.for_workload(workload, "concat_net"), workload, model)
    new = apply_plan(plan, model)
    folder = save_bundle(tmp_path / "b", new, plan, {"Tm": 4}, builder=lambda name, dataset: factory())
    loaded, _, hardware = load_bundle(folder, builder=lambda name, dataset: factory())
    assert hardware == {"Tm": 4} and torch.equal(loaded(x), new.eval()(x))


def test_missing_files_and_checksum(saved, tmp_path):
    folder = saved[0]
    with pytest.raises(CheckpointError, match="bundle.json, plan.json, weights.pt missing"):
        load_bundle(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / "weights.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "weights.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_bundle(copy)
    (copy / "weights.pt").write_bytes((folder / "weights.pt").read_bytes())
    Plan.load(copy / "plan.json").with_choice("layer1.0.conv1", weight_bits=4).save(copy / "plan.json")
    with pytest.raises(CheckpointError, match="not the plan the weights were saved with"):
        load_bundle(copy)


def test_unknown_base_model_and_mismatched_weights(saved, tmp_path):
    model, plan, _ = saved[1], saved[2], saved[3]
    with pytest.raises(UnknownNameError, match="not in the zoo.*builder="):
        save_bundle(tmp_path / "x", model, Plan("resnet21", "cifar10", plan.choices))
    other = Plan("resnet20", "cifar10").with_choice("layer1.0.conv1", out_channels=8)
    with pytest.raises(CheckpointError, match=r"missing keys .*unexpected keys .*shape mismatches layer1\.1\.bn1"):
        save_bundle(tmp_path / "y", model, other)
    assert not (tmp_path / "y").exists()  # nothing written for a bundle that could not be reloaded
    # weights replaced behind the bundle's back (checksum updated too): named keys
    folder = save_bundle(tmp_path / "z", model, plan)
    torch.save(zoo.build("resnet20", "cifar10").state_dict(), folder / "weights.pt")
    record = json.loads((folder / "bundle.json").read_text())
    from nn2hw.bundle import _sha256

    record["weights_sha256"] = _sha256(folder / "weights.pt")
    (folder / "bundle.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"missing keys \[.*parametrizations"):
        load_bundle(folder)


def test_nested_hardware_of_a_plan_is_saved(tmp_path):
    """A plan freezes nested hardware mappings (read-only views): the bundle still writes plain JSON."""
    factory, _ = MODELS["concat_net"]
    model, _x, workload = model_case("concat_net")
    hardware = {"template": "fpga", "design": {"Tm": 64, "dw": None}, "resources": [{"name": "DSP", "used": 9}]}
    plan = Plan.for_workload(workload, "concat_net").with_hardware(hardware)
    folder = save_bundle(tmp_path / "b", apply_plan(plan, model), plan, plan.hardware,
                         builder=lambda name, dataset: factory())
    assert json.loads((folder / "hardware.json").read_text()) == hardware
