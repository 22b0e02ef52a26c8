"""The FPGA template's formulas, layer mapping and resource models, checked by hand arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nn2hw.hardware import Execution
from nn2hw.hardware.fpga import TEMPLATE, FpgaDesign, FpgaGrid, enumerate_grid, get_device, load_devices, parse_design
from nn2hw.hardware.fpga.layers import compat_shapes
from nn2hw.workload import Layer, OpKind, Workload
from tests.hardware.nets import chain, conv, zoo_net

D = FpgaDesign(16, 8, 16, 16, 3, 4, 2, 2)


def one(layer: Layer, design=D, **options):
    return TEMPLATE.cost(Workload("w", (layer,)), design, "zcu102", bram="off", **options).layers[0]


def test_head_formula_by_hand():
    layer = conv("c", 20, 40, 30, k=3, stride=1)  # M=40 N=20 R=C=30 P=1
    t_w = 16 * 8 * 9 / 4
    t_i = min(8, 20) * 16 * 16 / 2
    t_o = min(16, 40) * 16 * 16 / 2
    t_c = 9 * min(16, 32) * min(16, 32)
    n_in, tiles = math.ceil(20 / 8), math.ceil(30 / 16) ** 2 * math.ceil(40 / 16)
    expected = tiles * max(n_in * max(t_i, t_w, t_c), t_o)
    got = one(layer)
    assert got.cycles == pytest.approx(expected)
    assert got.breakdown_cycles == pytest.approx({"input": t_i * n_in * tiles, "weight": t_w * n_in * tiles,
                                                  "output": t_o * tiles, "compute": t_c * n_in * tiles})
    assert got.bottleneck == "C"


def test_variants_differ_as_documented():
    layer = conv("c", 3, 10, 12, k=3, stride=2)  # N < Tn and M < Tm: only head takes min() on them
    R = layer.out_h  # 6
    head, v1, v0, fnas = (one(layer, variant=v) for v in ("head", "v1", "v0", "fnas"))
    assert head.breakdown_cycles["input"] == pytest.approx(3 * 6 * 6 / 2 * 1 * 1)
    assert v1.breakdown_cycles["input"] == pytest.approx(8 * 6 * 6 / 2)
    padded = R + 2  # v0: R := Rout + 2P everywhere
    assert v0.breakdown_cycles["input"] == pytest.approx(8 * padded * padded / 2)
    assert v0.breakdown_cycles["compute"] == pytest.approx(9 * math.ceil(padded / 2) ** 2)
    assert fnas.breakdown_cycles["compute"] == pytest.approx(9 * 16 * 16)  # full tiles, no stride
    assert head.breakdown_cycles["compute"] == pytest.approx(9 * math.ceil(8 / 2) ** 2)  # min(Tr, R+2P)/S


def test_grouped_conv_runs_as_groups_of_small_convs():
    grouped = one(conv("g", 32, 64, 14, groups=4))
    small = one(conv("s", 8, 16, 14))
    assert grouped.cycles == pytest.approx(4 * small.cycles)
    assert grouped.op == "grouped conv" and grouped.engine == "cconv"


def test_depthwise_uses_its_engine_or_falls_back_to_groups():
    dw = conv("dw", 32, 32, 14, groups=32)
    with_engine = one(dw, FpgaDesign(16, 8, 16, 16, 3, 4, 2, 2, dw=(32, 1, 16, 16, 3)))
    assert with_engine.engine == "dconv"
    # dconv forces Tn := Tm: tW = Tm*K^2/Wp, Lat2 = ceil(N/Tm) * Lat1 (notes 8.3)
    t_w, t_i = 32 * 9 / 4, 32 * 14 * 14 / 2
    t_c = 9 * 16 * 16
    t_o = 32 * 14 * 14 / 2
    assert with_engine.cycles == pytest.approx(max(max(t_i, t_w, t_c), t_o))
    without = one(dw)
    assert without.engine == "cconv"
    assert without.cycles == pytest.approx(32 * one(conv("one", 1, 1, 14)).cycles)


def test_linear_layers_stay_on_the_host_by_default():
    fc = Layer(name="fc", kind=OpKind.LINEAR, op="Linear", in_channels=512, out_channels=1000)
    w = Workload("w", (conv("c", 3, 8, 8), Layer(**{**fc.to_dict(), "inputs": ("c",)})))
    host = TEMPLATE.cost(w, D, "zcu102")
    assert [u.name for u in host.uncosted] == ["fc"] and "linear=engine" in host.uncosted[0].reason
    engine = TEMPLATE.cost(w, D, "zcu102", linear="engine")
    fc_cost = engine.layers[1]
    assert fc_cost.name == "fc" and fc_cost.op == "linear" and fc_cost.macs == 512_000
    # a 1x1 conv on a 1x1 map: tW = Tm*Tn/Wp dominates every step
    assert fc_cost.cycles == pytest.approx(math.ceil(1000 / 16) * math.ceil(512 / 8) * 16 * 8 / 4)
    # the template's own execution_of / uncosted say the same as the cost records
    fc_layer = w.layer("fc")
    assert TEMPLATE.execution_of(fc_layer, {}) is Execution.HOST
    assert TEMPLATE.execution_of(fc_layer, {"linear": "engine"}) is Execution.ARRAY
    assert TEMPLATE.uncosted(fc_layer, Execution.HOST) == host.uncosted[0]


def test_pattern_pruning_shortens_compute_only():
    dense = conv("c", 64, 64, 28)
    pruned = Layer(**{**dense.to_dict(), "kept_per_kernel": 4})
    a, b = one(dense), one(pruned)
    assert b.breakdown_cycles["compute"] == pytest.approx(a.breakdown_cycles["compute"] * 4 / 9)
    assert b.breakdown_cycles["weight"] == a.breakdown_cycles["weight"]  # weights still move densely
    assert b.macs == dense.macs * 4 // 9


@pytest.mark.parametrize("bits, per_cycle", [(16, 4), (8, 8), (12, 5), (4, 16)])
def test_quantized_weights_pack_into_port_words(bits, per_cycle):
    # notes 2.3: tW = Tm*Tn*K^2 / floor(Wp*16/q), Wp = 4
    layer = Layer(**{**conv("c", 64, 64, 7).to_dict(), "weight_bits": bits})
    got = one(layer)
    steps = math.ceil(64 / 8) * math.ceil(64 / 16)
    assert got.breakdown_cycles["weight"] == pytest.approx(16 * 8 * 9 / per_cycle * steps)


def test_compat_shapes_feed_each_conv_the_previous_output():
    net = zoo_net("resnet18")
    bugged, changed = compat_shapes(net)
    assert changed[0] == "layer2.0.downsample.0"
    assert bugged.layer("layer2.0.downsample.0").out_h == 14  # fed conv2's 28x28 output, stride 2
    # each later stage halves again: layer3 runs at 7 then 4 (not 14), layer4 at 2 then 1 (not 7)
    assert [bugged.layer(n).out_h for n in ("layer3.0.conv1", "layer3.1.conv1", "layer4.0.conv1", "layer4.1.conv2")] \
        == [7, 4, 2, 1]
    assert net.layer("layer4.1.conv2").out_h == 7
    plain = chain("plain", [conv("a", 3, 8, 16), conv("b", 8, 8, 16, stride=2)])
    assert compat_shapes(plain) == (plain, ())


def test_realistic_bram_of_the_published_resnet18_design():
    # input: 1 memory of 2*(64+6)^2 = 9800 x (36*16 = 576 bits) -> 320 BRAM18 (1Kx18: 10 x 32);
    # weights: 2*7*7 = 98 x (70*36*16 = 40,320 bits) -> 1120 BRAM18 (512x36), or 4 LUTs per bit (RAM128X1D);
    # output: 2 memories of 64*64 = 4096 x (70*16 = 1120 bits) -> 2 x 250 (2Kx9: 2 x 125) = 500 BRAM18.
    # All in BRAM = 1,940 > 1,824: 116 weight columns of 36 bits (4,176 bits) move to LUTRAM = 16,704 LUTs.
    result = TEMPLATE.cost(zoo_net("resnet18"), "70,36,64,64,7,18,6,6", "zcu102")
    used = {r.name: r.used for r in result.resources}
    assert used["BRAM18"] == 1824 and used["LUTRAM"] == 16_704
    assert result.fits
    assert any("weight buffer partly (4,176 of 40,320 bits) in LUTRAM" in note for note in result.notes)
    assert not TEMPLATE.cost(zoo_net("resnet18"), "70,36,64,64,7,18,6,6", "zcu102", lutram_share=0.1).fits


def test_realistic_bram_default_placement_and_limits():
    # AlexNet's published design fits in BRAM alone: 208 (input) + 1120 (weights, 242 deep) + 2 x 125 (output)
    alexnet = TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,11,18,6,2", "zcu102")
    assert {r.name: r.used for r in alexnet.resources}["BRAM18"] == 208 + 1120 + 250
    # 3x3 kernels: an 18-deep weight memory goes to LUTRAM by default (RAM32M: 4 LUTs per 6 bits)
    small = TEMPLATE.cost(zoo_net("resnet20"), "16,16,32,32,3,8,8,8", "zcu102")
    assert {r.name: r.used for r in small.resources}["LUTRAM"] == 4 * math.ceil(16 * 16 * 16 / 6)
    # the published MobileNetV2 pair needs ~42 Mbit of buffers: no placement fits a ZCU102 (32.1 Mbit BRAM)
    pair = parse_design("160,12,32,32,3,10,10,10", "576,1,32,32,3,10,10,10")
    assert not TEMPLATE.cost(zoo_net("mobilenet_v2"), pair, "zcu102").fits


def test_hotnas_and_as_run_bram_formulas():
    # notes 2.12: ~3368 BRAM18 by the authors' formula; the as-run check uses 1824-bit blocks, limit 18000
    net = zoo_net("resnet18")
    hotnas = TEMPLATE.cost(net, "70,36,64,64,7,18,6,6", "zcu102", bram="hotnas")
    line = next(r for r in hotnas.resources if r.name.startswith("BRAM18 (HotNAS"))
    assert line.used == 2 * 36 * 4 + 2 * 70 * 4 + 2520 * 1 == 3368 and not line.fits
    as_run = TEMPLATE.cost(net, "70,36,64,64,7,18,6,6", "zcu102", bram="as-run")
    line = next(r for r in as_run.resources if r.name.startswith("BRAM (as-run"))
    assert line.used == 2 * 36 * 36 + 2 * 70 * 36 + 2520 * 2 == 12_672 and line.available == 18_000
    off = TEMPLATE.cost(net, "70,36,64,64,7,18,6,6", "zcu102", bram="off")
    assert not any(r.name.startswith("BRAM") for r in off.resources)
    assert any("realistic on-chip memory: 1,824 of 1,824 BRAM18" in n for n in off.notes)  # always reported


def test_vectorized_sweep_matches_single_design_cost():
    net = zoo_net("mobilenet_v2")
    grid = FpgaGrid.from_ranges({"Tm": [10, 160], "Tr": [16, 32], "Tc": [32], "Wp": [2, 10], "Ip": [10], "Op": [6],
                                 "Tm_d": [64, 576], "Tr_d": [32], "Tc_d": [8, 32]})
    designs, _ = enumerate_grid(grid, get_device("zcu102"), 3, 3)
    for variant in ("head", "v0", "v1", "fnas", "fpga15"):
        cycles, _ = TEMPLATE.evaluate(net, designs, "zcu102", variant=variant)
        single = [TEMPLATE.cost(net, designs.design(i), "zcu102", variant=variant).total_cycles
                  for i in range(len(designs))]
        np.testing.assert_allclose(cycles, single, rtol=1e-12)


def test_hotnas_grids_and_loop_order():
    cconv, dconv = FpgaGrid.hotnas(), FpgaGrid.hotnas(depthwise=True)
    assert cconv.size == 8 * 3 * 3 * 5 ** 3 == 9000 and dconv.size == 8 * 8 * 5 ** 3 == 8000
    assert cconv.order == ("Tm", "Tc", "Tr", "Wp", "Ip", "Op")  # explore_conv_only.py
    assert dconv.order[:5] == ("Wp", "Ip", "Op", "Tm_d", "Tm")  # explore_conv_dconv.py
    designs, dropped = enumerate_grid(cconv, get_device("zcu102"), 7, 1)
    assert dropped == 0 and designs.Tn[0] == 2520 // 10 and designs.Op[1] == 6  # Op is the innermost loop


def test_user_ranges_replace_parts_of_the_grid():
    found = TEMPLATE.explore(zoo_net("alexnet"), "zcu102", grid={"Tm": "70", "Tr": [32, 64], "Tc": 32})
    assert found.n_designs == 2 * 125
    assert found.best.design["Tm"] == 70 and found.best.design["Tc"] == 32


def test_pareto_set_is_non_dominated_and_holds_the_best():
    found = TEMPLATE.explore(zoo_net("resnet18"), "zcu102")
    assert found.pareto[0] is found.best
    points = [(p.latency_ms, p.resources[0].used, p.resources[2].used) for p in found.pareto]
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            dominated = b[0] <= a[0] and b[1] <= a[1] and b[2] <= a[2] and b != a
            assert i == j or not dominated


def test_device_presets_have_sources():
    devices = load_devices()
    assert set(devices) == {"zcu102", "zc706", "vc707", "pynq-z1"}
    zcu = devices["zcu102"]
    assert (zcu.dsp, zcu.bram18, zcu.port_bits, zcu.clock_mhz) == (2520, 1824, 512, 200)
    assert (devices["vc707"].dsp, devices["vc707"].bram18) == (2800, 2060)  # FPGA'15 resource table
    assert (devices["pynq-z1"].dsp, devices["pynq-z1"].bram18) == (220, 280)
    for device in devices.values():
        assert set(device.sources) >= {"dsp", "bram18", "lut", "lutram", "port_bits", "clock_mhz"}
        assert all(len(text) > 20 for text in device.sources.values())


def test_budgets_can_be_overridden():
    result = TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,11,18,6,2", "zcu102", dsp=4000)
    assert result.device == "zcu102*" and next(r for r in result.resources if r.name == "DSP").available == 4000


def test_clock_scales_milliseconds_not_cycles():
    at100 = TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,11,18,6,2", "zcu102", clock_mhz=100)
    at200 = TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,11,18,6,2", "zcu102")
    assert at100.total_cycles == at200.total_cycles and at200.clock_mhz == 200
    assert at200.latency_ms == pytest.approx(at100.latency_ms / 2)


def test_a_batch_norm_folds_but_a_layer_norm_is_left_out_and_said_why():
    """A batch norm folds into the preceding convolution at deployment; a LayerNorm (statistics per
    input) cannot: the FPGA template says so instead of calling it folded."""
    from nn2hw.hardware import get_template
    from nn2hw.hardware.records import Execution
    from nn2hw.testing import nets
    from nn2hw.workload import OpKind, from_module

    template, _ = get_template("fpga")
    model, inputs = nets.bert()
    norms = [layer for layer in from_module(model, inputs, name="bert").layers if layer.kind is OpKind.NORM]
    assert norms and not any(layer.folds_at_inference for layer in norms)
    for layer in norms:
        mode = template.execution_of(layer, {})
        assert mode is Execution.OMITTED and "cannot be folded" in template.execution_reason(layer, mode)
    batch_norm = next(layer for layer in from_module(*nets.nb201(), name="nb201").layers if layer.kind is OpKind.NORM)
    assert batch_norm.folds_at_inference and template.execution_of(batch_norm, {}) is Execution.FUSED
    assert "folded into the preceding convolution" in template.execution_reason(batch_norm, Execution.FUSED)
