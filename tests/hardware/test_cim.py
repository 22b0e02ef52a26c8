"""The computing-in-memory crossbar template: array counts by hand, energy and area as the sums of
the component tables, orderings (ADC bits, crossbar size), device presets, the CLI's JSON and its
errors, and the conformance suite."""

from __future__ import annotations

import json
import math

import pytest

from nn2hw.cli import main
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware import TEMPLATES, get_template
from nn2hw.hardware.cim import CimDesign, components, devices
from nn2hw.hardware.cim.model import ENERGY_PARTS, exact_adc_bits
from nn2hw.testing import TemplateContract
from nn2hw.testing.workloads import conv_net
from nn2hw.workload import Layer, OpKind, Workload

CIM = TEMPLATES.get("cim")


def _conv(name, cin, cout, size, kernel=3, groups=1, bits=8):
    return Layer(name, OpKind.CONV, ("x",), "Conv2d", in_channels=cin, out_channels=cout, in_h=size, in_w=size,
                 out_h=size, out_w=size, kernel_h=kernel, kernel_w=kernel, pad_h=kernel // 2, pad_w=kernel // 2,
                 groups=groups, input_bits=bits, weight_bits=bits, output_bits=bits)


def _linear(name, cin, cout, bits=8):
    return Layer(name, OpKind.LINEAR, ("x",), "Linear", in_channels=cin, out_channels=cout, input_bits=bits,
                 weight_bits=bits, output_bits=bits)


def _net(*layers):
    x = Layer("x", OpKind.INPUT, (), "input", in_channels=16, out_channels=16, in_h=8, in_w=8, out_h=8, out_w=8)
    return Workload("hand", (x, *layers), (1, 16, 8, 8))


HAND = _net(_conv("c3", 16, 32, 8), _linear("fc", 64, 10), _conv("dw", 32, 32, 8, groups=32))


@pytest.mark.parametrize(("signed", "cell_bits", "expected"), [
    # c3: T = 9*16 = 144 rows -> 2 row blocks; 32 channels x 4 slices = 128 columns
    # fc: 64 rows -> 1 block; 10 x 4 = 40 columns; dw: 32 groups of 9 rows x 4 columns
    ("differential", 2, {"c3": 2 * 1 * 2, "fc": 1 * 1 * 2, "dw": 32 * 2}),
    ("offset", 2, {"c3": 2 * 2, "fc": 1, "dw": 32}),  # 127 data columns: 128 needs two blocks
    ("polarized", 2, {"c3": 2, "fc": 1, "dw": 32}),
    ("polarized", 1, {"c3": 2 * 2, "fc": 1, "dw": 32}),  # 8 slices: 256 columns
])
def test_array_counts_by_hand(signed, cell_bits, expected):
    cost = CIM.cost(HAND, {"rows": 128, "cols": 128, "cell_bits": cell_bits, "signed": signed}, "reram")
    assert {layer.name: layer.arrays for layer in cost.layers} == expected
    assert cost.to_dict()["arrays"] == sum(expected.values())


