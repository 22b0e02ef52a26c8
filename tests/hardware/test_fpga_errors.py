"""Bad input to the FPGA template and the analyze API: one-paragraph errors naming cause and fix."""

from __future__ import annotations

import pytest

from nn2hw.api import analyze
from nn2hw.errors import ConfigError, HardwareError, InfeasibleError, UnknownNameError
from nn2hw.hardware.fpga import TEMPLATE, FpgaDesign, parse_design
from nn2hw.workload import Layer, Workload
from tests.hardware.nets import conv, zoo_net


def run(design, **kw):
    return analyze(workload=zoo_net("resnet18"), design=design, **kw)


@pytest.mark.parametrize("design, resource, amount", [
    ("80,36,64,64,7,18,6,6", "DSP needs 2,880 of 2,520", "+360, +14.3%"),
    ("70,36,64,64,7,20,10,10", "port bits needs 640 of 512", "+128, +25.0%"),
    ("70,36,256,256,7,18,6,6", "BRAM18 needs", "of 1,824 18 Kb blocks"),
])
def test_design_exceeding_a_resource_names_it_and_by_how_much(design, resource, amount):
    with pytest.raises(HardwareError) as err:
        run(design)
    text = str(err.value)
    assert resource in text and amount in text and "does not fit zcu102" in text and "Fix:" in text


def test_published_design_fits_only_the_checks_it_was_made_with():
    with pytest.raises(HardwareError, match="BRAM18"):
        analyze(workload=zoo_net("resnet18"), design="70,36,256,256,7,18,6,6")
    result = analyze(workload=zoo_net("resnet18"), design="70,36,256,256,7,18,6,6", hw_params={"bram": "off"})
    assert any("does NOT fit zcu102" in note for note in result.cost.notes)


def test_grid_without_a_feasible_design_names_the_limit_and_the_closest_design():
    with pytest.raises(InfeasibleError) as err:
        TEMPLATE.explore(zoo_net("resnet18"), "zcu102", bram="hotnas")
    text = str(err.value)
    assert "BRAM18 (HotNAS formula) is the limiting resource" in text
    assert "closest design, [40,63,32,32,7,2,2,2], needs 2,726" in text and "+902, +49.5%" in text
    assert err.value.best_bound == pytest.approx(2726 / 1824)


def test_tk_below_the_largest_kernel_in_a_grid_is_reported():
    with pytest.raises(InfeasibleError, match="Tk"):
        TEMPLATE.explore(zoo_net("alexnet"), "zcu102", grid={"Tk": 5})


@pytest.mark.parametrize("text, match", [
    ("70,0,64,64,7,18,6,6", "Tn must be a positive integer, got 0"),
    ("70,-3,64,64,7,18,6,6", "Tn must be a positive integer, got -3"),
    ("70,abc,64,64,7,18,6,6", "Tn must be a positive integer, got 'abc'"),
    ("70,36.5,64,64,7,18,6,6", "Tn must be a positive integer, got '36.5'"),
    ("70,36,64", "needs 8 values"),
    ("70,,64,64,7,18,6,6", "not a comma-separated list"),
])
def test_non_positive_or_non_numeric_design_values(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_design(text)


@pytest.mark.parametrize("options, match", [
    ({"clock_mhz": "fast"}, "clock_mhz must be a positive number, got 'fast'"),
    ({"clock_mhz": 0}, "clock_mhz must be a positive number"),
    ({"lutram_share": 2}, "lutram_share must be in"),
    ({"dsp": "-1"}, "dsp must be a positive integer"),
    ({"variant": "hed"}, "Unknown latency variant 'hed'. Did you mean 'head'"),
    ({"bram": "realstic"}, "Unknown BRAM model 'realstic'. Did you mean 'realistic'"),
    ({"linear": "fpga"}, "linear must be one of host, engine"),
    ({"compat_shapes": "maybe"}, "compat_shapes must be true or false"),
    ({"Tmm": 3}, "fpga template has no option or design parameter 'Tmm'. Did you mean 'Tm'"),
])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,11,18,6,2", "zcu102", **options)


def test_bad_hw_params_through_the_api():
    with pytest.raises(ConfigError, match="Tm must be a positive integer"):
        run("70,36,64,64,7,18,6,6", hw_params={"Tm": "-4"})
    with pytest.raises(ConfigError, match="word_bits must be 16"):
        run("70,36,64,64,7,18,6,6", hw_params={"word_bits": "8"})
    with pytest.raises(ConfigError, match="Both a design and --explore"):
        run("70,36,64,64,7,18,6,6", explore=True)


def test_kernel_larger_than_tk_names_the_layer_and_the_fix():
    with pytest.raises(HardwareError) as err:
        TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,7,18,6,2", "zcu102")
    text = str(err.value)
    assert "'features.0' has a 11x11 kernel, larger than the standard engine's Tk=7" in text
    assert "Raise Tk to at least 11" in text


def test_depthwise_kernel_is_checked_against_its_engine():
    net = Workload("w", (conv("dw", 8, 8, 14, k=5, groups=8),))
    with pytest.raises(HardwareError, match="depthwise engine's Tk=3.*Tk_d"):
        TEMPLATE.cost(net, parse_design("16,8,16,16,5,4,2,2", "16,1,16,16,3"), "zcu102")


def test_layer_kinds_the_template_cannot_run():
    dilated = Layer(**{**conv("atrous", 8, 8, 16, pad=2).to_dict(), "dilation_h": 2, "dilation_w": 2})
    with pytest.raises(HardwareError, match="'atrous' is a dilated convolution"):
        TEMPLATE.cost(Workload("w", (dilated,)), "16,8,16,16,3,4,2,2", "zcu102")
    wide = Layer(**{**conv("wide", 8, 8, 16).to_dict(), "weight_bits": 32})
    with pytest.raises(HardwareError, match="'wide' has 32-bit operands"):
        TEMPLATE.cost(Workload("w", (wide,)), "16,8,16,16,3,4,2,2", "zcu102")
    TEMPLATE.cost(Workload("w", (wide,)), FpgaDesign(16, 8, 16, 16, 3, 4, 2, 2, word_bits=32), "zcu102")


def test_unknown_device_and_template():
    with pytest.raises(ConfigError, match="no device 'zcu104'.*Did you mean 'zcu102'"):
        analyze(workload=zoo_net("alexnet"), hardware="fpga:zcu104")
    with pytest.raises(UnknownNameError, match="Unknown hardware template 'fgpa'"):
        analyze(workload=zoo_net("alexnet"), hardware="fgpa:zcu102")


def test_depthwise_ports_must_match():
    with pytest.raises(ConfigError, match="share one port split"):
        parse_design("160,12,32,32,3,10,10,10", "576,1,32,32,3,10,10,12")


def test_malformed_grids():
    from nn2hw.hardware.fpga import FpgaGrid

    with pytest.raises(ConfigError, match="lacks \\['Wp', 'Ip', 'Op'\\]"):
        FpgaGrid((("Tm", (70,)), ("Tr", (32,)), ("Tc", (32,))))
    with pytest.raises(ConfigError, match="Unknown grid parameter 'Tx'. Did you mean"):
        TEMPLATE.explore(zoo_net("alexnet"), "zcu102", grid={"Tx": 3})
    with pytest.raises(ConfigError, match="grid parameter Tr must be a positive integer, got 'big'"):
        TEMPLATE.explore(zoo_net("alexnet"), "zcu102", grid={"Tr": "32,big"})
