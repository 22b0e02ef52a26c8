"""docs/extending.md, run: its four example packages are built in a temporary folder, pass their own
conformance suites, and are found by the CLI (analyze, list, search); broken plugins are said, not raised.

The packages are installed with ``pip install --target`` (real builds, real entry points) into a
folder that only the subprocesses of these tests see.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
PACKAGES = ("nn2hw-toy-array", "nn2hw-drop-bias", "nn2hw-sweep", "nn2hw-toy-mlp")

pytestmark = pytest.mark.slow


def doc_files() -> dict[str, str]:
    """The code blocks of docs/extending.md that name a file (```lang file=PATH)."""
    blocks = re.findall(r"```\w+ file=(\S+)\n(.*?)```", DOC.read_text(), flags=re.S)
    return dict(blocks)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> tuple[Path, Path]:
    """(the folder the example packages are installed into, the folder holding space.yaml)."""
    src = tmp_path_factory.mktemp("src")
    for path, text in doc_files().items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text)
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(site), *(str(src / p) for p in PACKAGES)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return site, src


def run(site: Path, *args: str, cwd: Path | None = None, extra_path: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (site, extra_path, ROOT / "src") if p)}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def nn2hw(site: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return run(site, sys.executable, "-m", "nn2hw", *args, **kw)


def test_the_doc_names_every_package_file():
    files = doc_files()
    for package in PACKAGES:
        assert {f"{package}/pyproject.toml", f"{package}/tests/test_contract.py"} <= set(files), package


@pytest.mark.parametrize("package", PACKAGES)
def test_each_example_passes_its_conformance_suite(plugins, package):
    site, src = plugins
    done = run(site, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(src / package / "tests"),
               cwd=src)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "passed" in done.stdout and "failed" not in done.stdout


def test_the_plugins_are_listed_with_their_package(plugins):
    site, _ = plugins
    done = nn2hw(site, "list")
    assert done.returncode == 0, done.stderr
    for name, package in (("toy-array", "nn2hw-toy-array"), ("drop_bias", "nn2hw-drop-bias"),
                          ("sweep", "nn2hw-sweep"), ("toy-mlp", "nn2hw-toy-mlp")):
        assert re.search(rf"{re.escape(name)} .*\(from {package}\)", done.stdout), name
    described = nn2hw(site, "list", "templates", "toy-array")
    assert "max_macs" in described.stdout and "compute: MACs at full utilisation -> channel_cut" in described.stdout


def test_analyze_finds_the_template_and_the_model(plugins, tmp_path):
    site, _ = plugins
    out = tmp_path / "a.json"
    done = nn2hw(site, "analyze", "--model", "resnet20", "--hardware", "toy-array", "--explore", "--json", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["template"] == "toy-array" and data["design"] == {"macs_per_cycle": 256}
    assert {layer["execution"] for layer in data["layers"]} == {"array"}
    assert data["uncosted"] and all(u["execution"] in ("fused", "layout") and u["reason"] for u in data["uncosted"])
    refused = nn2hw(site, "analyze", "--model", "resnet20", "--hardware", "toy-array", "--hw-param", "variant=v0")
    assert refused.returncode == 2 and "no option or design parameter 'variant'" in refused.stderr
    model = nn2hw(site, "analyze", "--model", "toy-mlp", "--hardware", "fpga:zcu102", "--hw-param", "linear=engine")
    assert model.returncode == 0, model.stderr
    assert "2 costed layers" in model.stdout


def test_an_op_kind_the_template_cannot_run_is_named_with_the_templates_that_can(plugins, tmp_path):
    pytest.importorskip("onnx", reason="the onnx extra (pip install 'nn2hw[onnx]') reads the exported encoder")
    from nn2hw.testing import nets
    from nn2hw.workload.onnx_export import to_onnx

    site, _ = plugins
    model, inputs = nets.bert()
    path = to_onnx(model, inputs, tmp_path / "bert.onnx", dynamo=False)
    done = nn2hw(site, "analyze", "--onnx", str(path), "--hardware", "toy-array")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "The toy-array template cannot run" in done.stderr and "systolic" in done.stderr


def test_search_uses_the_strategy_template_and_transform(plugins, tmp_path):
    site, src = plugins
    out = tmp_path / "run"
    done = nn2hw(site, "search", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", "toy-array",
                 "--latency-ms", "0.1", "--strategy", "sweep", "--space", str(src / "space.yaml"), "--trials", "4",
                 "--finetune-batches", "1", "--final-batches", "1", "--search-images", "64", "--quiet", "--out",
                 str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["strategy"] == "sweep" and report["settings"]["hardware"] == "toy-array"
    assert report["solution"]["latency_ms"] <= 0.1
    trials = (out / "trials.csv").read_text()
    assert "drop_bias:linear=no bias" in trials  # odd sweep steps take the plugin transform's choice


def _broken_plugin(site: Path, name: str, group: str, target: str) -> Path:
    """A dist-info folder declaring one entry point (what pip would write for a package)."""
    folder = site / f"{name.replace('-', '_')}-0.1.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (folder / "entry_points.txt").write_text(f"[{group}]\n{target}\n")
    return folder


def test_a_broken_plugin_is_said_and_the_built_ins_keep_working(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _broken_plugin(site, "nn2hw-broken", "nn2hw.templates", "wobbly = nn2hw_broken_missing:Template")
    _broken_plugin(site, "nn2hw-impostor", "nn2hw.templates", "fpga = nn2hw.hardware.asic.systolic:SystolicTemplate")
    works = nn2hw(site, "analyze", "--model", "resnet20", "--hardware", "fpga:zcu102")
    assert works.returncode == 0, works.stderr
    assert "warning:" in works.stderr and "nn2hw-broken" in works.stderr and "nn2hw-impostor" in works.stderr
    asked = nn2hw(site, "analyze", "--model", "resnet20", "--hardware", "wobbly")
    assert asked.returncode == 2 and "Traceback" not in asked.stderr
    assert "'wobbly'" in asked.stderr and "nn2hw-broken" in asked.stderr and "fails to load" in asked.stderr
    listing = nn2hw(site, "list", "templates")
    assert listing.returncode == 2 and "built-in hardware template 'fpga'" in listing.stderr
    assert "Rename the entry point" in listing.stderr
