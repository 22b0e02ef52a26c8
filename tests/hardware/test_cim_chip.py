"""nn2hw's ISAAC-like chip against ISAAC's published tile and chip figures (benchmarks/cim_chip.py,
docs/cim.md "How close to a published chip"): every ratio stays in its documented band, so a change
to the component tables or the model that moves one is noticed; the bands are narrow enough to tell
a different chip apart."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "cim_chip.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cim_chip_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


chip = _load()


@pytest.fixture(scope="module")
def template():
    return chip.cim_template()


def test_the_isaac_like_chip_stays_in_its_documented_bands(template):
    figures = chip.isaac_figures(chip.chip_peak(template, chip.ISAAC_CE)) + chip.nacim_figures(template)
    outside = [f"{f.name}: {f.ratio:.3f} not in {f.band}" for f in figures if not f.within_band]
    assert not outside, "update docs/cim.md and the bands in benchmarks/cim_chip.py: " + "; ".join(outside)


def test_the_full_chip_layer_keeps_every_adc_busy_as_isaacs_table_does(template):
    """ISAAC's 8 ADCs per IMA draw 16 mW while converting (Table I); the ISAAC-like chip is ADC-bound,
    so its ADC power per tile is 12 x 16 mW, up to the table's rounding of 1.67 pJ per conversion."""
    peak = chip.chip_peak(template, chip.ISAAC_CE)
    assert peak.power_w["adc"] / peak.tiles * 1e3 == pytest.approx(192.0, rel=5e-3)
    assert peak.ops_per_s == pytest.approx(2 * 16128 * 128 * 16 / (16 * 129 / 1.2e9), rel=1e-9)


@pytest.mark.parametrize("change", [{"tiles": 128}, {"adc_bits": 6}, {"signed": "differential"},
                                    {"cell_bits": 1}])
def test_the_bands_tell_a_different_chip_apart(template, change):
    figures = chip.isaac_figures(chip.chip_peak(template, {**chip.ISAAC_CE, **change}))
    assert any(not f.within_band for f in figures), f"{change} passes every ISAAC band: they are too wide"


def test_nacims_figure_lies_within_nn2hws_span(template):
    """A plausibility check only: NACIM's design point was not found (docs/cim.md)."""
    low, high = chip.nacim_span(template)
    assert low < chip.NACIM_TOPS_PER_W < high
