"""Contract every registered hardware template must keep (the registry is the test inventory)."""

from __future__ import annotations

import pytest

from nn2hw.hardware import TEMPLATES, get_template
from nn2hw.workload import Layer, OpKind
from tests.hardware.nets import chain, conv

NAMES = TEMPLATES.names()


def tiny_net():
    layers = [conv("c1", 3, 16, 16, stride=2), conv("c2", 16, 32, 8),
              Layer(name="pool", kind=OpKind.POOL, op="AdaptiveAvgPool2d", in_channels=32, out_channels=32, in_h=8,
                    in_w=8, kernel_h=8, kernel_w=8, stride_h=8, stride_w=8)]
    return chain("tiny", layers)


@pytest.mark.parametrize("name", NAMES)
def test_template_declares_itself(name):
    template = TEMPLATES.get(name)
    assert template.name == name and template.description
    assert template.devices()
    for device in template.devices():
        assert get_template(f"{name}:{device}") == (template, device)


@pytest.mark.parametrize("name", NAMES)
def test_explore_costs_or_lists_every_operation(name):
    template = TEMPLATES.get(name)
    net = tiny_net()
    found = template.explore(net, template.devices()[0])
    best = found.best
    assert best.fits and best.total_cycles > 0 and best.latency_ms > 0
    assert found.n_feasible >= 1 and best in found.pareto
    named = {layer.name for layer in best.layers} | {op.name for op in best.uncosted}
    assert {layer.name for layer in net.layers if layer.kind is not OpKind.INPUT} <= named
    assert best.total_cycles == pytest.approx(sum(layer.cycles for layer in best.layers))
