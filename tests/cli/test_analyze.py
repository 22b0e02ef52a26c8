"""``nn2hw analyze`` end to end through ``nn2hw.cli.main``: tables, JSON, goldens and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nn2hw.cli import main


@pytest.fixture(scope="module", autouse=True)
def workload_cache(tmp_path_factory):
    """A private workload cache (the CLI caches zoo workloads under NN2HW_CACHE)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("NN2HW_CACHE", str(path))
        yield path


def run(capsys, *argv):
    code = main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_explore_reproduces_the_published_resnet18_design(capsys, tmp_path):
    # reference notes 2.10/2.12: 12.5744 ms at [70,36,64,64,7,18,6,6] (v0, shape bug, as-run BRAM, 100 MHz)
    target = tmp_path / "r18.json"
    code, out, _ = run(capsys, "--model", "resnet18", "--hardware", "fpga:zcu102", "--explore", "--variant", "v0",
                       "--compat-shapes", "--bram", "as-run", "--clock-mhz", "100", "--json", str(target))
    assert code == 0
    assert "12.5744 ms" in out and "[70,36,64,64,7,18,6,6]" in out and "Pareto set" in out
    assert "layer4.1.conv2" in out and "no cycles of their own" in out and "fc" in out
    data = json.loads(target.read_text())
    assert data["total_cycles"] == pytest.approx(1_257_440)
    assert data["latency_ms"] == pytest.approx(12.5744)
    design = [data["design"][k] for k in ("Tm", "Tn", "Tr", "Tc", "Tk", "Wp", "Ip", "Op")]
    assert design == [70, 36, 64, 64, 7, 18, 6, 6]
    assert len(data["layers"]) == 20
    assert {"name", "cycles", "bottleneck", "shape", "share", "macs", "latency_ms"} <= set(data["layers"][0])
    assert data["exploration"]["n_designs"] == 9000


def test_alexnet_design_and_table(capsys):
    code, out, _ = run(capsys, "--model", "alexnet", "--design", "70,36,64,32,11,18,6,2", "--clock-mhz", "100",
                       "--bram", "as-run")
    assert code == 0
    assert "404,830.0 cycles = 4.0483 ms" in out
    for header in ("layer", "shape", "MACs", "cycles", "ms", "bottleneck", "share", "resources", "DSP"):
        assert header in out


def test_two_engine_design_from_the_command_line(capsys):
    code, out, _ = run(capsys, "--model", "mobilenet_v2", "--design", "160,12,32,32,3,10,10,10", "--dw-design",
                       "576,1,32,32,3,10,10,10", "--clock-mhz", "100", "--bram", "off")
    assert code == 0 and "12.585792 ms" in out and "BRAM18" in out  # realistic BRAM still reported in a note


def test_default_design_comes_from_the_exploration(capsys):
    code, out, _ = run(capsys, "--model", "resnet20")
    assert code == 0 and "no --design given" in out and "exploration:" in out


def test_hw_params_set_fields_options_and_grid_values(capsys, tmp_path):
    target = tmp_path / "a.json"
    code, _, _ = run(capsys, "--model", "resnet18", "--design", "70,36,64,64,7,18,6,6", "--hw-param", "Tm=60",
                     "--hw-param", "linear=engine", "--json", str(target))
    data = json.loads(target.read_text())
    assert code == 0 and data["design"]["Tm"] == 60 and data["layers"][-1]["name"] == "fc"
    code, _, _ = run(capsys, "--model", "resnet18", "--explore", "--hw-param", "Tr=32,64", "--hw-param", "Tm=70",
                     "--json", str(target))
    data = json.loads(target.read_text())
    assert code == 0 and data["exploration"]["n_designs"] == 2 * 3 * 125 and data["design"]["Tm"] == 70


@pytest.mark.parametrize("argv, words", [
    (["--model", "resnet81"], ["Unknown model 'resnet81'", "resnet18"]),
    (["--model", "resnet18", "--design", "80,36,64,64,7,18,6,6"], ["DSP needs 2,880 of 2,520", "+360"]),
    (["--model", "alexnet", "--design", "70,36,64,32,7,18,6,2"], ["11x11 kernel", "Tk=7", "Raise Tk"]),
    (["--model", "alexnet", "--variant", "v9"], ["Unknown latency variant 'v9'", "head"]),
    (["--model", "alexnet", "--bram", "exact"], ["Unknown BRAM model 'exact'", "realistic"]),
    (["--model", "alexnet", "--design", "70,x,64,32,11,18,6,2"], ["Tn must be a positive integer, got 'x'"]),
    (["--model", "alexnet", "--design", "70,36,64,32,11,18,6,2", "--clock-mhz", "-5"], ["clock_mhz"]),
    (["--model", "alexnet", "--hw-param", "Tm"], ["is not KEY=VALUE"]),
    (["--model", "resnet18", "--explore", "--bram", "hotnas"], ["limiting resource", "closest design"]),
    (["--onnx", "no-such-file.onnx"], ["no-such-file.onnx"]),
    (["--model", "alexnet", "--dw-design", "64,1,32,32,3"], ["without the standard engine's design"]),
])
def test_bad_input_gives_exit_code_2_and_one_paragraph(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    assert err.startswith("error:")
    flat = " ".join(err.split())
    for word in words:
        assert word in flat


def test_onnx_and_zoo_model_cost_the_same(capsys, tmp_path):
    pytest.importorskip("onnx")
    from nn2hw import zoo
    from nn2hw.workload.onnx_export import to_onnx

    path = to_onnx(zoo.build("resnet20"), (1, 3, 32, 32), tmp_path / "r20.onnx")
    totals = []
    for source in (["--onnx", str(path)], ["--model", "resnet20"]):
        target = tmp_path / "out.json"
        code, _, _ = run(capsys, *source, "--design", "16,16,32,32,3,8,8,8", "--json", str(target))
        assert code == 0
        totals.append(json.loads(target.read_text())["total_cycles"])
    assert totals[0] == totals[1]


def test_analyze_explore_on_a_fresh_install_does_not_import_torch(tmp_path):
    # issue 2: analyze --explore in < 3 s start-up included; with an empty cache the zoo workload comes
    # packaged with nn2hw (nn2hw.zoo.bake), and the template path never needs torch
    code = ("import sys; from nn2hw.cli import main; rc = main(['analyze', '--model', 'resnet18', '--hardware', "
            "'fpga:zcu102', '--explore']); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    env = {**os.environ, "NN2HW_CACHE": str(tmp_path / "empty-cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Pareto set" in done.stdout and done.stdout.strip().endswith("NO-TORCH")
