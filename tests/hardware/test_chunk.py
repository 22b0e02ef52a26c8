"""The chunk-pipelined accelerator (DNA / Auto-NBA, reference notes §6): hand-computed layer latencies
per compute mode and for depthwise layers, the pipeline's bottleneck, DSP/BRAM accounting, allocation,
the exploration, the CLI and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from nn2hw.bench.fbnet import fbnet_workload
from nn2hw.cli import main
from nn2hw.errors import HardwareError, InfeasibleError
from nn2hw.hardware import get_template
from nn2hw.hardware.chunk import TEMPLATE, ChunkTemplate
from nn2hw.hardware.chunk.design import SubDesign, design_arrays, sub_at
from nn2hw.hardware.chunk.model import bram_use
from nn2hw.hardware.chunk.template import layer_shape
from nn2hw.testing import TemplateContract
from nn2hw.workload import Layer, OpKind, Workload

SUB = {"Tr_b": 4, "Tc_b": 4, "Tm_b": 8, "Tn_b": 4, "tr": 2, "tc": 2, "tm": 4, "tn": 2}
"""The design the hand computations below use (with a comp_mode and q)."""


def conv(name: str, cin: int, cout: int, size: int, k: int = 3, groups: int = 1, bits: int = 16) -> Layer:
    return Layer(name, OpKind.CONV, ("x",), "Conv2d", in_channels=cin, out_channels=cout, in_h=size, in_w=size,
                 out_h=size, out_w=size, kernel_h=k, kernel_w=k, pad_h=k // 2, pad_w=k // 2, groups=groups,
                 weight_bits=bits, input_bits=bits)


def net(*layers: Layer, side: int = 32) -> Workload:
    x = Layer("x", OpKind.INPUT, (), "input", in_channels=16, out_channels=16, in_h=side, in_w=side, out_h=side,
              out_w=side)
    return Workload("t", (x, *layers), (1, 16, side, side))


def design(**subs: dict[str, int]) -> dict[str, dict[str, int]]:
    return {name: dict(SUB, **sub) for name, sub in subs.items()}


# --- one layer, by hand -------------------------------------------------------------------------------
# N=16, M=32, R=C=8, K=3 on [Tr_b,Tc_b,Tm_b,Tn_b]=[4,4,8,4], [tr,tc,tm,tn]=[2,2,4,2]:
# T_b = 4*4*8*4*9 = 4608; tri = tci = max(2+3-1, 4) = 4; trips = (8/4)*(8/4)*(32/8) = 16; N/Tn_b = 4.
HAND = {
    # comp = 4608/tm = 1152; ifm = ceil(4*4*4/clamp(tn=2)) = 32; weight = ceil(8*4*9/clamp(tm=4)) = 72;
    # write = ceil(8*4*4/4) + 4*4*8/4 = 64
    0: {"compute": 1152 * 4 * 16, "ifm": 32 * 4 * 16, "weight": 72 * 4 * 16, "write": 64 * 16,
        "cycles": (64 + 4 * (max(1152, 32) + 72)) * 16},
    # comp = 4608/(tm*tn) = 576
    1: {"compute": 576 * 4 * 16, "ifm": 32 * 4 * 16, "weight": 72 * 4 * 16, "write": 64 * 16,
        "cycles": (64 + 4 * (576 + 72)) * 16},
    # rows: comp = 4608/tr = 2304; ifm = ceil(64/clamp(tri=4)) = 16; weight = Tm_b*Tn_b*K = 96;
    # write = ceil(128/clamp(tr=2)) + Tc_b*Tm_b*(Tr_b/tr) = 64 + 64
    2: {"compute": 2304 * 4 * 16, "ifm": 16 * 4 * 16, "weight": 96 * 4 * 16, "write": 128 * 16,
        "cycles": (128 + 4 * (2304 + 96)) * 16},
}


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_a_standard_layer_costs_the_reference_formulas(mode):
    cost = TEMPLATE.cost(net(conv("c", 16, 32, 8)), design(a1q16={"comp_mode": mode, "q": 16}))
    (layer,) = cost.layers
    assert layer.engine == "a1q16"
    assert layer.cycles == pytest.approx(HAND[mode]["cycles"])
    for key in ("compute", "ifm", "weight", "write"):
        assert layer.breakdown_cycles[key] == pytest.approx(HAND[mode][key]), key
    assert cost.total_cycles == pytest.approx(HAND[mode]["cycles"])
    assert cost.latency_ms == pytest.approx(HAND[mode]["cycles"] / 200e3)  # 200 MHz


def test_bits_scale_every_transfer_and_trip_counts_are_fractional():
    eight = TEMPLATE.cost(net(conv("c", 16, 32, 8, bits=8)), design(a1q8={"comp_mode": 0, "q": 8}))
    # mode 0 at q=8: ifm 16, weight 36, write 32 per step/tile; compute unchanged
    assert eight.layers[0].engine == "a1q8"
    assert eight.total_cycles == pytest.approx((32 + 4 * (1152 + 36)) * 16)
    six = TEMPLATE.cost(net(conv("c", 16, 32, 6)), design(a1q16={"comp_mode": 0, "q": 16}))
    # R=6 over Tr_b=4: (6/4)*(6/4)*(32/8) = 9 trips, not ceil'd
    assert six.total_cycles == pytest.approx((64 + 4 * (1152 + 72)) * 9)
    # N=6 over Tn_b=4: 1.5 input-channel steps; tn=1 reads at clamp(1, 2, 4) = 2 words/cycle; tm=8 at 4
    odd = net(conv("c", 6, 32, 8))
    narrow = TEMPLATE.cost(odd, design(a1q16={"comp_mode": 0, "tn": 1, "q": 16}))
    assert narrow.total_cycles == pytest.approx((64 + 1.5 * (1152 + 72)) * 16)  # ifm ceil(64/2) = 32 < 1152
    wide = TEMPLATE.cost(odd, design(a1q16={"comp_mode": 1, "tn": 1, "tm": 8, "q": 16}))
    # comp 4608/8 = 576; weight ceil(288/4) = 72; write ceil(128/4) + 4*4*8/8 = 48
    assert wide.total_cycles == pytest.approx((48 + 1.5 * (576 + 72)) * 16)
    # one lane (tm=1) still moves clamp(1, 2, 4) = 2 words a cycle: N=1, M=8, R=8, K=1 on 4x4x8x1/2x2x1x1:
    # comp 4*4*8/1 = 128, ifm ceil(16/2) = 8, weight ceil(8/2) = 4, write ceil(128/2) + 128 = 192; 4 tiles
    single = TEMPLATE.cost(net(conv("c", 1, 8, 8, k=1)),
                           design(a1q16={"comp_mode": 0, "Tn_b": 1, "tn": 1, "tm": 1, "q": 16}))
    assert single.total_cycles == pytest.approx((192 + (128 + 4)) * 4)


@pytest.mark.parametrize(("layer", "sub", "label"), [
    (conv("c", 16, 32, 8), {"comp_mode": 0}, "compute"),  # HAND[0]: compute 73,728 of 79,360
    # K=1, Tm_b=tm=1, Tn_b=tn=8, mode 1: comp = 4*4*8/8 = 16 < ifm = ceil(8*4*4/4) = 32
    (conv("c", 8, 8, 8, k=1), {"comp_mode": 1, "Tm_b": 1, "tm": 1, "Tn_b": 8, "tn": 8}, "ifm-load"),
    # weights: ceil(32*32*9/4) = 2304 per step against comp = 4*4*32*32*9/(32*16) = 288
    (conv("c", 64, 64, 8), {"comp_mode": 1, "Tm_b": 32, "Tn_b": 32, "tm": 32, "tn": 16}, "weight-load"),
    # one input channel, 1x1: write ceil(128/4) + 32 = 64 per tile against comp 4*4*8/4 = 32
    (conv("c", 1, 8, 8, k=1), {"comp_mode": 0, "Tn_b": 1, "tn": 1}, "write"),
])
def test_a_layer_on_the_slowest_stage_is_labelled_by_its_longest_activity(layer, sub, label):
    cost = TEMPLATE.cost(net(layer), design(a1q16={**sub, "q": 16}))
    assert cost.layers[0].bottleneck == label, cost.layers[0].breakdown_cycles


def test_depthwise_layers_have_no_input_channel_loop():
    dw = net(conv("d", 32, 32, 8, groups=32))
    sub = {"Tn_b": 1, "tn": 1, "q": 16}
    by_channels = TEMPLATE.cost(dw, design(dwa1q16={**sub, "comp_mode": 0}))
    # comp = 4*4*8*9/tm = 288; ifm = ceil(Tm_b*4*4/clamp(tm)) = 32; weight = ceil(8*9/4) = 18;
    # write = ceil(128/4) + 4*4*8/4 = 64; trips = 2*2*(32/8) = 16; (max(comp, ifm) + weight + write) * trips
    assert by_channels.layers[0].engine == "dwa1q16"
    assert by_channels.total_cycles == pytest.approx((288 + 18 + 64) * 16)
    by_rows = TEMPLATE.cost(dw, design(dwa1q16={**sub, "comp_mode": 2}))
    # comp = 1152/tr = 576; ifm still at clamp(tm): 32; weight = Tm_b*K = 24; write = ceil(128/2) + 4*8*2 = 128
    assert by_rows.total_cycles == pytest.approx((576 + 24 + 128) * 16)
    with pytest.raises(HardwareError, match="depthwise"):
        TEMPLATE.cost(dw, design(dwa1q16={**sub, "comp_mode": 1}))
    with pytest.raises(HardwareError, match="Tn_b=1 and tn=1"):
        TEMPLATE.cost(dw, design(dwa1q16={"comp_mode": 0, "q": 16}))


def test_grouped_convs_run_each_group_as_a_layer():
    grouped = TEMPLATE.cost(net(conv("g", 32, 64, 8, groups=2)), design(a1q16={"comp_mode": 0, "q": 16}))
    whole = TEMPLATE.cost(net(conv("c", 16, 32, 8)), design(a1q16={"comp_mode": 0, "q": 16}))
    assert grouped.total_cycles == pytest.approx(2 * whole.total_cycles)


# --- resources -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "dsp", "bram", "with_weights"), [
    (0, 4, 2 * 1 * 2 + 4 * 1, 2 * 1 * 2 + 4 * 1 + 4 * 1),  # input tn*banks*2 + output tm*banks (+ weights tm*banks)
    (1, 8, 2 * 1 * 2 + 4 * 1, 2 * 1 * 2 + 4 * 1 + 8 * 1),  # weights in tm*tn banks
    (2, 2, 4 * 1 * 2 + 2 * 1 + 3 * 1, 4 * 1 * 2 + 2 * 1 + 3 * 1),  # tri*banks*2 + tr*banks + K*banks, always
])
def test_dsp_and_bram_per_mode(mode, dsp, bram, with_weights):
    workload = net(conv("c", 16, 32, 8))
    for weight_bram, banks in ((False, bram), (True, with_weights)):
        cost = TEMPLATE.cost(workload, design(a1q16={"comp_mode": mode, "q": 16}), weight_bram=weight_bram)
        used = {r.name: r.used for r in cost.resources}
        assert used == {"dsp": dsp, "bram": banks}
    half = TEMPLATE.cost(net(conv("c", 16, 32, 8, bits=8)), design(a1q8={"comp_mode": mode, "q": 8}))
    assert half.resources[0].used == dsp / 2  # DSP = unroll * q/16


def test_bram_counts_18kb_banks():
    # tri = tci = 16, Tn_b/tn = 8 words deep: 16*16*8*16 bits = 32768 > 18000: two banks, double-buffered
    sub = SubDesign(0, 16, 16, 8, 8, 1, 1, 8, 1, 16)
    shape = layer_shape(conv("c", 16, 32, 16))
    assert bram_use(shape, design_arrays(sub), False)[0] == 1 * 2 * 2 + 8 * 1


def test_the_system_is_its_slowest_stage_and_resources_add_up():
    layers = (conv("big", 16, 16, 32), conv("small3", 16, 32, 8), conv("small1", 32, 32, 8, k=1))
    chosen = design(a0q16={"comp_mode": 1, "q": 16}, a1q16={"comp_mode": 2, "q": 16})
    cost = TEMPLATE.cost(net(*layers), chosen)
    stages = {}
    for layer in cost.layers:
        stages[layer.engine] = stages.get(layer.engine, 0.0) + layer.cycles
    assert set(stages) == {"a0q16", "a1q16"}
    slowest = max(stages, key=stages.__getitem__)
    assert cost.total_cycles == pytest.approx(max(stages.values()))
    assert cost.total_cycles < sum(stages.values())
    assert {layer.bottleneck == "stage-imbalance" for layer in cost.layers if layer.engine != slowest} == {True}
    assert "stage-imbalance" not in {layer.bottleneck for layer in cost.layers if layer.engine == slowest}
    # DSP: a0 by tm*tn = 8, a1 by tr = 2; BRAM: a1 takes the larger of its two layers' needs
    subs = {name: SubDesign(**values) for name, values in chosen.items()}
    bram = {name: max(float(bram_use(layer_shape(layer), design_arrays(subs[name]), False)[0]) for layer in group)
            for name, group in (("a0q16", layers[:1]), ("a1q16", layers[1:]))}
    assert bram_use(layer_shape(layers[1]), design_arrays(subs["a1q16"]), False)[0] != \
        bram_use(layer_shape(layers[2]), design_arrays(subs["a1q16"]), False)[0]
    used = {r.name: r.used for r in cost.resources}
    assert used == {"dsp": 8 + 2, "bram": bram["a0q16"] + bram["a1q16"]}


def test_layers_are_allocated_by_bits_depthwise_and_feature_size():
    layers = (conv("big", 16, 16, 16), conv("small", 16, 16, 15), conv("dw", 16, 16, 16, groups=16),
              conv("w8", 16, 16, 16, bits=8), conv("w5", 16, 16, 8, bits=5), conv("w3", 16, 16, 8, bits=3))
    alloc = TEMPLATE.allocate(net(*layers), "cifar")
    assert {p.layer.name: p.stage for p in alloc.placed} == {
        "big": "a0q16", "small": "a1q16", "dw": "dwa0q16", "w8": "a0q8", "w5": "a1q6", "w3": "a1q4"}
    assert {p.layer.name: p.stage for p in TEMPLATE.allocate(net(*layers[:2]), "imagenet").placed} == {
        "big": "a1q16", "small": "a1q16"}
    with pytest.raises(HardwareError, match="32-bit"):
        TEMPLATE.allocate(net(conv("f", 16, 16, 8, bits=32)), "cifar")


# --- exploration ------------------------------------------------------------------------------------------
def test_explore_fits_and_is_never_worse_than_a_fitting_design():
    workload = net(conv("big", 16, 16, 32), conv("small", 16, 32, 8), conv("dw", 32, 32, 8, groups=32))
    found = TEMPLATE.explore(workload, "zc706")
    assert found.best.fits and found.best in found.pareto
    _, grids = TEMPLATE.stage_grids(workload, "cifar", None, False)
    rng = np.random.default_rng(0)
    tried = 0
    for _ in range(60):
        picks = {g.name: int(rng.integers(len(g.designs))) for g in grids}
        if sum(g.dsp[picks[g.name]] for g in grids) > 900 or sum(g.bram[picks[g.name]] for g in grids) > 700:
            continue
        given = {g.name: sub_at(g.designs, picks[g.name]).to_dict() for g in grids}
        other = TEMPLATE.cost(workload, given)
        assert other.fits
        assert found.best.latency_ms <= other.latency_ms * (1 + 1e-12)
        tried += 1
    assert tried > 10
    tight = TEMPLATE.explore(workload, "zc706", dsp=20)
    assert tight.best.fits and tight.best.resources[0].used <= 20
    assert tight.best.latency_ms >= found.best.latency_ms


def test_explore_takes_grid_restrictions_and_says_when_nothing_fits():
    workload = net(conv("big", 16, 16, 32), conv("small", 16, 32, 8))
    rows = TEMPLATE.explore(workload, grid={"comp_mode": [2]})
    assert {sub["comp_mode"] for sub in rows.best.design.to_dict().values()} == {2}
    with pytest.raises(InfeasibleError, match="DSP"):
        TEMPLATE.explore(workload, dsp=1)
    with pytest.raises(HardwareError, match="comp_mode=5"):
        TEMPLATE.explore(workload, grid={"comp_mode": [5]})
    with pytest.raises(HardwareError, match="q=5"):
        TEMPLATE.explore(workload, grid={"q": [5]})
    with pytest.raises(HardwareError, match="unroll"):
        TEMPLATE.explore(workload, grid={"Tr_b": [1], "tr": [2]})


@pytest.mark.parametrize("arch", [(0,) * 22, (3, 1, 5, 7, 8) * 4 + (2, 6)])
def test_fbnet_workloads_cost(arch):
    found = TEMPLATE.explore(fbnet_workload(arch, "cifar100"))
    engines = {layer.engine for layer in found.best.layers}
    assert {"a0q16", "a1q16", "dwa0q16", "dwa1q16"} == engines
    assert found.best.fits and found.best.latency_ms == pytest.approx(max(found.best.engine_latency_ms().values()))


class TestChunkContract(TemplateContract):
    @pytest.fixture
    def template(self):
        return ChunkTemplate()

    @pytest.fixture
    def budget_ladder(self):
        return [{"dsp": 16}, {"dsp": 64, "bram": 40}, {"dsp": 64}, {}]


# --- CLI and bad input ------------------------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))


def test_analyze_cli_explores_resnet20_and_writes_json(tmp_path, capsys, cache):
    out = tmp_path / "r20.json"
    code = main(["analyze", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", "chunk", "--explore",
                 "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "slowest" in text and "FPS" in text
    data = json.loads(out.read_text())
    busy: dict[str, float] = {}
    for layer in data["layers"]:
        busy[layer["engine"]] = busy.get(layer["engine"], 0.0) + layer["cycles"]
    assert data["parallel_engines"] and set(busy) == {"a0q16", "a1q16"}
    assert data["total_cycles"] == pytest.approx(max(busy.values()))
    assert data["fits"] and {r["name"] for r in data["resources"]} == {"dsp", "bram"}
    template, _ = get_template("chunk:zc706")
    assert template is TEMPLATE


@pytest.mark.parametrize(("text", "says"), [
    ("a0q16=0,16,16,8,8,4,4,16,8,16;a1q16=1,4,4,32,32,4,4,32,16,16", "tm=16 over a buffer tile Tm_b=8"),
    ("a0q16=0,16,16,8,8,4,4,8,8,5;a1q16=1,4,4,32,32,4,4,32,16,16", "q=5"),
    ("a0q16=3,16,16,8,8,4,4,8,8,16;a1q16=1,4,4,32,32,4,4,32,16,16", "comp_mode=3"),
    ("a0q16=0,16,16,8,8,4,4,8,8,16;a1q16=1,4,4,32,32,4,4,32,32,16", "dsp needs 1,032 of 900"),
    ("a0q16=0,16,16,8,8,4,4,8,8,16", "no sub-accelerator 'a1q16'"),
    ("a0q16=0,16,16", "10 values"),
])
def test_bad_designs_exit_2_naming_cause_and_fix(capsys, cache, text, says):
    code = main(["analyze", "--model", "resnet20", "--dataset", "fashion-mnist", "--hardware", "chunk",
                 "--design", text])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "fix:" in err


@pytest.mark.data
def test_the_discrete_search_meets_a_spec_on_the_chunk_template(shared_data, tmp_path, cache):
    """Two random trials on the CIFAR-10 ResNet-20 scored on 64 images, no training (15-25 s: the
    search's own preparation and finalization dominate)."""
    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test
    from nn2hw.search import SearchSettings, Spec, run_search

    images = zoo.prepare(load_dataset("cifar10", "test-partial"), "resnet20").take(64)

    def score(model):
        m = test(model, images, progress=False)
        return {"top1": m.top1, "top5": m.top5, "n_images": float(m.n_images), "partial": 1.0}

    result = run_search(SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", select_on_test=True,
                                       hardware="chunk",
                                       spec=Spec(latency_ms=2.2), strategy="random", trials=2, out=str(tmp_path)),
                        evaluator=score, progress=False, log=lambda _: None)
    solution = result.solution.to_dict()
    assert solution["latency_ms"] <= 2.2 < result.baseline.to_dict()["latency_ms"]
    assert solution["design"] and all(re.fullmatch(r"(dw)?a[01]q(4|6|8|16)", name) for name in solution["design"])
