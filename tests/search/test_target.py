"""The search's hardware target picks, per candidate, the best design that meets every spec."""

from __future__ import annotations

import pytest

from nn2hw.errors import InfeasibleError
from nn2hw.hardware import get_template
from nn2hw.search.target import HardwareTarget
from nn2hw.spec import Spec
from tests.hardware.asic.nets import mobile_block, resnet20


def test_an_asic_exploration_with_specs_returns_the_fastest_design_meeting_them():
    template, device = get_template("systolic")
    everything = template.explore(resnet20(), device)
    fastest = everything.best
    cap = 0.9 * fastest.area_mm2  # the fastest design is too big
    found = template.explore(resnet20(), device, specs=Spec(area_mm2=cap)).best
    assert found.area_mm2 <= cap and found.latency_ms >= fastest.latency_ms
    every = [c for c in everything.pareto if c.area_mm2 <= cap]
    assert every and found.latency_ms <= min(c.latency_ms for c in every)  # nothing on the front beats it


def test_unmeetable_asic_specs_say_what_is_reachable():
    template, device = get_template("systolic")
    with pytest.raises(InfeasibleError, match="best reachable are .* ms, .* mJ and .* mm\\^2") as err:
        template.explore(resnet20(), device, specs=Spec(energy_mj=1e-9))
    assert err.value.best_bound > 0


def test_the_target_meets_an_area_spec_the_fastest_chip_misses():
    nets = {"a": resnet20(), "b": mobile_block()}
    free = HardwareTarget.parse("hetero").best(nets)
    cap = 0.8 * free.area_mm2
    target = HardwareTarget.parse("hetero", specs={"area_mm2": cap})
    chosen = target.best(nets)
    assert chosen.area_mm2 <= cap and chosen.latency_ms >= free.latency_ms


def test_the_target_falls_back_to_the_fastest_design_when_no_design_meets_the_specs():
    free = HardwareTarget.parse("systolic").best(resnet20())
    missed = HardwareTarget.parse("systolic", specs={"energy_mj": 1e-9}).best(resnet20())
    assert missed.latency_ms == free.latency_ms  # the search then records the miss with real figures


def test_fpga_specs_leave_the_fastest_design():
    free = HardwareTarget.parse("fpga:zcu102").best(resnet20())
    tight = HardwareTarget.parse("fpga:zcu102", specs={"latency_ms": 1e-6}).best(resnet20())
    assert tight.latency_ms == free.latency_ms
