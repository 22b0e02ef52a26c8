"""``nn2hw predictor fit`` and ``check`` end to end on zoo workloads and channel cuts with synthetic latencies."""

from __future__ import annotations

import json

import pytest

from nn2hw.api import zoo_workload
from nn2hw.cli import main
from nn2hw.predict.measurements import Measurement, write_measurements
from tests.predict.helpers import cut, synthetic_ms

pytest.importorskip("sklearn", reason="predictors need scikit-learn (pip install 'nn2hw[predict]')")

MODELS = ("resnet20", "resnet32", "resnet44", "resnet56")


def _rows(folder, keeps):
    """Zoo models by name (keep 1) and their channel cuts as workload JSON files, latencies ~ MACs."""
    rows = []
    for model in MODELS:
        base = zoo_workload(model, "fashion-mnist")
        for keep in keeps:
            workload = cut(base, keep)
            if keep == 1.0:
                rows.append(Measurement(model, synthetic_ms(workload), "fashion-mnist", (1, 1, 28, 28)))
            else:
                (folder / f"{workload.name}.json").write_text(workload.to_json())
                rows.append(Measurement(f"{workload.name}.json", synthetic_ms(workload)))
    return rows


@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("measured")
    train = write_measurements(folder / "train.csv", _rows(folder, (0.25, 0.5, 0.75, 1.0)))
    test = write_measurements(folder / "test.csv", _rows(folder, (0.4, 0.6, 0.9)))
    return train, test


def run(capsys, *argv):
    code = main(["predictor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_then_check(csvs, tmp_path, capsys):
    train, test = csvs
    out_file = tmp_path / "board.json"
    code, out, err = run(capsys, "fit", "--measurements", str(train), "--out", str(out_file), "--device", "board")
    assert code == 0, err
    assert "on 16 networks" in out and json.loads(out_file.read_text())["device"] == "board"
    report = tmp_path / "report.json"
    code, out, err = run(capsys, "check", str(out_file), "--measurements", str(test), "--json", str(report))
    assert code == 0, err
    assert "Kendall τ" in out and "within ±10 %" in out
    result = json.loads(report.read_text())
    assert result["n"] == 12 and result["kind"] == "whole" and result["device"] == "board"
    assert result["kendall_tau"] >= 0.7


def test_bad_input_exits_2_with_cause_and_fix(csvs, tmp_path, capsys):
    train, _ = csvs
    bad = tmp_path / "bad.csv"
    bad.write_text("network,latency\nresnet20,1\n")
    code, _, err = run(capsys, "fit", "--measurements", str(bad), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "missing columns ['latency_ms']" in err and "fix:" in err
    bad.write_text("network,dataset,latency_ms\nresnet20,fashion-mnist,1\nresnet20,fashion-mnist,2\n")
    code, _, err = run(capsys, "fit", "--measurements", str(bad), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "different latencies" in err and "line 2" in err and "line 3" in err
    bad.write_text("network,latency_ms\nresnet20,1\nresnet32,2\n")
    code, _, err = run(capsys, "fit", "--measurements", str(bad), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "needs at least 10" in err
    bad.write_text("network,dataset,input_shape,latency_ms\nresnet20,fashion-mnist,1x3x32x32,1\n")
    code, _, err = run(capsys, "fit", "--measurements", str(bad), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "line 2" in err and "takes input shape 1x1x28x28" in err
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    code, _, err = run(capsys, "check", str(corrupt), "--measurements", str(train))
    assert code == 2 and "corrupt" in err and "Refit" in err


def test_build_refuses_another_device(tmp_path, capsys):
    code, _, err = run(capsys, "build", "--device", "pixel4", "--out", str(tmp_path / "p.json"))
    assert code == 2 and "pixel4" in err