def test_energy_and_area_are_the_sums_of_the_component_tables():
    comp = components()
    design = {"rows": 64, "cols": 32, "cell_bits": 2, "adc_bits": 6, "dac_bits": 2, "adcs_per_array": 4,
              "signed": "differential", "tiles": 2}
    fc = _linear("fc", 100, 12, bits=8)
    cost = CIM.cost(_net(fc), design, "reram")
    (layer,) = cost.layers
    slices, cycles = 4, 4  # 8 / 2 bits per cell, 8 / 2 bits per DAC
    row_blocks, col_blocks, pair = 2, 2, 2  # ceil(100/64), ceil(12*4/32)
    arrays = row_blocks * col_blocks * pair
    steps = 1 * cycles
    conversions = steps * row_blocks * 12 * slices * pair
    adc_pj = 1.20  # 6-bit row of the table
    moved = 100 * 8 + 12 * 8
    expected = {
        "crossbar": steps * arrays * comp.crossbar_read_pj_128x128 * 64 * 32 / 128**2,
        "dac": steps * 100 * col_blocks * pair * comp.dac_pj_1bit * 2,
        "adc": conversions * adc_pj,
        "shift_add": (conversions + 12 * (row_blocks * pair - 1)) * comp.shift_add_pj,
        "edram": moved * comp.edram_pj_per_bit, "bus": moved * comp.bus_pj_per_bit,
        "router": 12 * 8 * comp.router_pj_per_bit, "program": 0.0,
    }
    assert set(layer.energy_breakdown_mj) == set(ENERGY_PARTS)
    for part, pj in expected.items():
        assert layer.energy_breakdown_mj[part] == pytest.approx(pj * 1e-9, rel=1e-9), part
    assert cost.energy_mj == pytest.approx(sum(expected.values()) * 1e-9, rel=1e-9)
    chip = 2 * comp.arrays_per_tile
    cell_um2 = devices()["reram"].cell_f2 * (comp.node_nm * 1e-3) ** 2
    area = {"crossbar": chip * 64 * 32 * cell_um2 * 1e-6, "adc": chip * 4 * 626.91 * 1e-6,
            "dac": chip * 64 * comp.dac_um2_1bit * 2 * 1e-6, "shift_add": chip * 4 * comp.shift_add_um2 * 1e-6,
            "edram": 2 * comp.edram_mm2_per_tile, "bus": 2 * comp.bus_mm2_per_tile,
            "router": 2 * comp.router_mm2_per_tile}
    assert cost.area_breakdown_mm2 == pytest.approx(area, rel=1e-9)
    assert cost.area_mm2 == pytest.approx(sum(area.values()), rel=1e-9)
    # a step is max(100 ns read, ceil(32 columns / 4 ADCs) x 6/8 / 1.2 ns) = 100 ns
    assert layer.latency_ms == pytest.approx(steps * 100e-6, rel=1e-9) and layer.bottleneck == "crossbar"


def test_more_adc_bits_never_lower_energy_or_latency():
    previous = None
    for bits in range(1, 17):
        cost = CIM.cost(conv_net(), {"adc_bits": bits, "adcs_per_array": 1}, "reram")
        now = (cost.energy_mj, cost.latency_ms, cost.area_mm2)
        if previous is not None:
            assert all(b >= a for a, b in zip(previous, now)), (bits, previous, now)
        previous = now
    assert CIM.cost(conv_net(), {"adc_bits": 16}, "reram").layers[0].bottleneck == "adc"


@pytest.mark.parametrize("signed", ["differential", "offset", "polarized"])
def test_a_larger_crossbar_never_needs_more_arrays(signed):
    sides = (8, 16, 32, 64, 128, 256, 512)
    for cell_bits in (1, 2, 4):
        counts = {(r, c): [layer.arrays for layer in CIM.cost(HAND, {"rows": r, "cols": c, "cell_bits": cell_bits,
                                                                       "signed": signed}, "reram").layers]
                  for r in sides for c in sides}
        for (r, c), arrays in counts.items():
            for bigger in ((r * 2, c), (r, c * 2)):
                if bigger in counts:
                    assert all(b <= a for a, b in zip(arrays, counts[bigger])), (r, c, bigger)


def test_presets_load_with_a_source_for_every_number():
    assert set(CIM.devices()) == {"reram", "fefet", "pcm"}
    for name, device in devices().items():
        assert get_template(f"cim:{name}") == (CIM, name)
        numbers = {k: v for k, v in device.to_dict().items() if k not in ("name", "description")}
        assert set(numbers) <= set(device.sources), name
        for key, value in numbers.items():
            assert device.sources[key].startswith("Gap") == (value is None), (name, key)
        assert device.on_off_ratio > 1 and device.max_cell_bits >= 1
    assert devices()["fefet"].max_cell_bits == 2 and devices()["reram"].max_cell_bits == 4


