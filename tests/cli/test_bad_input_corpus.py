"""The bad-input corpus: every malformed command a user may type gives exit code 2, no traceback and
one paragraph naming the cause and the fix (issue 14 and the earlier cases), through the real CLI
entry point: in-process (``nn2hw.cli.main``) for speed, and a few in a subprocess to prove that
nothing reaches stderr but the message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nn2hw.cli import main
from tests.data.helpers import install_fake_fmnist, write_files

SEARCH = ["search", "--model", "resnet20", "--dataset", "fashion-mnist", "--trials", "1", "--finetune-batches", "1",
          "--final-batches", "1", "--search-images", "8", "--validation-size", "8", "--quiet"]
"""A search that would finish in seconds if a case did not stop it."""
S03 = [*SEARCH, "--latency-ms", "0.3"]
OUT = ["--out", "{tmp}/o"]
MINIMIZE = ["plan", "minimize", "--out", "{tmp}/minimal.json"]

FILES = {
    "afile": b"a file where a folder belongs\n",
    "latin1.yaml": b"techniques:\n  quantize: {bits: [8]}\n# caf\xe9\n",
    "latin1-hw.yaml": b"template: nvdla\n# caf\xe9\n",
    "syntax.yaml": b"techniques:\n  channel_cut: {keep: [0.5\n",
    "syntax-hw.yaml": b"template: nvdla\nparams: {atomic_c: [8\n  x: 1: 2\n",
    "old-name.yaml": b"techniques:\n  pattern: {zeros: [4]}\n",
    "zeros9.yaml": b"techniques:\n  kernel_pattern: {zeros: [9, 4]}\n",
    "bits16.yaml": b"techniques:\n  quantize: {bits: [16]}\n",
    "keep-big.yaml": b"techniques:\n  channel_cut: {keep: [1.5]}\n",
    "unknown-top.yaml": b"technique: {}\n",
    "hetero.yaml": b"template: hetero\nsub_accelerators:\n  - {name: a, template: nvdla}\n",
    "bad-field-hw.yaml": b"template: systolic\nparams: {rows: -4}\n",
    "bad-template-hw.yaml": b"template: tpu9\n",
    "nvdla-hw.yaml": b"template: nvdla\nparams: {preset: nv_full}\n",
    "plan.json": b'{"format": "nn2hw-plan", "version": 1, "base_model": "resnet20", "dataset": "fashion-mnist"}\n',
}

CASES = [
    # --- search: output locations, checked before any work (issue 14 item 4)
    ("out-is-file", [*S03, "--out", "{tmp}/afile"], ["--out", "afile is a file", "move"]),
    ("out-under-file", [*S03, "--out", "{tmp}/afile/run"], ["lies under", "afile, which is a file"]),
    ("out-read-only", [*S03, "--out", "{ro}/run"], ["--out", "is read-only", "writable"]),
    ("out-read-only-storage-elsewhere", [*S03, "--out", "{ro}/run", "--storage", "{tmp}/s.db"],
     ["--out", "is read-only"]),
    ("storage-under-file", [*S03, *OUT, "--storage", "{tmp}/afile/s.db"], ["--storage", "lies under"]),
    ("storage-is-folder", [*S03, *OUT, "--storage", "{tmp}"], ["--storage", "is a folder", "study.db"]),
    # --- search: space files (non-UTF-8, syntax, names, options that cannot apply: items 4, 7, 11)
    ("space-not-utf8", [*S03, *OUT, "--space", "{tmp}/latin1.yaml"], ["latin1.yaml", "not UTF-8", "0xe9"]),
    ("space-yaml-syntax", [*S03, *OUT, "--space", "{tmp}/syntax.yaml"],
     ["not valid YAML", "line 3, column 1", "starting at line 2, column 23"]),
    ("space-missing", [*S03, *OUT, "--space", "{tmp}/nope.yaml"], ["nope.yaml does not exist"]),
    ("space-old-technique-name", [*S03, *OUT, "--space", "{tmp}/old-name.yaml"], ["'pattern'", "kernel_pattern"]),
    ("space-unknown-section", [*S03, *OUT, "--space", "{tmp}/unknown-top.yaml"], ["'technique'", "techniques"]),
    ("space-zeros-that-cannot-apply", [*S03, *OUT, "--space", "{tmp}/zeros9.yaml"],
     ["techniques.kernel_pattern.zeros", "zeros 9", "layer1.0.conv1 (3x3 conv", "remove 9"]),
    ("space-bits-that-cannot-apply", [*S03, *OUT, "--space", "{tmp}/bits16.yaml"],
     ["techniques.quantize.bits", "bits 16", "16-bit weights"]),
    ("space-option-out-of-range", [*S03, *OUT, "--space", "{tmp}/keep-big.yaml"],
     ["techniques.channel_cut.keep", "strictly between 0 and 1"]),
    # --- search: hardware files and parameters (items 4, 7)
    ("search-hw-file-not-utf8", [*S03, *OUT, "--hardware-file", "{tmp}/latin1-hw.yaml"], ["not UTF-8"]),
    ("search-hw-file-hetero", [*S03, *OUT, "--hardware-file", "{tmp}/hetero.yaml"],
     ["heterogeneous chip", "--hardware hetero"]),
    ("search-hw-file-bad-field", [*S03, *OUT, "--hardware-file", "{tmp}/bad-field-hw.yaml"],
     ["bad-field-hw.yaml", "params", "rows"]),
    ("search-hw-param-not-pair", [*S03, *OUT, "--hw-param", "Tm"], ["is not KEY=VALUE"]),
    ("search-hw-param-unknown", [*S03, *OUT, "--hw-param", "rowz=4"], ["no option or design parameter 'rowz'"]),
    ("search-unknown-preset", [*S03, *OUT, "--hardware", "nvdla", "--hw-param", "preset=nv_huge"],
     ["no design preset 'nv_huge'", "nv_full"]),
    ("search-unknown-template", [*S03, *OUT, "--hardware", "tpu9"], ["'tpu9'"]),
    ("search-energy-on-fpga", [*SEARCH, *OUT, "--latency-ms", "1", "--energy-mj", "1"], ["does not model energy"]),
    # --- search: strategies and their options (item 11)
    ("strategy-option-type", [*S03, *OUT, "--strategy-option", "lr=abc"],
     ["option lr must be a number > 0", "'abc'", "lr=0.01"]),
    ("strategy-option-int", [*S03, *OUT, "--strategy", "evolution", "--strategy-option", "population=many"],
     ["option population must be an integer >= 2", "population=16"]),
    ("strategy-option-word", [*S03, *OUT, "--strategy-option", "baseline=7"],
     ["option baseline must be ema or hotnas"]),
    ("strategy-option-tpe", [*S03, *OUT, "--strategy", "tpe", "--strategy-option", "n_startup_trials=ten"],
     ["option n_startup_trials must be an integer"]),
    ("strategy-option-unknown", [*S03, *OUT, "--strategy-option", "momentum=0.9"], ["has no options ['momentum']"]),
    ("strategy-option-not-pair", [*S03, *OUT, "--strategy-option", "lr"], ["--strategy-option 'lr' is not KEY=VALUE"]),
    ("strategy-misspelt", [*S03, *OUT, "--strategy", "reinforc"], ["Did you mean 'reinforce'"]),
    # --- search: settings
    ("trials-zero", [*SEARCH, *OUT, "--latency-ms", "1", "--trials", "0"], ["--trials"]),
    ("no-spec", [*SEARCH, *OUT], ["No design spec", "--latency-ms"]),
    ("spec-below-leanest", [*SEARCH, *OUT, "--latency-ms", "0.0001"], ["No candidate can meet", "leanest candidate"]),
    ("study-name", [*S03, *OUT, "--study", "my study!"], ["not a simple name"]),
    ("workers-zero", [*S03, *OUT, "--workers", "0"], ["workers must be an integer >= 1"]),
    ("model-without-dataset-variant", ["search", "--model", "mobilenetv2_fmnist", "--dataset", "cifar10",
                                       "--latency-ms", "1", *OUT], ["no 'cifar10' variant"]),
    # --- the validation split candidates are scored on (issue 13 part 1)
    ("validation-size-zero", [*S03, *OUT, "--validation-size", "0"],
     ["validation size of 0", "--validation-size 5000"]),
    ("validation-size-everything", [*S03, *OUT, "--validation-size", "40"],
     ["40 images out of 40 training images leaves no image to fine-tune on", "--validation-size between 1 and 39"]),
    ("validation-size-fraction-one", [*S03, *OUT, "--validation-size", "1.0"], ["neither a number of images"]),
    ("validation-size-with-select-on-test", [*S03, *OUT, "--select-on-test"], ["--select-on-test", "Drop one"]),
    ("pruner-unknown", [*S03, *OUT, "--pruner", "hyperband"], ["'hyperband'", "median", "halving", "none"]),
    # --- user text is printed as typed, never as Rich markup (item 4)
    ("markup-closing-tag-model", ["search", "--model", "[/bold]x.pt", "--dataset", "fashion-mnist", "--latency-ms",
                                  "1", *OUT], ["Unknown model '[/bold]x.pt'"]),
    ("markup-style-model", ["analyze", "--model", "[red]resnet2O"], ["Unknown model '[red]resnet2O'"]),
    ("markup-onnx-path", ["analyze", "--onnx", "{tmp}/[red]net[/bold].onnx"], ["[red]net[/bold].onnx does not exist"]),
    ("markup-space-path", [*S03, *OUT, "--space", "{tmp}/[bold]s.yaml"], ["[bold]s.yaml does not exist"]),
    ("markup-install-hint", ["analyze", "--onnx", "{tmp}/afile"], ['pip install "nn2hw[onnx]"']),
    # --- analyze
    ("analyze-hw-file-not-utf8", ["analyze", "--model", "resnet20", "--hardware-file", "{tmp}/latin1-hw.yaml"],
     ["latin1-hw.yaml is not UTF-8", "Save the file as UTF-8"]),
    ("analyze-hw-file-syntax", ["analyze", "--model", "resnet20", "--hardware-file", "{tmp}/syntax-hw.yaml"],
     ["not valid YAML", "line 3"]),
    ("analyze-hw-file-missing", ["analyze", "--model", "resnet20", "--hardware-file", "{tmp}/none.yaml"],
     ["none.yaml does not exist"]),
    ("analyze-hw-file-template", ["analyze", "--model", "resnet20", "--hardware-file", "{tmp}/bad-template-hw.yaml"],
     ["field 'template'", "'tpu9'"]),
    ("analyze-hw-file-and-other-hardware", ["analyze", "--model", "resnet20", "--hardware", "systolic",
                                            "--hardware-file", "{tmp}/nvdla-hw.yaml"], ["name different hardware"]),
    ("analyze-json-under-file", ["analyze", "--model", "resnet20", "--json", "{tmp}/afile/r.json"],
     ["--json", "lies under"]),
    ("analyze-json-is-folder", ["analyze", "--model", "resnet20", "--json", "{tmp}"], ["--json", "is a folder"]),
    ("analyze-unknown-model", ["analyze", "--model", "resnet81"], ["Unknown model 'resnet81'", "resnet18"]),
    ("analyze-bad-design", ["analyze", "--model", "alexnet", "--design", "70,x,64,32,11,18,6,2"],
     ["Tn must be a positive integer"]),
    # --- the other commands' outputs, checked before their work
    ("evaluate-json-under-file", ["evaluate", "--model", "resnet20", "--dataset", "fashion-mnist", "--json",
                                  "{tmp}/afile/e.json"], ["--json", "lies under"]),
    ("export-onnx-under-file", ["export", "{tmp}/no-bundle", "--onnx", "{tmp}/afile/x.onnx"], ["--onnx", "lies under"]),
    ("zoo-train-out-under-file", ["zoo", "train", "resnet20", "--out", "{tmp}/afile/w.pt"], ["--out", "lies under"]),
    ("zoo-info-unknown", ["zoo", "info", "resnt18"], ["Unknown model 'resnt18'", "resnet18"]),
    # --- plan minimize
    ("plan-minimize-missing", [*MINIMIZE, "{tmp}/none.json", "--latency-ms", "1"], ["No plan file at", "none.json"]),
    ("plan-minimize-misses-spec", [*MINIMIZE, "{tmp}/plan.json", "--latency-ms", "0.1"],
     ["does not meet the spec to begin with", "latency 0.4167 ms > spec 0.1 ms", "relax the spec"]),
    ("plan-minimize-unknown-hardware", [*MINIMIZE, "{tmp}/plan.json", "--latency-ms", "1", "--hardware", "tpu9"],
     ["'tpu9'"]),
    ("plan-minimize-no-spec", [*MINIMIZE, "{tmp}/plan.json"], ["No design spec", "--latency-ms"]),
    ("plan-minimize-out-under-file", [*MINIMIZE, "{tmp}/plan.json", "--latency-ms", "1", "--out", "{tmp}/afile/m.json"],
     ["--out", "lies under"]),
]

SUBPROCESS = {"out-is-file", "out-read-only", "markup-closing-tag-model", "strategy-option-not-pair", "space-not-utf8"}
"""Cases also run as ``python -m nn2hw``: stderr holds the message and nothing else."""


@pytest.fixture
def tmp(monkeypatch, tmp_path) -> Path:
    """The case files, a fake Fashion-MNIST (NN2HW_DATA) and a private cache (NN2HW_CACHE)."""
    write_files(tmp_path / "data" / "fashion-mnist", install_fake_fmnist(monkeypatch, tmp_path, 40))
    for name, raw in FILES.items():
        (tmp_path / name).write_bytes(raw)
    return tmp_path


def read_only_folder(tmp: Path) -> Path:
    """A folder this process cannot write into: a 0o555 folder, or (as root, who writes anywhere
    chmod allows) the read-only /sys."""
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK):
        return Path("/sys")
    try:
        (Path("/sys") / "nn2hw-probe").touch()
    except OSError:
        return Path("/sys")
    pytest.skip("no read-only folder here: running as root, and /sys is writable")


def argv_for(argv: list[str], tmp: Path) -> list[str]:
    ro = read_only_folder(tmp) if any("{ro}" in a for a in argv) else None
    return [a.replace("{tmp}", str(tmp)).replace("{ro}", str(ro)) for a in argv]


def check_message(code: int, out: str, err: str, words: list[str]) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert err.startswith("error:") and "\nfix:" in err, err
    flat = " ".join(err.split())
    for word in words:
        assert word in flat, (word, flat)
    assert " at at " not in flat and ".. " not in flat


def test_the_corpus_has_every_case_once():
    names = [name for name, _, _ in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)
    assert SUBPROCESS <= set(names)


@pytest.mark.parametrize("name, argv, words", [pytest.param(*case, id=case[0]) for case in CASES])
def test_bad_input_exits_2_with_cause_and_fix(tmp, capsys, monkeypatch, name, argv, words):
    if name == "markup-install-hint":
        monkeypatch.setitem(sys.modules, "onnx", None)  # the onnx extra is not installed
    full = argv_for(argv, tmp)
    code = main(full)
    out, err = capsys.readouterr()
    check_message(code, out, err, words)
    if "--storage" in full and "is read-only" in words:  # nothing was created before the refusal
        assert not (tmp / "s.db").exists()


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=n) for n, a, w in CASES if n in SUBPROCESS])
def test_bad_input_in_a_process_prints_only_the_message(tmp, argv, words):
    done = subprocess.run([sys.executable, "-m", "nn2hw", *argv_for(argv, tmp)], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    check_message(done.returncode, done.stdout, done.stderr, words)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error:") and lines[1].startswith("fix:"), lines
