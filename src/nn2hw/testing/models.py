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
from nn2hw.evaluate.settings import FinetuneSettings


class ModelContract:
    """Entry declared (its recovery recipe, if any, a valid fine-tune); each variant builds, maps its
    input shape to its classes (or, with 0 classes, to an embedding), and extracts."""

    def test_declares_itself(self, model: str) -> None:
        entry = zoo.entry(model)
        assert entry.name == model and entry.description and ":" in entry.factory and entry.variants
        for variant in entry.variants:
            if variant.tokens:  # a sequence model: token ids in, a tokenizer, no normalization
                assert variant.tokenizer is not None and not variant.mean and variant.num_classes >= 0
            else:
                assert variant.num_classes >= 1 and len(variant.mean) == variant.channels
        if entry.recovery is not None:  # its recipe makes a valid fine-tune (an unknown optimizer is refused)
            FinetuneSettings(lr=entry.recovery.lr, optimizer=entry.recovery.optimizer)

    def test_every_variant_builds_and_runs(self, model: str) -> None:
        for variant in zoo.entry(model).variants:
            dtype = torch.int64 if variant.tokens else torch.float32
            with torch.device("meta"):
                network = zoo.build(model, variant.dataset)
                out = network.eval()(torch.empty((1, *variant.input_shape), dtype=dtype))
            assert out.ndim == 2 and out.shape[0] == 1, variant.dataset
            assert variant.num_classes in (0, out.shape[1]), variant.dataset  # 0: an embedding of any width

    def test_every_variant_extracts(self, model: str) -> None:
        for variant in zoo.entry(model).variants:
            workload = zoo.workload(model, variant.dataset)
            assert workload.compute_layers and tuple(workload.input_shape) == (1, *variant.input_shape)
            assert not workload.unsupported, [layer.op for layer in workload.unsupported]
