"""`nn2hw analyze` and `nn2hw.api.analyze` with the ASIC templates."""

from __future__ import annotations

import json

import pytest

from nn2hw.api import analyze
from nn2hw.cli import main
from nn2hw.cli._common import write_json
from nn2hw.errors import HardwareError
from nn2hw.peers import _runner
from tests.hardware.asic.nets import mobile_block, resnet20


def test_hw_params_describe_the_design_to_cost():
    result = analyze(workload=resnet20(), hardware="systolic", hw_params={"rows": "32", "cols": "32",
                                                                          "dataflow": "ws"})
    assert result.design_source == "given"
    assert result.cost.design["rows"] == 32 and result.cost.design["dataflow"] == "ws"
    data = result.to_dict()
    assert {"total_cycles", "compute_cycles", "energy_mj", "area_mm2", "latency_ms", "design", "layers"} <= set(data)
    assert data["compute_cycles"] == 83632  # the SCALE-Sim closed form (see test_systolic)
    assert all("compute_cycles" in layer and layer["energy_mj"] > 0 for layer in data["layers"])


def test_list_values_explore_and_budgets_are_checked():
    result = analyze(workload=resnet20(), hardware="nvdla", hw_params={"atomic_c": "8,16", "atomic_k": "8,16"})
    assert result.exploration is not None and result.exploration.n_designs == 4 * 4 * 2  # x cbuf x acc defaults
    with pytest.raises(HardwareError, match="pes needs 1,024 of 512"):
        analyze(workload=resnet20(), hardware="systolic", hw_params={"rows": "32", "cols": "32", "max_pes": "512"})


def test_hardware_file_hetero_chip(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("template: hetero\nbudgets: {max_pes: 2048}\nsub_accelerators:\n"
                    "  - {name: big, template: nvdla, params: {atomic_c: 16, atomic_k: 16}}\n"
                    "  - {name: small, template: shidiannao}\n")
    result = analyze(workload=mobile_block(), hardware_file=path)
    assert result.hardware == "hetero:45nm"
    engines = {layer.name: layer.engine for layer in result.cost.layers}
    assert engines["dw"] == "small" and set(engines.values()) <= {"big", "small"}
    assert [r.name for r in result.cost.resources] == ["pes"] and result.cost.fits
    written = write_json(tmp_path / "r.json", result.to_dict())  # what --json writes
    assert json.loads(written.read_text())["options"]["budgets"]["max_pes"] == 2048


def test_cli_table_json_and_peer_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.json"
    code = main(["analyze", "--model", "resnet20", "--hardware", "systolic", "--hw-param", "rows=32",
                 "--hw-param", "cols=32", "--hw-param", "dataflow=ws", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "mJ" in text and "area" in text and "compute cycles" in text
    data = json.loads(out.read_text())
    assert data["compute_cycles"] <= data["total_cycles"] and data["area_mm2"] > 0 and data["energy_mj"] > 0
    monkeypatch.setattr(_runner, "candidate_roots", lambda: [tmp_path])
    code = main(["analyze", "--model", "resnet20", "--hardware", "systolic", "--backend", "scalesim"])
    assert code == 2 and "install_peers.sh scalesim" in capsys.readouterr().err
