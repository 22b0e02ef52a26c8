"""``nn2hw plan minimize``: a plan (file or bundle folder) loses the changes its spec does not need;
the written plan round-trips (it loads, meets the spec, and minimizing it again removes nothing)."""

from __future__ import annotations

import json

import pytest

from nn2hw.api import minimize_plan, zoo_workload
from nn2hw.cli import main
from nn2hw.compress import apply_plan, validate_plan, with_cut, with_quantization
from nn2hw.plan import Plan
from nn2hw.search.target import HardwareTarget

MODEL, DATASET = "resnet20", "fashion-mnist"


@pytest.fixture(scope="module")
def plan_and_spec() -> tuple[Plan, float]:
    """A plan with four changes and a latency spec 4 us above its cost on the ZCU102: the cut of
    layer1.0.conv1 buys nothing there, the others buy 3.6-5.3 us each, so some go and some stay."""
    workload = zoo_workload(MODEL, DATASET)
    plan = Plan.for_workload(workload, MODEL, DATASET)
    plan = with_cut(with_cut(plan, workload, "layer3.0.conv1", 32), workload, "layer1.0.conv1", 8)
    plan = with_quantization(with_quantization(plan, workload, 6, "layer3.2.conv2"), workload, 8, "layer3.0.conv2")
    cost = HardwareTarget.parse("fpga:zcu102").best(apply_plan(plan, workload))
    return plan, cost.latency_ms + 0.004


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["plan", "minimize", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_writes_a_minimal_plan_that_round_trips(tmp_path, capsys, plan_and_spec):
    plan, spec = plan_and_spec
    given = plan.save(tmp_path / "plan.json")
    code, out, err = run([str(given), "--hardware", "fpga:zcu102", "--latency-ms", f"{spec:.6f}",
                          "--out", str(tmp_path / "min.json"), "--json", str(tmp_path / "min-report.json")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "min-report.json").read_text())
    removed = [(c["technique"], c["layers"]) for c in report["removed"]]
    assert ("channel_cut", ["layer1.0.conv1"]) in removed and report["kept"]
    assert all(c["needed"].startswith("latency") for c in report["kept"])
    assert "removed" in out and "kept" in out and f"removed {len(removed)} of 4 changes" in out
    kept = Plan.load(tmp_path / "min.json")
    workload = zoo_workload(MODEL, DATASET)
    validate_plan(kept, workload)
    assert set(kept.choices) < set(plan.choices) and kept.hardware["template"] == "fpga"
    assert report["latency_ms_after"] <= spec and report["latency_ms_before"] < report["latency_ms_after"]
    again = minimize_plan(kept, latency_ms=spec)  # the written plan is minimal: nothing more goes
    assert not again.removed and len(again.kept) == len(report["kept"])
    assert again.after.latency_ms == pytest.approx(report["latency_ms_after"])


def test_a_bundle_folder_reads_its_plan(tmp_path, plan_and_spec):
    plan, spec = plan_and_spec
    plan.save(tmp_path / "bundle" / "plan.json")
    from_folder = minimize_plan(tmp_path / "bundle", latency_ms=spec)
    from_object = minimize_plan(plan, latency_ms=spec, workload=zoo_workload(MODEL, DATASET))
    assert from_folder.plan == from_object.plan and from_folder.removed == from_object.removed


def test_a_plan_for_another_input_shape_is_refused(tmp_path):
    workload = zoo_workload(MODEL, "cifar10")
    plan = Plan.for_workload(workload, MODEL, DATASET)  # cifar10's 3x32x32 input, named fashion-mnist
    code = main(["plan", "minimize", str(plan.save(tmp_path / "p.json")), "--latency-ms", "1",
                 "--out", str(tmp_path / "m.json")])
    assert code == 2 and not (tmp_path / "m.json").exists()
