"""Peer adapters: input conversion (no peer needed), missing-peer errors, and (slow) live re-runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from nn2hw.errors import ConfigError
from nn2hw.hardware import get_template
from nn2hw.hardware.asic import LayerTable, get_technology
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.peers import _runner, cost_with, installed, scalesim, zigzag
from nn2hw.workload import Workload
from tests.hardware.asic.nets import conv, linear, resnet20


def test_scalesim_topology_folds_padding_and_strides_into_the_input_it_reads():
    table = LayerTable.from_workload(Workload("w", (conv("s2", 16, 32, 32, stride=2), linear("fc", 64, 10, batch=4),
                                                    conv("g", 32, 32, 8, groups=4))))
    rows = [r.split(",") for r in scalesim.topology_csv(table).strip().splitlines()[1:]]
    # stride 2 on 32+2 padded rows reads (16-1)*2+3 = 33 rows, so SCALE-Sim's ceil formula gives 16 outputs
    assert [x.strip() for x in rows[0][:8]] == ["s2", "33", "33", "3", "3", "16", "32", "2"]
    assert [x.strip() for x in rows[1][:8]] == ["fc", "4", "1", "1", "1", "64", "10", "1"]
    assert [x.strip() for x in rows[2][5:7]] == ["8", "8"]  # one group's channels and filters
    # a 1x1 stride-2 downsample spans (28-1)*2+1 = 55 rows but reads only 28 of them (both peers count 28)
    down = LayerTable.from_workload(Workload("d", (conv("ds", 64, 128, 56, k=1, stride=2, pad=0),)))
    assert scalesim.topology_csv(down).splitlines()[1].split(",")[1:3] == [" 55", " 55"]
    assert down.ifmap[0] == 64 * 28 * 28
    cfg = scalesim.config_cfg(SystolicDesign(rows=8, cols=4, dataflow="is"))
    assert "ArrayHeight = 8" in cfg and "ArrayWidth = 4" in cfg and "Dataflow = is" in cfg and "CALC" in cfg


def test_scalesim_refuses_what_it_cannot_express():
    batched = Workload("b", (replace(conv("c", 4, 4, 8), batch=2),))
    with pytest.raises(ConfigError, match="batch"):
        scalesim.topology_csv(LayerTable.from_workload(batched))
    wide = Workload("r", (replace(conv("c", 4, 4, 8), stride_w=2, out_w=4),))
    with pytest.raises(ConfigError, match="square strides"):
        scalesim.topology_csv(LayerTable.from_workload(wide))


def test_zigzag_description_is_equivalent_to_the_design():
    tech = get_technology("45nm")
    design = SystolicDesign(rows=16, cols=8, dataflow="os", ifmap_kib=32, filter_kib=64, ofmap_kib=16, dram_bw=4)
    acc = zigzag.accelerator(design, tech)
    assert list(acc["memories"]) == ["reg", "ifmap_sram", "filter_sram", "ofmap_sram", "dram"]  # innermost first
    assert acc["memories"]["reg"]["operands"] == ["O"]  # output stationary: the PE keeps the partial sum
    assert acc["operational_array"]["sizes"] == [16, 8] and acc["operational_array"]["unit_energy"] == tech.mac_pj
    filt = acc["memories"]["filter_sram"]
    port = filt["ports"][0]
    # ZigZag charges r_cost per full-width access and counts words * min/max: per word = tech energy
    assert filt["r_cost"] * port["bandwidth_min"] / port["bandwidth_max"] == pytest.approx(float(tech.sram_word_pj(64)))
    dram = acc["memories"]["dram"]
    assert dram["r_cost"] / (dram["ports"][0]["bandwidth_max"] // 16) == pytest.approx(tech.dram_pj)
    table = LayerTable.from_workload(resnet20())
    entries = {m["name"]: m for m in zigzag.mapping(table, design)}
    assert entries["L_layer1_0_conv1"]["spatial_mapping"] == {"D1": ["OX, 16"], "D2": ["K, 8"]}
    ws = {m["name"]: m for m in zigzag.mapping(table, replace(design, dataflow="ws"))}
    # conv1 window C3 x FY3 x FX3 on 16 rows: 9 PEs at most; ties keep larger factors on earlier dims
    assert ws["L_conv1"]["spatial_mapping"]["D1"] == ["C, 3", "FX, 3"]
    layers = yaml.safe_load(yaml.safe_dump(zigzag.workload_layers(table), sort_keys=False))
    assert layers[0]["loop_sizes"] == [1, 16, 3, 32, 32, 3, 3]


def test_missing_peer_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(_runner, "candidate_roots", lambda: [tmp_path])
    assert not installed("scalesim")
    with pytest.raises(ConfigError) as info:
        scalesim.run(resnet20(), SystolicDesign())
    assert "scripts/install_peers.sh scalesim" in info.value.fix and "own virtual environment" in info.value.cause
    with pytest.raises(ConfigError, match="install_peers.sh zigzag"):
        cost_with("zigzag", resnet20(), "systolic", SystolicDesign())


def test_backends_cross_check_systolic_designs_only():
    with pytest.raises(ConfigError, match="systolic designs only"):
        cost_with("scalesim", resnet20(), "nvdla", None)
    with pytest.raises(ConfigError, match="Unknown peer backend"):
        cost_with("timeloop", resnet20(), "systolic", SystolicDesign())


def _three_layers() -> Workload:
    net = resnet20()
    keep = ("conv1", "layer2.0.conv1", "linear")
    return Workload("r20-3", tuple(replace(net.layer(n), inputs=()) for n in keep))


@pytest.mark.slow
@pytest.mark.skipif(not installed("scalesim"),
                    reason="SCALE-Sim venv not installed (nn2hw peers install scalesim)")
@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_live_scalesim_matches_the_closed_form(flow):
    design = SystolicDesign(rows=16, cols=8, dataflow=flow)
    peer = scalesim.run(_three_layers(), design, use_cache=False, timeout_s=600)
    ours = get_template("systolic")[0].cost(_three_layers(), design)
    assert [x.compute_cycles for x in peer.layers] == [x.breakdown_cycles["compute_cycles"] for x in ours.layers]


@pytest.mark.slow
@pytest.mark.skipif(not installed("zigzag"), reason="ZigZag venv not installed (nn2hw peers install zigzag)")
def test_live_zigzag_energy_within_20_percent():
    design = SystolicDesign(rows=16, cols=16, dataflow="ws")
    workload = Workload("r20-1", (replace(resnet20().layer("layer2.1.conv1"), inputs=()),))
    peer = zigzag.run(workload, design, "45nm", use_cache=False, timeout_s=900)
    ours = get_template("systolic")[0].cost(workload, design)
    assert ours.energy_mj == pytest.approx(peer.energy_mj, rel=0.2)