def test_a_network_larger_than_the_chip_is_programmed_in_rounds():
    big = _net(_conv("wide", 64, 512, 8))  # 5 row x 16 column blocks x 2 = 160 arrays > 96 per tile
    fits = CIM.cost(big, {"tiles": 64}, "reram")
    small = CIM.cost(big, {"tiles": 1}, "reram")
    assert fits.layers[0].rounds == 1 and fits.layers[0].energy_breakdown_mj["program"] == 0
    assert small.layers[0].rounds == math.ceil(fits.layers[0].arrays / 96) > 1
    assert small.layers[0].bottleneck == "array-count" and small.latency_ms > fits.latency_ms
    assert small.layers[0].energy_breakdown_mj["program"] > 0 and any("programmed" in n for n in small.notes)


def test_exact_adc_resolution():
    assert exact_adc_bits(128, 2, 1) == 9  # 128 x 3 x 1 + 1 = 385 levels
    assert exact_adc_bits(128, 1, 1) == 8  # ISAAC-style 1-bit cells and inputs: 129 levels


def test_analyze_cli_json_has_the_keys(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["analyze", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", "cim:pcm",
                 "--hw-param", "rows=128", "--hw-param", "adc_bits=6", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"latency_ms", "energy_mj", "area_mm2", "arrays", "device_model"} <= set(data)
    assert data["design"]["adc_bits"] == 6 and data["device"] == "pcm"
    assert all(isinstance(layer["arrays"], int) and layer["arrays"] > 0 for layer in data["layers"])
    assert data["energy_mj"] == pytest.approx(sum(layer["energy_mj"] for layer in data["layers"]))


@pytest.mark.parametrize(("params", "hardware", "words"), [
    (["sigma=1.5"], "cim:reram", ["sigma=1.5", "outside"]),
    (["sigma=-0.1"], "cim:reram", ["sigma", "outside"]),
    (["on_off_ratio=1"], "cim:reram", ["on/off ratio 1", "outside"]),
    (["adc_bits=0"], "cim:reram", ["adc_bits=0", "1..16"]),
    (["adc_bits=17"], "cim:reram", ["adc_bits=17"]),
    (["cell_bits=3"], "cim:fefet", ["fefet", "at most 2 bit"]),
    (["cols=1", "signed=offset"], "cim:reram", ["offset column"]),
    (["signed=both"], "cim:reram", ["signed"]),
])
def test_bad_input_is_an_error_naming_cause_and_fix(params, hardware, words, capsys):
    argv = ["analyze", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", hardware]
    for p in params:
        argv += ["--hw-param", p]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "fix:" in err, err


def test_bad_designs_raise_hardware_errors_in_the_api():
    with pytest.raises(HardwareError, match="sigma"):
        CimDesign(sigma=2.0)
    with pytest.raises(HardwareError, match="adc_bits"):
        CimDesign(adc_bits=0)
    with pytest.raises(HardwareError, match="at most 2 bit"):
        CIM.cost(conv_net(), {"cell_bits": 4}, "fefet")
    with pytest.raises(HardwareError, match="at most 2 bit"):
        CIM.explore(conv_net(), "fefet", grid={"cell_bits": [4]})
    with pytest.raises(ConfigError, match="Unknown CIM device"):
        CIM.device("sram")


def test_explore_meets_specs_and_the_tile_budget():
    found = CIM.explore(conv_net(), "reram", objective="energy_mj", max_tiles=16, area_mm2=2.0)
    assert found.best.area_mm2 <= 2.0 and found.best.design["tiles"] <= 16
    every = CIM.explore(conv_net(), "reram", objective="energy_mj", max_tiles=16)
    assert every.best.energy_mj <= found.best.energy_mj


class TestCimContract(TemplateContract):
    @pytest.fixture(params=["reram", "fefet", "pcm"])
    def device(self, request):
        return request.param

    @pytest.fixture
    def template(self):
        return CIM

    @pytest.fixture
    def budget_ladder(self):
        return [{"max_tiles": 4}, {"max_tiles": 16}, {}]
