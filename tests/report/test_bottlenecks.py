"""iDetect: the FPGA template's O/I/W/C rule of reference notes 2.4, and the bottleneck report."""

from __future__ import annotations

import pytest

from nn2hw.hardware.fpga import TEMPLATE
from nn2hw.hardware.fpga.bottleneck import BOTTLENECKS, classify
from nn2hw.hardware.records import LayerCost, NetworkCost
from nn2hw.report.bottlenecks import detect
from tests.hardware.nets import zoo_net


def parts(i, w, o, c):
    return {"input": i, "weight": w, "output": o, "compute": c}


@pytest.mark.parametrize("breakdown, letter", [
    (parts(1, 2, 3, 3), "O"),  # Lat2 == tO also on a tie with the input-channel loop
    (parts(5, 5, 1, 5), "I"),  # ties inside a step go I, then W, then C
    (parts(1, 5, 1, 5), "W"),
    (parts(1, 2, 1, 3), "C"),
    (parts(0, 0, 0, 7), "C"),
])
def test_rule_order(breakdown, letter):
    assert classify(breakdown) == letter


def test_resnet18_layers_on_the_published_design():
    # notes 2.4: HotNAS quantizes ResNet-18's layer3/layer4, weight-load bound in the authors' setting (v0 +
    # shape bug: every layer of those stages is W); with the true shapes only layer4's 3x3 convs are.
    authors = detect(TEMPLATE.cost(zoo_net("resnet18"), "70,36,64,64,7,18,6,6", "zcu102", variant="v0",
                                   compat_shapes=True))
    assert {r.name for r in authors.layers if r.name.startswith(("layer3", "layer4"))} \
        == set(authors.layers_bound_by("W"))
    cost = TEMPLATE.cost(zoo_net("resnet18"), "70,36,64,64,7,18,6,6", "zcu102", clock_mhz=100)
    report = detect(cost, TEMPLATE.bottlenecks)
    by_name = {r.name: r.bottleneck for r in report.layers}
    assert by_name["conv1"] == "C" and by_name["layer1.0.conv1"] == "C"
    assert set(report.layers_bound_by("W")) == {"layer3.0.conv1", "layer4.0.conv1", "layer4.0.conv2",
                                                 "layer4.1.conv1", "layer4.1.conv2"}
    assert all(by_name[f"layer{i}.0.downsample.0"] == "I" for i in (2, 3, 4))  # 1x1: little work per load
    assert sum(report.share_by_bottleneck.values()) == pytest.approx(1.0)
    assert report.dominant == max(report.share_by_bottleneck, key=report.share_by_bottleneck.get)
    assert report.total_cycles == cost.total_cycles
    for key in ("input", "weight", "output", "compute"):
        assert report.component_cycles[key] == pytest.approx(sum(l.breakdown_cycles[key] for l in cost.layers))
    assert [r.bottleneck for r in report.layers] == [layer.bottleneck for layer in cost.layers]


def test_report_serializes_and_names_bottlenecks():
    cost = TEMPLATE.cost(zoo_net("alexnet"), "70,36,64,32,11,18,6,2", "zcu102")
    data = detect(cost, TEMPLATE.bottlenecks).to_dict()
    assert set(data) == {"total_cycles", "share_by_bottleneck", "component_cycles", "dominant", "layers"}
    assert data["layers"][0]["meaning"] == BOTTLENECKS[data["layers"][0]["bottleneck"]]


def test_other_templates_keep_their_own_bottleneck():
    layer = LayerCost(name="x", op="conv", macs=10, cycles=4.0, latency_ms=0.1, bottleneck="NoC")
    report = detect(NetworkCost(template="t", device="d", design={}, clock_mhz=1.0, layers=(layer,)))
    assert report.layers[0].bottleneck == "NoC" and report.share_by_bottleneck["NoC"] == 1.0
