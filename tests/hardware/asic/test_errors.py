"""Bad input: unmappable layers, impossible budgets, malformed designs and hardware files."""

from __future__ import annotations

import json

import pytest

from nn2hw.errors import ConfigError, HardwareError, InfeasibleError, UnknownNameError
from nn2hw.hardware import get_template
from nn2hw.hardware.asic.eyeriss import EyerissDesign
from nn2hw.hardware.asic.hetero import explore as explore_chip
from nn2hw.hardware.asic.hwfile import load_hardware_file
from nn2hw.hardware.asic.nvdla import NvdlaDesign
from nn2hw.hardware.asic.shidiannao import ShiDianNaoDesign
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.hardware.budgets import Budgets
from tests.hardware.asic.nets import mobile_block, resnet20


def test_depthwise_on_nvdla_names_the_layer_and_the_alternative():
    nvdla = get_template("nvdla")[0]
    for call in (lambda: nvdla.cost(mobile_block()), lambda: nvdla.explore(mobile_block())):
        with pytest.raises(HardwareError) as info:
            call()
        assert "'dw'" in info.value.cause and "depthwise" in info.value.cause
        assert "shidiannao" in info.value.fix and "hetero" in info.value.fix


@pytest.mark.parametrize("name", ["systolic", "shidiannao", "eyeriss"])
def test_other_templates_map_depthwise(name):
    cost = get_template(name)[0].cost(mobile_block())
    assert {layer.name for layer in cost.layers} == {"expand", "dw", "project", "fc"}


@pytest.mark.parametrize("build, field", [
    (lambda: SystolicDesign(rows=0), "rows"),
    (lambda: SystolicDesign(cols=-4), "cols"),
    (lambda: SystolicDesign(rows=2.5), "rows"),
    (lambda: SystolicDesign(ifmap_kib="lots"), "ifmap_kib"),
    (lambda: SystolicDesign(ofmap_kib=0), "ofmap_kib"),
    (lambda: SystolicDesign(dram_bw=0), "dram_bw"),
    (lambda: SystolicDesign(dataflow="rs"), "dataflow"),
    (lambda: NvdlaDesign(atomic_c=True), "atomic_c"),
    (lambda: NvdlaDesign(cbuf_kib=-1), "cbuf_kib"),
    (lambda: ShiDianNaoDesign(pe_rows="8.5"), "pe_rows"),
    (lambda: EyerissDesign(glb_kib=0), "glb_kib"),
    (lambda: EyerissDesign(exclusive_limits="maybe"), "exclusive_limits"),
])
def test_pe_counts_and_buffer_sizes_must_be_positive_integers(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert field in info.value.cause and ("integer" in info.value.cause or "one of" in info.value.cause
                                          or "number" in info.value.cause or "true or false" in info.value.cause)


def test_string_parameters_are_parsed_and_checked():
    systolic = get_template("systolic")[0]
    assert systolic.parse_design({"rows": "16", "dataflow": "OS"}) == SystolicDesign(rows=16, dataflow="os")
    with pytest.raises(ConfigError, match="no option or design parameter 'row'.*Did you mean 'rows'"):
        systolic.split_params({"row": "16"})
    with pytest.raises(ConfigError, match="'rows' is a design parameter of the systolic template") as given:
        systolic.parse_options({"rows": 16})  # e.g. SearchSettings(hw_options=...) where hw_grid was meant
    assert "--hw-param rows=" in given.value.fix and "hw_grid=" in given.value.fix
    with pytest.raises(ConfigError, match="Unknown systolic parameter"):
        systolic.parse_design({"rws": "16"})
    with pytest.raises(UnknownNameError, match="no design preset 'tpu'"):
        systolic.parse_design({"preset": "tpu"})
    with pytest.raises(ConfigError, match="depthwise engine"):
        systolic.parse_design({"dw_design": "1,2,3"})


def test_unknown_technology_suggests_names():
    with pytest.raises(UnknownNameError, match="45nm"):
        get_template("systolic")[0].cost(resnet20(), SystolicDesign(), "45 nm")


def test_impossible_budget_reports_the_smallest_reachable_values():
    systolic = get_template("systolic")[0]
    grid = {"rows": [8, 16], "cols": [8], "ifmap_kib": [16], "filter_kib": [16], "ofmap_kib": [16]}
    with pytest.raises(InfeasibleError) as info:
        systolic.explore(resnet20(), grid=grid, budgets=Budgets(max_pes=32))
    assert "64 PEs" in info.value.cause and "48 KiB" in info.value.cause
    assert info.value.best_bound > 0


def test_impossible_chip_budget_reports_the_smallest_reachable_values():
    with pytest.raises(InfeasibleError) as info:
        explore_chip({"a": resnet20(), "b": mobile_block()}, Budgets(max_pes=16, max_area_mm2=0.01),
                     templates=("systolic", "shidiannao"))
    cause = info.value.cause
    assert "smallest reachable values" in cause and "PEs" in cause and "mm^2" in cause and "words/cycle" in cause


@pytest.mark.parametrize("text, where, expected", [
    ({"template": "systolic", "params": {"rows": -1}}, "params", "integer 1..4096"),
    ({"template": "systolic", "params": {"rows": "many"}}, "params", "integer"),
    ({"template": "tpu"}, "template", "one of eyeriss, nvdla, shidiannao, systolic, hetero"),
    ({"params": {}}, "template", "one of"),
    ({"template": "systolic", "technology": "7nm"}, "technology", "one of 45nm"),
    ({"template": "systolic", "clock_mhz": -5}, "clock_mhz", "positive number"),
    ({"template": "systolic", "params": [1, 2]}, "params", "a mapping"),
    ({"template": "systolic", "colour": "red"}, "(top level)", "unknown field(s) colour"),
    ({"template": "hetero"}, "sub_accelerators", "non-empty list"),
    ({"template": "hetero", "sub_accelerators": [{"name": "a", "template": "nvdla"}, {"template": "shidiannao"}]},
     "sub_accelerators[1].name", "non-empty string"),
    ({"template": "hetero", "sub_accelerators": [{"name": "a", "template": "gpu"}]},
     "sub_accelerators[0].template", "one of eyeriss, nvdla, shidiannao, systolic,"),
    ({"template": "hetero", "sub_accelerators": [{"name": "a", "template": "shidiannao", "params": {"pe_rows": 0}}]},
     "sub_accelerators[0].params", "pe_rows must be an integer 1..1024"),
    ({"template": "hetero", "sub_accelerators": [{"name": "a", "template": "nvdla"}], "budgets": {"max_pes": 0}},
     "budgets", "max_pes"),
    ({"template": "hetero", "sub_accelerators": [{"name": "a", "template": "nvdla"}], "assignment": {"x": "b"}},
     "sub_accelerators", "unknown sub-accelerators"),
    ({"template": "hetero", "sub_accelerators": [{"name": "a", "template": "nvdla"}] * 2},
     "sub_accelerators", "unique"),
])
def test_malformed_hardware_files_name_the_field_and_what_is_expected(tmp_path, text, where, expected):
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(text))
    with pytest.raises(ConfigError) as info:
        load_hardware_file(path)
    message = str(info.value)
    assert str(path) in message and where in message and expected in message, message


