"""``layer_drop`` as a search dimension: one keep/drop dimension per block where a template's remedies
(or a space file) name it, never the first block of a stack (so no candidate is an empty network),
never a block that changes shapes; the workload and the model agree on the candidates; the per-layer
report lists the removed layers; a tiny MiniLM search proposes, costs and reports drops."""

from __future__ import annotations

import json

import pytest
import torch

from nn2hw.compress import apply_plan, validate_plan
from nn2hw.compress.layer_drop import block_of
from nn2hw.hardware.records import LayerCost, NetworkCost
from nn2hw.plan import Plan
from nn2hw.report.layers import REMOVED, layer_rows
from nn2hw.space import build_space
from nn2hw.testing import nets
from nn2hw.workload import from_module


def _space(workload, name="net"):
    bottlenecks = {layer.name: "any" for layer in workload.compute_layers}
    return build_space(workload, bottlenecks, Plan.for_workload(workload, name), remedies={"any": ("layer_drop",)})


@pytest.fixture(scope="module")
def tiny_bert():
    model, inputs = nets.bert(layers=3)
    return model, inputs, from_module(model, inputs, name="tiny-bert")


def test_each_block_but_the_first_is_one_keep_or_drop_dimension(tiny_bert):
    model, inputs, workload = tiny_bert
    space = _space(workload, "tiny-bert")
    blocks = [{block_of(n) for n in d.layers} for d in space.dimensions]
    assert blocks == [{"encoder.layer.1"}, {"encoder.layer.2"}]  # encoder.layer.0 is kept: never all dropped
    for dim in space.dimensions:
        assert dim.technique == "layer_drop" and dim.choices == (None, {"drop": True}) and dim.leanest == 1
        assert len(dim.layers) == 6  # Q, K, V, attention output, FFN in, FFN out: marked together
    leanest = space.decode([d.leanest for d in space.dimensions]).plan
    validate_plan(leanest, workload)  # the leanest candidate keeps a block
    shorter = apply_plan(leanest, workload)
    assert shorter.macs < workload.macs and not any(block_of(n) in ("encoder.layer.1", "encoder.layer.2")
                                                    for n in (layer.name for layer in shorter.layers))
    new = apply_plan(leanest, model, inputs)  # the torch side runs the same shorter network
    with torch.no_grad():
        assert new(*inputs)[0].shape == model(*inputs)[0].shape


def test_a_remedy_that_does_not_name_it_offers_nothing(tiny_bert):
    _, _, workload = tiny_bert
    bottlenecks = {layer.name: "any" for layer in workload.compute_layers}
    space = build_space(workload, bottlenecks, Plan.for_workload(workload, "tiny-bert"),
                        remedies={"any": ("channel_cut",)})
    assert not any(d.technique == "layer_drop" for d in space.dimensions)


def test_a_resnet_offers_only_its_same_shape_blocks():
    from nn2hw.api import zoo_workload

    workload = zoo_workload("resnet20", "fashion-mnist")
    offered = sorted({block_of(d.layers[0]) for d in _space(workload, "resnet20").dimensions})
    # layerN.0 is first in its stack (and layer2.0/layer3.0 downsample): kept
    assert offered == ["layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]


def test_the_per_layer_report_lists_the_removed_layers(tiny_bert):
    _, _, workload = tiny_bert
    space = _space(workload, "tiny-bert")
    plan = space.decode([1, 0]).plan  # drop encoder.layer.1
    after = apply_plan(plan, workload)

    def cost(w):
        return NetworkCost(template="t", device="d", design={}, clock_mhz=100.0,
                           layers=tuple(LayerCost(layer.name, layer.op, layer.macs, 1.0, 1.0, "any")
                                        for layer in w.layers if layer.name != "input"))

    rows = {r.layer: r for r in layer_rows(cost(workload), cost(after), {}, plan, workload, after)}
    dense = rows["encoder.layer.1.intermediate.dense"]
    assert (dense.technique, dense.choice, dense.solution_ms) == ("layer drop", "block encoder.layer.1 dropped", 0.0)
    removed = [r for name, r in rows.items() if name not in after]
    assert len(removed) > 6 and all(r.solution_ms == 0.0 for r in removed)
    assert {r.technique for r in removed} == {"layer drop", REMOVED}  # its softmax, norms, adds and matmuls too
    assert rows["encoder.layer.2.intermediate.dense"].technique == "-"

    moot = plan.with_choice("encoder.layer.1.intermediate.dense", weight_bits=8)  # gone with its block
    rows = {r.layer: r for r in layer_rows(cost(workload), cost(after), {}, moot, workload, after)}
    dense = rows["encoder.layer.1.intermediate.dense"]
    assert dense.choice == "block encoder.layer.1 dropped" and "quantization" in dense.technique


@pytest.mark.data
def test_a_tiny_minilm_search_proposes_costs_and_reports_drops(tmp_path, shared_data):
    """A real search of 4 random trials on MiniLM at 8 tokens on the systolic array, a constant
    evaluator (the accuracy side is not what is tested): about 10 s, most of it loading MiniLM."""
    pytest.importorskip("safetensors")
    from nn2hw.errors import CheckpointError
    from nn2hw.search import SearchSettings, Spec, run_search

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"exclude": ["*matmul*"], "techniques": {
        "layer_drop": {"bottlenecks": ["compute", "mapping", "fill-drain", "sram-bandwidth", "dram"]},
        "channel_cut": False, "quantize": False}}))
    settings = SearchSettings(model="minilm_l6", dataset="wordnet-supersense", hardware="systolic",
                              spec=Spec(latency_ms=0.45), seq_len=8, strategy="random", trials=4,
                              space_config=str(space), out=str(tmp_path / "o"))
    try:
        result = run_search(settings, evaluator=lambda model: {"top1": 50.0, "top5": 90.0}, progress=False,
                            log=lambda _: None)
    except CheckpointError as exc:
        pytest.skip(f"MiniLM is not here ({exc.cause})")
    dropped = {block_of(n) for n, c in result.solution.plan.choices.items() if c.values.get("drop")}
    assert dropped and "encoder.layer.0" not in dropped and len(dropped) <= 5
    assert result.solution.cost.latency_ms <= 0.45 < result.baseline.cost.latency_ms
    rows = {r.layer: r for r in result.rows}
    for block in dropped:
        row = rows[f"{block}.output.dense"]
        assert row.technique == "layer drop" and row.solution_ms == 0
    trials = (tmp_path / "o" / "trials.csv").read_text()
    assert "layer_drop:encoder.layer." in trials and " dropped" in trials
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert any("dropped" in r["choice"] for r in report["layers"])


def test_minimizing_removes_changes_inside_a_dropped_block(tiny_bert):
    from nn2hw.api import minimize_plan
    from nn2hw.compress import with_dropped_blocks
    from nn2hw.hardware.base import get_template

    _, _, workload = tiny_bert
    base = Plan.for_workload(workload, "tiny-bert")
    dropped = with_dropped_blocks(base, workload, ["encoder.layer.2"])
    moot = dropped.with_choice("encoder.layer.2.output.dense", weight_bits=8)  # gone with its block
    template, _ = get_template("systolic")
    limit = template.explore(apply_plan(dropped, workload)).best.latency_ms * 1.001
    found = minimize_plan(moot, "systolic", latency_ms=limit, workload=workload)
    assert [c.technique for c in found.removed] == ["quantize"] and found.removed[0].saved_ms == 0.0
    assert found.plan.choices.keys() == dropped.choices.keys()  # the drop pays for itself: kept
