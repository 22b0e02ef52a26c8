"""Systolic template: the closed form against SCALE-Sim (goldens), hand-checked folds, traffic."""

from __future__ import annotations

import pytest

from nn2hw.hardware import get_template
from nn2hw.hardware.asic import LayerTable
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.workload import Workload
from tests.hardware.asic.nets import GOLDEN, conv, golden, linear, resnet20, workload_from_golden

SYSTOLIC = get_template("systolic")[0]
SCALESIM_FILES = sorted(p.name for p in GOLDEN.glob("scalesim_*.json"))


@pytest.mark.parametrize("name", SCALESIM_FILES)
@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_compute_cycles_equal_scalesim_layer_by_layer(name, flow):
    # Golden: SCALE-Sim 3.0.0 'Total Cycles' + 1 per layer (tests/hardware/asic/golden/<name>, command inside).
    data = golden(name)
    workload = workload_from_golden(data)
    design = SystolicDesign(dataflow=flow, **data["design"])
    cost = SYSTOLIC.cost(workload, design)
    for layer, record in zip(cost.layers, data["layers"]):
        assert layer.name == record["layer"]["name"]
        assert layer.breakdown_cycles["compute_cycles"] == record["dataflows"][flow]["compute_cycles"], layer.name


def test_dram_words_equal_scalesim_when_buffers_hold_the_operands():
    # ResNet-20 on 64 KiB buffers, output stationary: every input and filter word fits its buffer,
    # so nn2hw fetches each once and writes each output once, as SCALE-Sim does (golden) except for
    # the filters of the 64-channel layers: SCALE-Sim double-buffers, using half of each SRAM.
    data = golden("scalesim_resnet20.json")
    cost = SYSTOLIC.cost(workload_from_golden(data), SystolicDesign(dataflow="os", **data["design"]))
    for layer, record in zip(cost.layers, data["layers"]):
        peer = record["dataflows"]["os"]
        assert layer.accesses["dram_ifmap"] == peer["dram_reads_ifmap"], layer.name
        assert layer.accesses["dram_ofmap"] == peer["dram_writes_ofmap"], layer.name
        weights = record["layer"]["in_channels"] * record["layer"]["out_channels"] * record["layer"]["kernel_h"] ** 2
        assert layer.accesses["dram_filter"] == weights
        assert peer["dram_reads_filter"] == weights or weights > 64 * 1024 / 2, layer.name


def test_distinct_input_words_match_scalesim_dram_reads():
    # SCALE-Sim fetches each input word it touches at least once (more when its SRAM is too small);
    # on the strided 1x1 downsamples of ResNet-18 it touches every other pixel, as nn2hw counts.
    data = golden("scalesim_resnet18.json")
    table = LayerTable.from_workload(workload_from_golden(data))
    for i, record in enumerate(data["layers"]):
        reads = record["dataflows"]["os"]["dram_reads_ifmap"]
        assert table.ifmap[i] <= reads, record["layer"]["name"]
        if record["layer"]["name"] in ("layer3.0.downsample.0", "layer4.0.downsample.0"):
            assert table.ifmap[i] == reads


def test_closed_form_by_hand():
    # conv 3x3, 16 -> 32 channels on an 8x8 map, 8x4 array: T = 144, P = 64, K = 32.
    w = Workload("one", (conv("c", 16, 32, 8),))
    per_flow = {"ws": (18 * 8) * (2 * 8 + 4 + 64 - 2),   # ceil(144/8) x ceil(32/4) folds
                "os": (8 * 8) * (8 + 4 + 144 - 2),       # ceil(64/8) x ceil(32/4)
                "is": (18 * 16) * (2 * 8 + 4 + 32 - 2)}  # ceil(144/8) x ceil(64/4)
    for flow, expected in per_flow.items():
        cost = SYSTOLIC.cost(w, SystolicDesign(rows=8, cols=4, dataflow=flow))
        assert cost.compute_cycles == expected


def test_groups_run_one_after_another():
    dense = SYSTOLIC.cost(Workload("d", (conv("c", 8, 8, 8),)), SystolicDesign(rows=4, cols=4))
    grouped = SYSTOLIC.cost(Workload("g", (conv("c", 32, 32, 8, groups=4),)), SystolicDesign(rows=4, cols=4))
    assert grouped.compute_cycles == 4 * dense.compute_cycles


def test_linear_batch_streams_rows():
    one = SYSTOLIC.cost(Workload("l", (linear("fc", 64, 10),)), SystolicDesign(rows=8, cols=8, dataflow="ws"))
    many = SYSTOLIC.cost(Workload("l", (linear("fc", 64, 10, batch=32),)),
                         SystolicDesign(rows=8, cols=8, dataflow="ws"))
    folds = 8 * 2
    assert one.compute_cycles == folds * (16 + 8 + 1 - 2)
    assert many.compute_cycles == folds * (16 + 8 + 32 - 2)


def test_dram_bound_layer_stalls_and_says_so():
    net = resnet20()
    slow = SYSTOLIC.cost(net, SystolicDesign(rows=64, cols=64, dram_bw=0.5))
    fast = SYSTOLIC.cost(net, SystolicDesign(rows=64, cols=64, dram_bw=64))
    assert slow.total_cycles > slow.compute_cycles == fast.compute_cycles
    assert fast.stall_cycles < slow.stall_cycles
    assert any(layer.bottleneck == "dram" for layer in slow.layers)
    for layer in slow.layers:
        b = layer.breakdown_cycles
        assert layer.cycles == pytest.approx(b["compute_cycles"] + b["stall_cycles"])
        assert layer.cycles == pytest.approx(max(b["compute_cycles"], b["dram_cycles"]))


def test_json_keys_and_area():
    cost = SYSTOLIC.cost(resnet20(), SystolicDesign())
    data = cost.to_dict()
    for key in ("total_cycles", "compute_cycles", "energy_mj", "area_mm2", "latency_ms", "layers"):
        assert key in data
    assert data["compute_cycles"] <= data["total_cycles"]
    assert data["layers"][0]["compute_cycles"] > 0 and data["layers"][0]["energy_mj"] > 0
    parts = cost.area_breakdown_mm2
    assert cost.area_mm2 == pytest.approx(parts["pe_array"] + parts["sram"])
    assert sum(cost.energy_breakdown_mj().values()) == pytest.approx(cost.energy_mj)
