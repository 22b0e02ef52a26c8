"""Golden values of the FPGA template, exact to the published digits.

Sources: reference notes ``co-design-papers.md`` section 1 (FPGA'15 AlexNet), 2.10 (the HotNAS DSE
result file ``results/exploration_res/exploration_res``) and 2.11/2.12 (re-implementations of the
authors' code at three commits). All HotNAS values are at the DSE files' 100 MHz convention.
"""

from __future__ import annotations

import pytest

from nn2hw.hardware.fpga import TEMPLATE, FpgaDesign, parse_design
from tests.hardware.nets import fpga15_alexnet, zoo_net

ALEXNET = "70,36,64,32,11,18,6,2"  # notes 2.10: alexnet best HW, 4.0483 ms
RESNET18 = "70,36,64,64,7,18,6,6"  # notes 2.10: resnet18 best HW, 12.5744 ms
VGG16 = "70,36,256,32,3,10,6,10"  # notes 2.10: vgg16 best HW, 91.02528 ms
VGG11 = "130,19,64,64,3,10,6,14"  # notes 2.11 item 2


def cost(net: str, design, **options):
    return TEMPLATE.cost(zoo_net(net), design, "zcu102", clock_mhz=100, bram="off", **options)


@pytest.mark.parametrize("variant", ["head", "v0"])
def test_alexnet_404830_cycles(variant):
    # notes 2.11 item 1: identical under v0 and HEAD
    result = cost("alexnet", ALEXNET, variant=variant)
    assert result.total_cycles == pytest.approx(404_830, abs=1e-6)
    assert round(result.latency_ms, 4) == 4.0483


@pytest.mark.parametrize("variant, golden", [("head", 12.585792), ("v1", 29.288768), ("v0", 29.970752)])
def test_mobilenet_v2_two_engines(variant, golden):
    # notes 2.11 item 3: dconv [576,1,32,32,3,10,10,10] + cconv [160,12,32,32,3,10,10,10]
    design = parse_design("160,12,32,32,3,10,10,10", "576,1,32,32,3,10,10,10")
    result = cost("mobilenet_v2", design, variant=variant)
    assert round(result.latency_ms, 6) == golden
    assert result.latency_ms == pytest.approx(golden, rel=1e-12)
    engines = {layer.engine for layer in result.layers}
    assert engines == {"cconv", "dconv"}


@pytest.mark.parametrize("net, design, variant, golden, digits", [
    ("vgg16", VGG16, "v0", 91.02528, 5),  # notes 2.11 item 2 (matches the file)
    ("vgg16", VGG16, "head", 89.07264, 5),
    ("vgg11", VGG11, "v0", 42.96029, 5),
    ("vgg11", VGG11, "head", 42.77304, 5),
    ("resnet18", RESNET18, "head", 14.8816, 4),  # notes 2.11 item 4, correct shapes
    ("resnet18", RESNET18, "v0", 14.9536, 4),
])
def test_published_latencies(net, design, variant, golden, digits):
    assert round(cost(net, design, variant=variant).latency_ms, digits) == golden


def test_resnet18_file_value_needs_the_shape_bug():
    # notes 2.11 item 4: 12.5744 only with v0 plus the sequential shape propagation
    compat = cost("resnet18", RESNET18, variant="v0", compat_shapes=True)
    assert round(compat.latency_ms, 4) == 12.5744
    assert compat.total_cycles == pytest.approx(1_257_440, abs=1e-6)
    assert any("compat-shapes" in note for note in compat.notes)


def test_fpga15_alexnet_compute_roof():
    # notes section 1: Tm=64, Tn=7, approximate formula -> 2,005,892 cycles = 20.06 ms @100 MHz (fp32)
    design = FpgaDesign(64, 7, 13, 13, 11, 4, 4, 4, word_bits=32)
    result = TEMPLATE.cost(fpga15_alexnet(), design, "vc707", variant="fpga15")
    assert [layer.cycles for layer in result.layers] == [732_050, 510_300, 337_662, 255_528, 170_352]
    assert result.total_cycles == 2_005_892
    assert round(result.latency_ms, 2) == 20.06
    assert result.clock_mhz == 100  # the VC707 preset's clock, as in FPGA'15
    dsp = next(r for r in result.resources if r.name == "DSP")
    assert dsp.used == 2240 and dsp.available == 2800  # FPGA'15: DSP 2240/2800
    assert {u.name for u in result.uncosted} == {"pool1", "pool2"}


@pytest.mark.parametrize("net, golden, design", [
    ("resnet18", 12.5744, [70, 36, 64, 64, 7, 18, 6, 6]),
    ("alexnet", 4.0483, [70, 36, 64, 32, 11, 18, 6, 2]),  # 6 tied optima: loop order picks this one
])
def test_dse_reproduces_published_optimum(net, golden, design):
    # notes 2.12: v0 + shape bug + the swapped-argument BRAM check gives every published (design, latency)
    found = TEMPLATE.explore(zoo_net(net), "zcu102", variant="v0", compat_shapes=True, bram="as-run",
                             clock_mhz=100)
    assert round(found.best.latency_ms, 4) == golden
    assert [found.best.design[f] for f in ("Tm", "Tn", "Tr", "Tc", "Tk", "Wp", "Ip", "Op")] == design
    assert found.n_designs == 9000


@pytest.mark.parametrize("bram, golden, tiles", [
    ("off", 14.58025, (256, 256)),  # notes 2.12: head optimum without a BRAM test
    ("as-run", 14.8816, (64, 64)),  # ... and with the as-run test
])
def test_dse_head_optima(bram, golden, tiles):
    found = TEMPLATE.explore(zoo_net("resnet18"), "zcu102", bram=bram, clock_mhz=100)
    assert round(found.best.latency_ms, 5) == golden
    assert (found.best.design["Tm"], found.best.design["Tn"]) == (70, 36)
    assert (found.best.design["Tr"], found.best.design["Tc"]) == tiles


@pytest.mark.parametrize("net, golden", [("resnet18", 12.27305), ("alexnet", 3.98175)])
def test_dse_without_bram_check_misses_the_published_optima(net, golden):
    # notes 2.12: the grid with DSP and port limits only gives these, not the published designs
    found = TEMPLATE.explore(zoo_net(net), "zcu102", variant="v0", compat_shapes=True, bram="off", clock_mhz=100)
    assert round(found.best.latency_ms, 5) == golden


def test_mobilenet_dse_reproduces_published_pair():
    # notes 2.10: mobilenet_v2 12.585792 at dconv [576,...] + cconv [160,12,...], HEAD formulas
    found = TEMPLATE.explore(zoo_net("mobilenet_v2"), "zcu102", bram="as-run", clock_mhz=100)
    assert round(found.best.latency_ms, 6) == 12.585792
    assert found.best.design["dw"]["Tm"] == 576 and found.best.design["Tm"] == 160
    assert found.best.design["Tn"] == 12
