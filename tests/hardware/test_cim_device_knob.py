"""A cim design may name its own device (the co-search's device knob): its cell's area and
programming figures cost it, the record names it, an unknown one is refused, and the co-search's
knob axes offer every device and ADCs up to a full column sum's exact bits."""

from __future__ import annotations

import pytest

from nn2hw.errors import UnknownNameError
from nn2hw.hardware import get_template
from nn2hw.hardware.cim.data import components, devices
from nn2hw.hardware.cim.model import exact_adc_bits
from nn2hw.hardware.cim.template import CimDesign
from nn2hw.testing.workloads import conv_net as small_cnn


def test_a_design_naming_its_device_is_costed_with_that_cell():
    template, _ = get_template("cim:reram")
    workload = small_cnn()
    reram = template.cost(workload, CimDesign())
    pcm = template.cost(workload, CimDesign(device="pcm"))
    assert reram.device == "reram" and reram.design["device"] == "reram"  # a costed design names its device
    assert pcm.device == "pcm" and pcm.design["device"] == "pcm"
    cells = {name: components().cell_um2(device) for name, device in devices().items()}
    crossbar = {d.device: d.area_breakdown_mm2["crossbar"] for d in (reram, pcm)}
    assert crossbar["pcm"] / crossbar["reram"] == pytest.approx(cells["pcm"] / cells["reram"])
    assert pcm.latency_ms == reram.latency_ms  # the network fits: programming time does not count
    assert template.cost(workload, CimDesign(), device="pcm").design == pcm.design


def test_the_exploration_pins_the_device_a_knob_gives():
    template, _ = get_template("cim:reram")
    found = template.explore(small_cnn(), "reram", {"device": ["fefet"], "rows": [128]})
    assert found.best.device == "fefet" and all(p.device == "fefet" for p in found.pareto)
    assert template.explore(small_cnn(), "reram").best.device == "reram"  # the default grid keeps the device


def test_an_unknown_device_is_refused_naming_the_known_ones():
    with pytest.raises(UnknownNameError, match="reram"):
        CimDesign(device="sram")


def test_knob_axes_offer_every_device_and_exact_adcs():
    template, _ = get_template("cim")
    axes = template.knob_axes(small_cnn())
    assert set(axes["device"]) == set(devices())
    widest = max(exact_adc_bits(rows, 1, 1) for rows in axes["rows"])
    assert max(axes["adc_bits"]) >= widest  # a lossless ADC for the largest crossbar's 1-bit cells is offered
    assert set(template.variation_knobs) <= set(axes)
    assert "device" not in template.default_grid(small_cnn())  # the cost-only exploration keeps the given device
