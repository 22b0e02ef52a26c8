"""``nn2hw export BUNDLE --onnx FILE``: a file ONNX Runtime loads; bad input is a clear error, exit code 2."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
import torch

from nn2hw.bundle import save_bundle
from nn2hw.cli import main
from nn2hw.compress import apply_plan
from nn2hw.plan import Plan
from tests.deploy.variants import cut, int8, zoo_case


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A ResNet-20 (Fashion-MNIST) bundle cut and quantized to int8; its plan records no input shape."""
    torch.set_num_threads(1)
    model, workload, plan0 = zoo_case("resnet20", "fashion-mnist", (1, 1, 28, 28), pretrained=False)
    plan = int8(cut(0.5)(plan0, workload, model), workload, model)
    plan = Plan(plan.base_model, plan.dataset, plan.choices)  # the zoo variant gives the shape
    return save_bundle(tmp_path_factory.mktemp("b") / "best", apply_plan(plan, model, (1, 1, 28, 28)), plan)


def test_export_writes_a_file_ort_runs(bundle, tmp_path, capsys):
    out = tmp_path / "best.onnx"
    assert main(["export", str(bundle), "--onnx", str(out), "--json", str(tmp_path / "e.json")]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, 28, 28]
    assert session.run(None, {session.get_inputs()[0].name: torch.randn(1, 1, 28, 28).numpy()})[0].shape == (1, 10)
    text = capsys.readouterr().out
    assert "int8 layers: 20 (QGemm, QLinearConv)" in text and "checked: max abs error" in text
    summary = json.loads((tmp_path / "e.json").read_text())
    assert summary["checked"] and summary["max_abs_error"] <= summary["tolerance"]


def test_int8_storage_option(bundle, tmp_path, capsys):
    summary = tmp_path / "u.json"
    assert main(["export", str(bundle), "--onnx", str(tmp_path / "u.onnx"), "--int8-storage", "u8u8",
                 "--json", str(summary)]) == 0
    assert "integers stored as u8u8 (asked for)" in capsys.readouterr().out
    assert json.loads(summary.read_text())["int8_storage"] == "u8u8"
    assert json.loads(summary.read_text())["int8_storage_reason"] == "asked for"
    with pytest.raises(SystemExit) as exited:
        main(["export", str(bundle), "--onnx", str(tmp_path / "x.onnx"), "--int8-storage", "int4"])
    assert exited.value.code == 2 and "u8u8" in capsys.readouterr().err


def test_input_shape_option_sets_the_batch(bundle, tmp_path):
    out = tmp_path / "b4.onnx"
    assert main(["export", str(bundle), "--onnx", str(out), "--input-shape", "4x1x28x28", "--no-check"]) == 0
    assert ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_inputs()[0].shape == [4, 1, 28, 28]


@pytest.mark.parametrize("shape", ["0x1x28x28", "1x1x28", "axb", "1x-1x28x28"])
def test_bad_input_shape(bundle, tmp_path, shape, capsys):
    code = main(["export", str(bundle), "--onnx", str(tmp_path / "x.onnx"), "--input-shape", shape])
    err = capsys.readouterr().err
    assert code == 2 and "input shape" in err and "fix:" in err


def test_missing_and_corrupt_bundles(bundle, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "not a complete nn2hw bundle" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in bundle.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "bundle.json").write_text("{not json")
    assert main(["export", str(broken), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
