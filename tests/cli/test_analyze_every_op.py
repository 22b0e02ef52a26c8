"""``nn2hw analyze`` on networks beyond CNNs (a NAS-Bench-201 cell network, a BERT-style encoder built
from torch.nn layers), read from ONNX: every op is costed or explained on every template, and
Eyeriss runs the cells' average pools on its PE array."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx", reason="the onnx extra (pip install 'nn2hw[onnx]') reads the exported networks")

from nn2hw.cli import main
from nn2hw.testing import nets
from nn2hw.workload import OpKind, from_onnx
from nn2hw.workload.onnx_export import to_onnx

HARDWARE = {"systolic": [], "eyeriss": [], "nvdla": [], "shidiannao": [], "hetero": [],
            "fpga:zcu102": ["--hw-param", "linear=engine"]}


@pytest.fixture(scope="module", params=["nb201", "bert"])
def exported(request, tmp_path_factory):
    model, inputs = getattr(nets, request.param)()
    path = to_onnx(model, inputs, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx", dynamo=False)
    return request.param, path


@pytest.mark.parametrize("hardware", sorted(HARDWARE))
def test_every_op_is_listed_with_its_cost_or_its_reason(exported, hardware, tmp_path, capsys):
    name, path = exported
    out = tmp_path / "result.json"
    code = main(["analyze", "--onnx", str(path), "--hardware", hardware, *HARDWARE[hardware], "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    data = json.loads(out.read_text())
    costed = {layer["name"]: layer for layer in data["layers"]}
    explained = {u["name"]: u for u in data["uncosted"]}
    ops = [layer for layer in from_onnx(path).layers if layer.kind is not OpKind.INPUT]
    for layer in ops:
        assert (layer.name in costed) != (layer.name in explained), layer.name
        if layer.name in explained:
            assert explained[layer.name]["reason"] and explained[layer.name]["execution"], layer.name
        else:
            assert costed[layer.name]["execution"] in ("array", "vector") and costed[layer.name]["cycles"] >= 0
    assert sum(layer["cycles"] for layer in data["layers"]) == pytest.approx(data["total_cycles"])
    assert "no cycles of their own" in printed or not explained
    if name == "bert" and hardware != "fpga:zcu102":
        kinds = {layer.kind for layer in ops if layer.name in costed}
        assert {OpKind.MATMUL, OpKind.SOFTMAX, OpKind.EMBED, OpKind.NORM} <= kinds  # attention and its vector ops


def test_eyeriss_runs_the_cells_average_pools_on_its_array(tmp_path, capsys):
    model, inputs = nets.nb201()
    path = to_onnx(model, inputs, tmp_path / "nb201.onnx", dynamo=False)
    out = tmp_path / "eyeriss.json"
    assert main(["analyze", "--onnx", str(path), "--hardware", "eyeriss", "--json", str(out)]) == 0
    capsys.readouterr()
    layers = json.loads(out.read_text())["layers"]
    pools = [layer for layer in from_onnx(path).layers if layer.kind is OpKind.POOL and layer.op == "AveragePool"]
    assert pools, "the cell network has avg_pool_3x3 edges"
    by_name = {layer["name"]: layer for layer in layers}
    for pool in pools:
        record = by_name[pool.name]
        assert record["execution"] == "array" and record["macs"] == pool.elements * pool.kernel_h * pool.kernel_w
        assert record["cycles"] > 0
