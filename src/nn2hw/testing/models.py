"""The zoo-model conformance suite: a declared entry whose every variant builds, runs and extracts.

Subclass ``ModelContract`` and give the ``model`` fixture (a registered model name)::

    class TestMyModel(ModelContract):
        @pytest.fixture
        def model(self):
            return "my-net"

Networks are built on PyTorch's meta device (shapes only), so even large models check in seconds.
"""

from __future__ import annotations

import torch

from nn2hw import zoo


class ModelContract:
    """Entry declared; each variant builds, maps its input shape to its classes, and extracts."""

    def test_declares_itself(self, model: str) -> None:
        entry = zoo.entry(model)
        assert entry.name == model and entry.description and ":" in entry.factory and entry.variants
        for variant in entry.variants:
            assert variant.num_classes >= 1 and len(variant.mean) == variant.channels

    def test_every_variant_builds_and_runs(self, model: str) -> None:
        for variant in zoo.entry(model).variants:
            with torch.device("meta"):
                network = zoo.build(model, variant.dataset)
                out = network.eval()(torch.empty((1, *variant.input_shape)))
            assert tuple(out.shape) == (1, variant.num_classes), variant.dataset

    def test_every_variant_extracts(self, model: str) -> None:
        for variant in zoo.entry(model).variants:
            workload = zoo.workload(model, variant.dataset)
            assert workload.compute_layers and tuple(workload.input_shape) == (1, *variant.input_shape)
            assert not workload.unsupported, [layer.op for layer in workload.unsupported]
