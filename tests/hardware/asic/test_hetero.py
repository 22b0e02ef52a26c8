"""Heterogeneous chips: what a chip's latency, energy and area are, and the searched assignment/split."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nn2hw.errors import ConfigError, HardwareError, InfeasibleError
from nn2hw.hardware import get_template
from nn2hw.hardware.asic.hetero import HeteroDesign, SubAccelerator, cost_system, explore
from nn2hw.hardware.asic.nvdla import NvdlaDesign
from nn2hw.hardware.asic.shidiannao import ShiDianNaoDesign
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.hardware.budgets import Budgets
from nn2hw.spec import Spec
from nn2hw.testing.workloads import conv_net
from nn2hw.workload import Workload
from tests.hardware.asic.nets import mobile_block, resnet20

SPACE = {"systolic": {"rows": (8, 16), "cols": (8, 16), "dataflow": ("ws",)},
         "nvdla": {"atomic_c": (8, 16), "atomic_k": (8, 16)},
         "shidiannao": {"pe_rows": (4, 8), "pe_cols": (8,)}}
TEMPLATES = ("systolic", "nvdla", "shidiannao")


def chip(*subs) -> HeteroDesign:
    return HeteroDesign(tuple(SubAccelerator(f"s{k}", t, d) for k, (t, d) in enumerate(subs)))


def test_multi_dnn_latency_is_the_slowest_sub_energy_and_area_are_sums():
    nets = {"resnet": resnet20(), "mobile": mobile_block()}
    design = chip(("systolic", SystolicDesign(rows=16, cols=16)), ("shidiannao", ShiDianNaoDesign()))
    system = cost_system(nets, design)
    alone = {(n, s.name): get_template(s.template)[0].cost(w, s.design) for n, w in nets.items() for s in design.subs}
    busy = {s.name: sum(alone[(n, s.name)].latency_ms for n, x in system.assignment.items() if x == s.name)
            for s in design.subs}
    assert system.sub_busy_ms == pytest.approx(busy)
    assert system.latency_ms == pytest.approx(max(busy.values()))
    assert system.energy_mj == pytest.approx(sum(alone[(n, s)].energy_mj for n, s in system.assignment.items()))
    areas = [get_template(s.template)[0].cost(resnet20(), s.design).area_mm2 for s in design.subs]
    assert system.area_mm2 == pytest.approx(sum(areas))
    # the searched assignment is the best of the two possible ones
    swapped = {n: ("s1" if s == "s0" else "s0") for n, s in system.assignment.items()}
    other = cost_system(nets, HeteroDesign(design.subs, assignment=swapped))
    assert system.latency_ms <= other.latency_ms
    assert "resnet ->" in "\n".join(system.report())


def test_depthwise_network_is_kept_off_nvdla():
    nets = {"resnet": resnet20(), "mobile": mobile_block()}
    design = chip(("nvdla", NvdlaDesign()), ("shidiannao", ShiDianNaoDesign()))
    assert cost_system(nets, design).assignment["mobile"] == "s1"
    with pytest.raises(HardwareError, match="map every layer"):
        cost_system(nets, HeteroDesign(design.subs, assignment={"mobile": "s0"}))


def test_single_dnn_layers_go_to_their_fastest_sub_and_latency_is_their_sum():
    design = chip(("nvdla", NvdlaDesign(atomic_c=16, atomic_k=16)), ("shidiannao", ShiDianNaoDesign()))
    cost = get_template("hetero")[0].cost(mobile_block(), design)
    engines = {layer.name: layer.engine for layer in cost.layers}
    assert engines["dw"] == "s1"  # nvdla cannot map it
    assert cost.total_cycles == pytest.approx(sum(layer.cycles for layer in cost.layers))
    for layer in cost.layers:
        if layer.name != "dw":
            alone = Workload("one", (replace(mobile_block().layer(layer.name), inputs=()),))
            on = {s.name: get_template(s.template)[0].cost(alone, s.design).total_cycles for s in design.subs}
            assert layer.engine == min(on, key=on.__getitem__) and layer.cycles == min(on.values())


def test_search_respects_budgets_and_specs_and_is_deterministic():
    nets = {"resnet": resnet20(), "mobile": mobile_block()}
    budgets = Budgets(max_pes=512, max_dram_bw=16, max_area_mm2=5.0)
    first = explore(nets, budgets, Spec(area_mm2=4.0), templates=TEMPLATES, space=SPACE)
    again = explore(nets, budgets, Spec(area_mm2=4.0), templates=TEMPLATES, space=SPACE)
    assert first.best.to_dict() == again.best.to_dict()
    best = first.best
    assert best.pes <= 512 and best.dram_bw <= 16 and best.area_mm2 <= 4.0
    assert set(best.assignment) == {"resnet", "mobile"} and len(set(best.assignment.values())) == 2
    assert best in first.pareto and first.n_feasible >= 1
    # nothing in the Pareto set is faster than the best
    assert all(p.latency_ms >= best.latency_ms for p in first.pareto)


def test_a_network_name_with_a_slash_is_searched_like_any_other():
    plain = explore({"a": resnet20(), "b": mobile_block()}, templates=TEMPLATES, space=SPACE).best
    slashed = explore({"zoo/a": resnet20(), "b": mobile_block()}, templates=TEMPLATES, space=SPACE).best
    assert slashed.assignment == {"zoo/a": plain.assignment["a"], "b": plain.assignment["b"]}
    assert (slashed.latency_ms, slashed.energy_mj, slashed.area_mm2) == (plain.latency_ms, plain.energy_mj,
                                                                          plain.area_mm2)


def test_explore_records_are_what_cost_returns_for_the_chips_found():
    hetero = get_template("hetero")[0]
    _, options = hetero.split_params({"templates": ",".join(TEMPLATES), "max_pes": "512", "clock_mhz": "500"})
    found = hetero.explore(mobile_block(), "eyeriss-65nm", grid=SPACE, **options)
    for record in (found.best, *found.pareto):
        chip = HeteroDesign.from_dict({**record.design, "assignment": {c.name: c.engine for c in record.layers}})
        assert hetero.cost(mobile_block(), chip, record.device, clock_mhz=record.clock_mhz,
                           budgets=options["budgets"]) == record


def test_unmeetable_specs_report_the_best_reachable_values():
    nets = {"resnet": resnet20(), "mobile": mobile_block()}
    with pytest.raises(InfeasibleError) as info:
        explore(nets, Budgets(max_pes=512), Spec(latency_ms=1e-6), templates=TEMPLATES, space=SPACE)
    assert "best reachable" in info.value.cause and info.value.best_bound > 1e-6


def test_no_chip_that_uses_every_sub_is_an_infeasible_error():
    # one candidate sub: the only chip is two identical subs, and the second is never the fastest
    with pytest.raises(InfeasibleError) as info:
        explore(conv_net(), n_subs=2, templates=["systolic"],
                space={"systolic": {"rows": [16], "cols": [16], "dataflow": ["ws"]}}, dram_bws=(4.0,))
    assert "None of the 1 chip(s) of 2 sub-accelerator(s) within the budgets" in info.value.cause
    assert "identical subs" in info.value.cause and "fewer sub-accelerators" in info.value.fix
    assert info.value.best_bound is None and not isinstance(info.value, ValueError)


def test_max_pareto_limits_the_hetero_pareto_set_and_keeps_the_best():
    hetero = get_template("hetero")[0]
    _, options = hetero.split_params({"templates": ",".join(TEMPLATES)})
    full = hetero.explore(mobile_block(), grid=SPACE, **options)
    assert len(full.pareto) > 2
    _, capped = hetero.split_params({"templates": ",".join(TEMPLATES), "max_pareto": "1"})
    fastest = hetero.explore(mobile_block(), grid=SPACE, **capped)
    assert fastest.pareto == (fastest.best,) and fastest.best == full.best
    smallest = hetero.explore(mobile_block(), grid=SPACE, objective="area_mm2", **capped)
    assert smallest.pareto == (full.pareto[0], smallest.best)  # the fastest, then the best (kept beyond the cap)
    assert smallest.best.area_mm2 == min(p.area_mm2 for p in full.pareto)


def test_too_many_chips_are_refused_before_they_are_built(monkeypatch):
    import nn2hw.hardware.asic.hetero.search as search

    nets = {"resnet": resnet20(), "mobile": mobile_block()}
    every = explore(nets, templates=TEMPLATES, space=SPACE).n_chips  # no budgets: every chip counted
    monkeypatch.setattr(search, "MAX_CHIPS", every - 1)

    def refuse(*args, **kwargs):
        raise AssertionError("the chips were enumerated before the limit was checked")

    monkeypatch.setattr(search.itertools, "combinations_with_replacement", refuse)
    with pytest.raises(ConfigError, match=f"^{every} chips to enumerate"):
        explore(nets, templates=TEMPLATES, space=SPACE)


def test_fewer_networks_than_subs_is_refused():
    with pytest.raises(ConfigError, match="idle"):
        explore({"a": resnet20(), "b": mobile_block()}, n_subs=3, templates=TEMPLATES, space=SPACE)


def test_hetero_template_parses_subs_and_budgets():
    hetero = get_template("hetero")[0]
    design_params, options = hetero.split_params({"subs": "nvdla:nv_full,shidiannao", "max_pes": "4096",
                                                  "latency_ms": "2"})
    design = hetero.design_from_params(design_params)
    assert [s.template for s in design.subs] == ["nvdla", "shidiannao"] and design.subs[0].design.atomic_c == 64
    assert options["budgets"].max_pes == 4096 and options["specs"].latency_ms == 2
    cost = hetero.cost(mobile_block(), design, **options)
    assert {r.name for r in cost.resources} == {"pes"} and cost.fits
    with pytest.raises(ConfigError, match="hetero template has no option or design parameter 'max_pe'"):
        hetero.split_params({"max_pe": "1"})