def test_unreadable_hardware_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_hardware_file(tmp_path / "missing.yaml")
    bad = tmp_path / "hw.yaml"
    bad.write_text("template: [systolic\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_hardware_file(bad)


def test_a_plugin_array_without_vector_lanes_field_takes_its_last_pe_field():
    from nn2hw.hardware.asic.systolic import SystolicTemplate
    from nn2hw.hardware.asic.template import AsicTemplate
    from nn2hw.testing.workloads import conv_net

    class PluginArray(AsicTemplate):  # declares no vector_lanes_field (systolic's is its last PE field, cols)
        name = "plugin-array"
        description = "systolic's model under another name"
        design_type = SystolicDesign
        pe_fields, sram_fields = SystolicTemplate.pe_fields, SystolicTemplate.sram_fields
        evaluate = SystolicTemplate.evaluate

    design = SystolicDesign(rows=16, cols=8)
    assert PluginArray().vector_lanes(design) == 8.0
    # conv_net ends in a pool, which runs on the vector unit
    plugin, systolic = PluginArray().cost(conv_net(), design), get_template("systolic")[0].cost(conv_net(), design)
    assert [(c.name, c.cycles, c.energy_mj) for c in plugin.layers] == \
        [(c.name, c.cycles, c.energy_mj) for c in systolic.layers]

    class NoLanes(PluginArray):
        pe_fields = ()

    with pytest.raises(HardwareError, match="vector unit has no lanes") as info:
        NoLanes().cost(conv_net(), design)
    assert "vector_lanes_field" in info.value.fix


@pytest.mark.parametrize("name", ["systolic", "hetero"])
def test_an_unknown_budget_names_the_valid_ones(name):
    template = get_template(name)[0]
    with pytest.raises(ConfigError) as info:
        template.split_params({"budgets": {"max_pe": 3}})
    assert "Unknown budget(s) ['max_pe']" in info.value.cause and "'max_pes'" in info.value.cause
    assert info.value.fix == "Budgets may limit: max_pes, max_area_mm2, max_sram_kib, max_dram_bw."
    assert Budgets.from_mapping({"max_pes": "64", "max_dram_bw": 8}) == Budgets(max_pes=64, max_dram_bw=8.0)
    _, options = template.split_params({"budgets": {"max_pes": 64}, "max_dram_bw": "8", "energy_mj": "2"})
    assert options["budgets"] == Budgets(max_pes=64, max_dram_bw=8.0) and options["specs"].energy_mj == 2.0


@pytest.mark.parametrize("value, names", [("systolic, nvdla", ("systolic", "nvdla")), (["eyeriss"], ("eyeriss",)),
                                          (("nvdla", "nvdla"), ("nvdla",))])
def test_hetero_templates_option_takes_a_list_or_a_comma_string(value, names):
    assert get_template("hetero")[0].split_params({"templates": value})[1]["templates"] == names


@pytest.mark.parametrize("value, message", [(3, "'3' is not one of"), (None, "'None' is not one of"),
                                            ("gpu", "'gpu' is not one of"), ("", "names no sub-accelerator"),
                                            ([], "names no sub-accelerator")])
def test_hetero_templates_option_refuses_what_names_no_sub_template(value, message):
    with pytest.raises(ConfigError, match=message) as info:
        get_template("hetero")[0].split_params({"templates": value})
    assert "systolic" in info.value.fix
