"""Systolic energy against ZigZag on the equivalent accelerator descriptions (golden values)."""

from __future__ import annotations

import pytest

from nn2hw.hardware import get_template
from nn2hw.hardware.asic import get_technology
from nn2hw.hardware.asic.systolic import SystolicDesign
from tests.hardware.asic.nets import GOLDEN, golden, resnet20, workload_from_golden

SYSTOLIC = get_template("systolic")[0]
ZIGZAG_FILES = sorted(p.name for p in GOLDEN.glob("zigzag_*.json"))


def costs(name: str, flow: str):
    data = golden(name)
    design = SystolicDesign(dataflow=flow, **data["design"])
    ours = SYSTOLIC.cost(workload_from_golden(data), design, data["technology"])
    theirs = [record["dataflows"][flow]["energy_pj"] for record in data["layers"]]
    return ours, theirs


@pytest.mark.parametrize("name", ZIGZAG_FILES)
@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_network_energy_within_20_percent_of_zigzag(name, flow):
    # Golden: ZigZag 3.9.1 per-layer energy, temporal mapping searched for minimum energy
    # (tests/hardware/asic/golden/<name>: command, versions, accelerator and mapping YAML).
    ours, theirs = costs(name, flow)
    total = sum(sum(layer.values()) for layer in theirs) * 1e-9
    assert ours.energy_mj == pytest.approx(total, rel=0.2)


@pytest.mark.parametrize("name", ZIGZAG_FILES)
@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_mac_register_and_dram_energy_agree_layer_by_layer(name, flow):
    # Both models count one MAC per multiply, the stationary operand's register accesses per load
    # (os: every MAC reads and writes the partial sum), and with these buffer sizes each DRAM word
    # once; ZigZag's uneven split of a 1000-filter FC layer over 32 columns moves its counts by <1%.
    ours, theirs = costs(name, flow)
    for layer, peer in zip(ours.layers, theirs):
        mine = {k: v * 1e9 for k, v in layer.energy_breakdown_mj.items()}
        assert mine["mac"] == pytest.approx(peer["mac"], rel=1e-9), layer.name
        assert mine["rf"] == pytest.approx(peer["rf"], rel=0.01), layer.name
        assert mine["dram"] == pytest.approx(peer["dram"], rel=0.02), layer.name


def test_energy_scales_with_the_technology_table():
    net = resnet20()
    a = SYSTOLIC.cost(net, SystolicDesign(), "45nm")
    b = SYSTOLIC.cost(net, SystolicDesign(), "eyeriss-65nm")
    tech = get_technology("eyeriss-65nm")
    assert b.energy_breakdown_mj()["mac"] == pytest.approx(net.macs * tech.mac_pj * 1e-9)
    assert a.energy_breakdown_mj()["dram"] / b.energy_breakdown_mj()["dram"] == pytest.approx(325.0 / 0.3)
    assert a.compute_cycles == b.compute_cycles
