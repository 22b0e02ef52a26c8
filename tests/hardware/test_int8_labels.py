"""The predicted templates offer int8 only where their kernel predictor prices it faster than fp32
(``label_base``): on a CPU whose int8 kernels are slower (x86 without VNNI) a dense kernel becomes
``compute-fp32`` and the search space leaves out its quantization. Seconds: a stub predictor."""

from __future__ import annotations

from collections import Counter

import pytest

from nn2hw.compress import SpaceContext
from nn2hw.compress.quantize import ActivationRange
from nn2hw.hardware.base import TEMPLATES
from nn2hw.hardware.predicted import INT8_SLOWER, int8_slower, predicted_cost
from nn2hw.plan import Plan
from nn2hw.predict.kernels import kernels_of
from nn2hw.space import build_space
from nn2hw.testing.workloads import conv_net
from nn2hw.workload import Workload

pytest.importorskip("onnx")


class PricedKernels:
    """A kernel predictor pricing each kernel by type: dense fp32 1 ms, int8 `fast` or `slow` per head
    layer, the rest 0.01 ms (enough for int8_slower and predicted_cost)."""

    kind = "kernel"

    def __init__(self, slow: set[str]) -> None:
        self.slow = slow

    def predict_layers(self, workload: Workload) -> dict[str, float]:
        def price(kernel) -> float:
            if kernel.type in ("conv_int8", "gemm_int8"):
                return 1.5 if kernel.name in self.slow else 0.4
            return 1.0 if kernel.type in ("conv", "dwconv", "gemm") else 0.01

        return {kernel.name: price(kernel) for kernel in kernels_of(workload)}


@pytest.fixture
def priced(monkeypatch):
    """(the predictor template, a function making its ``label_base`` see a given predictor)."""
    template = TEMPLATES.get("predictor")

    def prices(stub) -> None:
        monkeypatch.setattr(type(template), "predictor", lambda self, device, options: stub)

    return template, prices


def test_int8_slower_names_the_dense_kernels_whose_int8_form_costs_more():
    work = conv_net()
    assert int8_slower(work, PricedKernels({"c2"})) == ("c2",)
    assert int8_slower(work, PricedKernels(set())) == ()
    assert int8_slower(work, PricedKernels({"c1", "c2"})) == ("c1", "c2")


def _space(template, work, labels):
    space = build_space(work, labels, Plan.for_workload(work, work.name), remedies=template.remedies,
                        vocabulary=template.bottlenecks, space_options=template.space_options,
                        context=SpaceContext(activation_range=lambda _: ActivationRange(4.0, 4.0)))
    return Counter((d.technique, layer) for d in space.dimensions for layer in d.layers)


def test_the_space_leaves_out_int8_where_it_does_not_pay(priced):
    template, prices = priced
    work = conv_net()
    slow = PricedKernels({"c2"})
    prices(slow)
    base = predicted_cost(template, "stub", work, slow)
    labelled = template.label_base(work, base, "stub")
    labels = {layer.name: layer.bottleneck for layer in labelled.layers}
    assert labels["c1"] == "compute" and labels["c2"] == INT8_SLOWER
    assert any("int8 not offered on 1 dense kernel(s)" in note and "c2" in note for note in labelled.notes)
    assert INT8_SLOWER in template.bottlenecks and "quantize" not in template.remedies[INT8_SLOWER]
    before = _space(template, work, {layer.name: layer.bottleneck for layer in base.layers})
    after = _space(template, work, labels)
    assert before[("quantize", "c2")] == 1 and before[("quantize", "c1")] == 1
    assert after == before - Counter({("quantize", "c2"): 1})  # only c2's int8 goes


def test_nothing_changes_where_int8_pays_or_the_predictor_is_whole_network(priced):
    template, prices = priced
    work = conv_net()
    fast = PricedKernels(set())
    prices(fast)
    base = predicted_cost(template, "stub", work, fast)
    assert template.label_base(work, base, "stub") is base
    prices(type("Whole", (), {"kind": "network"})())
    slow = predicted_cost(template, "stub", work, PricedKernels({"c1", "c2"}))
    assert template.label_base(work, slow, "stub") is slow
