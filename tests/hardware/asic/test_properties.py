"""Properties of the ASIC cost models that hold for any layer and design (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nn2hw.hardware import get_template
from nn2hw.hardware.asic import LayerTable, get_technology
from nn2hw.hardware.asic.hetero import explore as explore_chip
from nn2hw.hardware.asic.nvdla import NvdlaDesign
from nn2hw.hardware.asic.shidiannao import ShiDianNaoDesign
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.hardware.budgets import Budgets
from nn2hw.spec import Spec
from nn2hw.workload import Workload
from tests.hardware.asic.nets import chain, conv, linear, mobile_block, resnet20

TECH = get_technology("45nm")
ASIC = ("systolic", "nvdla", "shidiannao", "eyeriss")
SMALL_GRIDS = {
    "systolic": {"rows": [4, 8, 16], "cols": [4, 16], "dataflow": ["ws", "os"], "ifmap_kib": [8, 64],
                 "filter_kib": [8], "ofmap_kib": [8, 64], "dram_bw": [2, 16]},
    "nvdla": {"atomic_c": [4, 16], "atomic_k": [4, 16], "cbuf_kib": [16, 128], "acc_kib": [4, 16], "dram_bw": [2, 16]},
    "shidiannao": {"pe_rows": [4, 8], "pe_cols": [4, 16], "nbin_kib": [8, 64], "sb_kib": [16], "sram_bw": [8, 32],
                   "dram_bw": [2, 16]},
    "eyeriss": {"rows": [6, 12], "cols": [7, 14], "glb_kib": [32, 128], "dram_bw": [1, 8]},
}

channels = st.sampled_from([3, 4, 8, 16, 24, 32, 64])
layers = st.builds(
    lambda cin, cout, size, k, stride: conv("c", cin, cout, size, k=k, stride=stride),
    channels, channels, st.sampled_from([4, 7, 8, 14, 16]), st.sampled_from([1, 3]), st.sampled_from([1, 2]))


def one(layer) -> Workload:
    return Workload("one", (layer,))


@pytest.mark.parametrize("name", ASIC)
@settings(max_examples=15, deadline=None)
@given(layer=layers)
def test_cycles_never_below_macs_over_pes(name, layer):
    template = get_template(name)[0]
    table = LayerTable.from_workload(one(layer))
    designs = template.grid_designs(SMALL_GRIDS[name], with_defaults=False)
    arrays = template.evaluate(table, designs, TECH)
    ok = arrays.mappable()
    floor = table.dense_macs[None, :] / arrays.pes[:, None]
    assert (arrays.compute[ok] >= floor[ok] - 1e-9).all()
    assert (arrays.total >= arrays.compute).all()
    mac_pj = layer.macs * TECH.mac_pj
    assert (arrays.energy_total_pj[ok] >= mac_pj * (1 - 1e-12)).all()


@pytest.mark.parametrize("name", ASIC)
@pytest.mark.parametrize("budget", ["max_pes", "max_sram_kib", "max_dram_bw", "max_area_mm2"])
def test_a_larger_budget_never_gives_a_slower_best_design(name, budget):
    template = get_template(name)[0]
    net = chain("two", [conv("a", 16, 32, 16), conv("b", 32, 32, 8, stride=2)])
    designs = template.grid_designs(SMALL_GRIDS[name], with_defaults=False)
    probe = template.evaluate(LayerTable.from_workload(net), designs, TECH)
    used = {"max_pes": probe.pes, "max_sram_kib": probe.sram_kib, "max_area_mm2": probe.area_mm2,
            "max_dram_bw": [d.dram_bw for d in designs]}[budget]
    best = []
    for limit in sorted(set(map(float, used))):
        found = template.explore(net, "45nm", grid=designs, budgets=Budgets(**{budget: limit}))
        best.append(found.best.latency_ms)
    assert all(b <= a for a, b in zip(best, best[1:])), best


@settings(max_examples=25, deadline=None)
@given(layer=layers, flow=st.sampled_from(["ws", "os", "is"]), rows=st.sampled_from([4, 8, 32]),
       cols=st.sampled_from([4, 16]), small=st.sampled_from([1, 4, 16]), factor=st.sampled_from([2, 8, 64]),
       which=st.sampled_from(["ifmap_kib", "filter_kib", "ofmap_kib"]))
def test_systolic_larger_buffers_never_add_dram_traffic(layer, flow, rows, cols, small, factor, which):
    base = {"rows": rows, "cols": cols, "dataflow": flow, "ifmap_kib": small, "filter_kib": small, "ofmap_kib": small}
    lo = get_template("systolic")[0].cost(one(layer), SystolicDesign(**base))
    hi = get_template("systolic")[0].cost(one(layer), SystolicDesign(**{**base, which: small * factor}))
    dram = ("dram_ifmap", "dram_filter", "dram_ofmap")
    assert sum(hi.layers[0].accesses[k] for k in dram) <= sum(lo.layers[0].accesses[k] for k in dram)
    assert hi.compute_cycles == lo.compute_cycles  # the mapping (folds) is fixed


@settings(max_examples=20, deadline=None)
@given(layer=layers, small=st.sampled_from([1, 4, 16]), factor=st.sampled_from([2, 16, 256]),
       which=st.sampled_from(["cbuf", "nbin", "sb"]))
def test_nvdla_and_shidiannao_larger_buffers_never_add_dram_traffic(layer, small, factor, which):
    if which == "cbuf":
        template, designs = "nvdla", [NvdlaDesign(cbuf_kib=small), NvdlaDesign(cbuf_kib=small * factor)]
    else:
        base = {"nbin_kib": small, "sb_kib": small}
        designs = [ShiDianNaoDesign(**base), ShiDianNaoDesign(**{**base, f"{which}_kib": small * factor})]
        template = "shidiannao"
    table = LayerTable.from_workload(one(layer))
    arrays = get_template(template)[0].evaluate(table, designs, TECH)
    dram = sum(arrays.traffic[k] for k in ("dram_ifmap", "dram_filter", "dram_ofmap"))
    assert dram[1, 0] <= dram[0, 0]


@pytest.mark.parametrize("name", ASIC)
def test_area_grows_with_pes_and_buffers(name):
    template = get_template(name)[0]
    designs = template.grid_designs(SMALL_GRIDS[name], with_defaults=False)
    fp = template.footprint(designs, TECH)
    for i, a in enumerate(designs):
        for j, b in enumerate(designs):
            regs_le = template.reg_words(a) <= template.reg_words(b)
            if fp.pes[i] <= fp.pes[j] and fp.sram_kib[i] <= fp.sram_kib[j] and regs_le:
                assert fp.area_mm2[i] <= fp.area_mm2[j]
            if fp.pes[i] < fp.pes[j] and fp.sram_kib[i] == fp.sram_kib[j]:
                assert fp.area_mm2[i] < fp.area_mm2[j]


def test_a_bigger_array_can_be_slower_on_a_small_layer():
    # Fill and drain grow with the array: a 64 -> 10 FC layer on a weight-stationary array takes
    # 16 folds x 23 cycles on 8x8 PEs but 1 fold x 383 cycles on 128x128 PEs.
    systolic = get_template("systolic")[0]
    fc = one(linear("fc", 64, 10))
    small = systolic.cost(fc, SystolicDesign(rows=8, cols=8))
    big = systolic.cost(fc, SystolicDesign(rows=128, cols=128))
    assert (small.compute_cycles, big.compute_cycles) == (368, 383)
    assert big.layers[0].bottleneck == "fill-drain"
    # ... while on a large layer the big array wins by far
    net = resnet20()
    assert systolic.cost(net, SystolicDesign(rows=128, cols=128)).compute_cycles < \
        systolic.cost(net, SystolicDesign(rows=8, cols=8)).compute_cycles


def test_hetero_larger_budgets_never_give_a_slower_best_chip():
    nets = {"resnet": resnet20(), "mobile": mobile_block()}
    space = {"systolic": {"rows": (8, 16), "cols": (8, 16), "dataflow": ("ws",)},
             "shidiannao": {"pe_rows": (4, 8), "pe_cols": (8,)}}
    previous = None
    for pes in (192, 256, 384, 512):
        found = explore_chip(nets, Budgets(max_pes=pes), Spec(), templates=("systolic", "shidiannao"),
                             space=space, dram_bws=(4.0, 8.0))
        if previous is not None:
            assert found.best.latency_ms <= previous
        previous = found.best.latency_ms
