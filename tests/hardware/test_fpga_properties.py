"""Properties of the FPGA cost model and its exploration (hypothesis), and what is *not* true.

True: a larger DSP, BRAM, LUTRAM or port budget never gives a slower best design (same grid);
fewer channels never add MACs or cycles; wider ports never slow a layer; stride-1 layers never
run faster than their MACs over the MAC units in use; the returned best design fits every
enforced limit. Not true, and tested as such: a bigger tile can be slower for a small layer, a
bigger Tm can slow a weight-bound layer, more DSPs can be slower when the grid derives
Tn from them (HotNAS), and HotNAS's HEAD/v0/v1 formulas divide an output tile
by the stride, so a strided layer can beat the MAC bound.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nn2hw.errors import InfeasibleError
from nn2hw.hardware.fpga import BRAM_MODES, TEMPLATE, VARIANTS, FpgaDesign, FpgaGrid, enumerate_grid, get_device
from nn2hw.workload import Workload
from tests.hardware.nets import chain, conv

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def networks(draw) -> Workload:
    """A chain of 1-4 standard convolutions with consistent channels and sizes."""
    size = draw(st.integers(4, 40))
    cin = draw(st.integers(1, 48))
    layers = []
    for i in range(draw(st.integers(1, 4))):
        k = draw(st.sampled_from([1, 3, 5]))
        stride = draw(st.sampled_from([1, 1, 2]))
        cout = draw(st.integers(1, 96))
        layer = conv(f"c{i}", cin, cout, size, k=k, stride=stride)
        layers.append(layer)
        size, cin = layer.out_h, cout
    return chain("net", layers)


designs = st.builds(FpgaDesign, Tm=st.integers(1, 80), Tn=st.integers(1, 40), Tr=st.integers(1, 48),
                    Tc=st.integers(1, 48), Tk=st.just(5), Wp=st.integers(1, 16), Ip=st.integers(1, 16),
                    Op=st.integers(1, 16))
variants = st.sampled_from(VARIANTS)


def small_grid(draw) -> FpgaGrid:
    pick = lambda lo, hi: tuple(sorted(set(draw(st.lists(st.integers(lo, hi), min_size=1, max_size=2)))))  # noqa: E731
    ranges = {"Tm": pick(1, 64), "Tn": pick(1, 32), "Tr": pick(2, 48), "Tc": pick(2, 48), "Tk": (5,),
              "Wp": pick(1, 16), "Ip": pick(1, 16), "Op": pick(1, 16)}
    return FpgaGrid(tuple(ranges.items()))


@FAST
@given(net=networks(), data=st.data(), bram=st.sampled_from(BRAM_MODES),
       resource=st.sampled_from(["dsp", "bram18", "lutram", "port_bits"]), factor=st.floats(1.0, 4.0))
def test_larger_budget_never_gives_a_slower_best_design(net, data, bram, resource, factor):
    grid = small_grid(data.draw)
    budget = {"dsp": data.draw(st.integers(200, 5000)), "bram18": data.draw(st.integers(50, 2000)),
              "lutram": data.draw(st.integers(2_000, 150_000)), "port_bits": data.draw(st.integers(128, 1024))}
    try:
        small = TEMPLATE.explore(net, "zcu102", grid=grid, bram=bram, **budget)
    except InfeasibleError:
        assume(False)
    larger = {**budget, resource: math.ceil(budget[resource] * factor)}
    big = TEMPLATE.explore(net, "zcu102", grid=grid, bram=bram, **larger)
    assert big.best.total_cycles <= small.best.total_cycles * (1 + 1e-12)
    assert big.n_feasible >= small.n_feasible


@FAST
@given(net=networks(), design=designs, variant=variants, data=st.data())
def test_fewer_channels_never_add_macs_or_cycles(net, design, variant, data):
    layer = data.draw(st.sampled_from(net.compute_layers))
    assume(layer.out_channels > 1)
    fewer = data.draw(st.integers(1, layer.out_channels - 1))
    cut = net.with_changes({layer.name: {"out_channels": fewer}})
    before = TEMPLATE.cost(net, design, "zcu102", variant=variant)
    after = TEMPLATE.cost(cut, design, "zcu102", variant=variant)
    assert after.macs <= before.macs
    for a, b in zip(after.layers, before.layers):
        assert a.cycles <= b.cycles * (1 + 1e-12)


@FAST
@given(net=networks(), design=designs, variant=variants, port=st.sampled_from(["Wp", "Ip", "Op"]),
       extra=st.integers(1, 16), bits=st.sampled_from([4, 8, 16]))
def test_wider_ports_never_slow_a_layer(net, design, variant, port, extra, bits):
    net = net.with_changes({layer.name: {"weight_bits": bits} for layer in net.compute_layers})
    wider = FpgaDesign(**{**design.to_dict(), port: getattr(design, port) + extra})
    narrow = TEMPLATE.cost(net, design, "zcu102", variant=variant)
    wide = TEMPLATE.cost(net, wider, "zcu102", variant=variant)
    for a, b in zip(wide.layers, narrow.layers):
        assert a.cycles <= b.cycles * (1 + 1e-12)


@FAST
@given(net=networks(), design=designs, variant=variants)
def test_cycles_never_beat_macs_over_mac_units_in_use(net, design, variant):
    result = TEMPLATE.cost(net, design, "zcu102", variant=variant)
    for layer, cost in zip(net.compute_layers, result.layers):
        if layer.stride_h > 1 and variant in ("head", "v0", "v1"):
            continue  # the authors' formulas divide an output tile by the stride (see the test below)
        units = min(design.Tm, layer.out_channels) * min(design.Tn, layer.in_channels)
        assert cost.cycles >= layer.macs / units * (1 - 1e-12)


def test_head_formula_undercounts_strided_compute():
    # HEAD: tComp = K^2 * ceil(min(Tr, R+2P)/S)^2 with R the *output* size, so a stride-2 layer computes
    # a quarter of its outputs per tile: here cycles fall below MACs / MAC units in use.
    layer = conv("s2", 3, 64, 224, k=7, stride=2)  # ResNet-18 conv1
    design = FpgaDesign(70, 36, 256, 256, 7, 18, 6, 6)
    cost = TEMPLATE.cost(Workload("w", (layer,)), design, "zcu102", variant="head").layers[0]
    assert cost.cycles < layer.macs / (64 * 3)
    fnas = TEMPLATE.cost(Workload("w", (layer,)), design, "zcu102", variant="fnas").layers[0]
    assert fnas.cycles >= layer.macs / (64 * 3)


@FAST
@given(net=networks(), data=st.data(), bram=st.sampled_from(BRAM_MODES))
def test_best_design_fits_every_limit_and_is_the_fastest_that_does(net, data, bram):
    grid = small_grid(data.draw)
    device = get_device("pynq-z1")
    try:
        found = TEMPLATE.explore(net, device, grid=grid, bram=bram)
    except InfeasibleError:
        found = None
    designs_, _ = enumerate_grid(grid, device, 5, 1)
    costs = [TEMPLATE.cost(net, designs_.design(i), device, bram=bram) for i in range(len(designs_))]
    fitting = [c for c in costs if c.fits]
    if found is None:
        assert not fitting
        return
    assert found.best.fits and all(r.used <= r.available for r in found.best.resources)
    assert found.best.total_cycles == pytest.approx(min(c.total_cycles for c in fitting), rel=1e-9)
    assert all(p.fits for p in found.pareto)


def test_a_bigger_tile_can_be_slower_for_a_small_layer():
    # R = C = 10: Tr = Tc = 6 loads 2x2 tiles of 6x6 = 144 rows*cols; 9x9 tiles load 2x2 x 81 = 324
    layer = Workload("w", (conv("small", 64, 64, 10, k=1),))
    six = TEMPLATE.cost(layer, FpgaDesign(64, 64, 6, 6, 1, 8, 1, 8), "zcu102").layers[0]
    nine = TEMPLATE.cost(layer, FpgaDesign(64, 64, 9, 9, 1, 8, 1, 8), "zcu102").layers[0]
    assert six.bottleneck == nine.bottleneck == "I"
    assert nine.cycles > six.cycles


def test_a_bigger_tm_can_slow_a_weight_bound_layer():
    # tW = Tm*Tn*K^2/Wp has no min(): a layer with 16 output channels pays for all Tm lanes
    layer = Workload("w", (conv("narrow", 256, 16, 7, k=3),))
    small = TEMPLATE.cost(layer, FpgaDesign(16, 32, 7, 7, 3, 2, 16, 16), "zcu102").layers[0]
    large = TEMPLATE.cost(layer, FpgaDesign(64, 32, 7, 7, 3, 2, 16, 16), "zcu102").layers[0]
    assert small.bottleneck == large.bottleneck == "W"
    assert large.cycles > small.cycles


def test_more_dsps_can_be_slower_when_the_grid_derives_tn():
    # HotNAS derives Tn = floor(DSP / Tm), so the grid itself changes with the budget: ResNet-18's channels
    # (64..512) divide by Tn = 32 (2280 DSPs) but not by Tn = 36 (2520 DSPs), which wastes MAC lanes.
    from tests.hardware.nets import zoo_net

    fewer = TEMPLATE.explore(zoo_net("resnet18"), "zcu102", dsp=2280, bram="off", clock_mhz=100).best
    more = TEMPLATE.explore(zoo_net("resnet18"), "zcu102", dsp=2520, bram="off", clock_mhz=100).best
    assert (fewer.design["Tn"], more.design["Tn"]) == (32, 36)
    assert fewer.latency_ms < more.latency_ms  # 14.14942 < 14.58025 ms
