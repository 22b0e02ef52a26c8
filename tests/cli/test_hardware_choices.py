"""No silent hardware choices (issue 14 item 7): a design preset is the design an exploration and a
search work around, ``search --hardware-file`` reads a file as ``analyze`` does, and a strategy
option of the wrong type names the option, its type and valid values."""

from __future__ import annotations

import re

import pytest

from nn2hw.api import analyze
from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.hardware.asic.technology import preset_params
from tests.data.helpers import install_fake_fmnist, write_files

NV_FULL = preset_params("nvdla", "nv_full")


def test_explore_keeps_the_preset_and_varies_only_the_axes_given():
    pinned = analyze(model="resnet20", hardware="nvdla", hw_params={"preset": "nv_full"}, explore=True)
    assert pinned.exploration.n_designs == 1 and pinned.cost.design == NV_FULL
    assert "around preset nv_full" in pinned.design_source
    around = analyze(model="resnet20", hardware="nvdla", hw_params={"preset": "nv_full", "atomic_k": "8,16,32"},
                     explore=True)
    assert around.exploration.n_designs == 3
    assert {k: v for k, v in around.cost.design.items() if k != "atomic_k"} == \
        {k: v for k, v in NV_FULL.items() if k != "atomic_k"}
    free = analyze(model="resnet20", hardware="nvdla", explore=True)  # no preset: the default grid
    assert free.exploration.n_designs > 3 and free.cost.design != NV_FULL


@pytest.fixture
def data(monkeypatch, tmp_path):
    write_files(tmp_path / "data" / "fashion-mnist", install_fake_fmnist(monkeypatch, tmp_path, 40))
    return tmp_path


def base_ms_of_search(capsys, tmp_path, *hardware: str) -> str:
    """The base model's latency a search reports when it refuses an impossible spec: what it costs
    every candidate on (the search stops before any training)."""
    code = main(["search", "--model", "resnet20", "--dataset", "fashion-mnist", "--latency-ms", "0.0001",
                 "--out", str(tmp_path / "o"), *hardware])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "No candidate can meet" in err, err
    found = re.search(r"the base model needs ([0-9.e-]+) ms", err)
    assert found, err
    return found.group(1)


def test_search_costs_on_the_preset_and_reads_a_hardware_file_as_analyze(data, capsys, tmp_path):
    chip = tmp_path / "chip.yaml"
    chip.write_text("template: nvdla\ntechnology: 45nm\nparams: {preset: nv_full}\n")
    analyzed = analyze(model="resnet20", dataset="fashion-mnist", hardware_file=chip)
    assert analyzed.cost.design == NV_FULL
    from_file = base_ms_of_search(capsys, tmp_path, "--hardware-file", str(chip))
    from_preset = base_ms_of_search(capsys, tmp_path, "--hardware", "nvdla", "--hw-param", "preset=nv_full")
    explored = base_ms_of_search(capsys, tmp_path, "--hardware", "nvdla")
    assert from_file == from_preset == f"{analyzed.cost.latency_ms:.6g}"
    assert explored != from_preset  # the preset is not replaced by the default grid


def test_a_strategy_option_of_the_wrong_type_names_its_type_and_range():
    from nn2hw.search.strategies._reinforce import FnasReinforce, Reinforce
    from nn2hw.search.strategies.base import checked_options

    with pytest.raises(ConfigError, match=r"option lr must be a number > 0, got 'abc'") as info:
        Reinforce.parse_options({"lr": "abc"})
    assert "lr=0.01" in info.value.fix
    with pytest.raises(ConfigError, match=r"option hidden must be an integer >= 1, got 3.5"):
        FnasReinforce.parse_options({"hidden": 3.5})
    with pytest.raises(ConfigError, match=r"beta=0.8"):  # the subclass's own default
        FnasReinforce.parse_options({"beta": True})
    assert Reinforce.parse_options({"lr": 1, "baseline": "hotnas"}) == {"lr": 1, "baseline": "hotnas"}
    unknown = {"momentum": "left to the strategy, which refuses it"}
    assert checked_options("reinforce", unknown, (Reinforce,)) == unknown
