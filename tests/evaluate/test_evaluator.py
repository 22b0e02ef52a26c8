"""The evaluator protocol and the default FinetuneEvaluator."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from nn2hw.data import ArrayDataset
from nn2hw.errors import DatasetError
from nn2hw.evaluate import AccuracyCache, Evaluator, FinetuneEvaluator, FinetuneSettings, make_key, prepare
from tests.evaluate.nets import TinyNet, bright_dark


def _evaluator(**kwargs) -> FinetuneEvaluator:
    settings = FinetuneSettings(batches=20, batch_size=16, lr=0.05)
    return FinetuneEvaluator("bright-dark", settings=settings, train_data=bright_dark(256),
                             test_data=bright_dark(100, seed=9), threads=1, progress=False, **kwargs)


def test_default_evaluator_fine_tunes_then_tests():
    evaluator = _evaluator()
    assert isinstance(evaluator, Evaluator)
    torch.manual_seed(0)
    metrics = evaluator(TinyNet())
    assert isinstance(metrics, Mapping) and set(metrics) == {"top1", "top5", "n_images", "partial"}
    assert metrics["n_images"] == 100.0 and metrics["partial"] == 0.0 and metrics["top1"] > 90.0
    assert evaluator.last_metrics.top1 == metrics["top1"]


def test_bounded_test_images_are_partial_and_keyed_apart():
    evaluator = FinetuneEvaluator("bright-dark", settings=FinetuneSettings(batches=0), test_data=bright_dark(100),
                                  max_test_images=30, threads=1, progress=False)
    metrics = evaluator(TinyNet())
    assert metrics["n_images"] == 30.0 and metrics["partial"] == 1.0
    assert evaluator.cache_fields[:2] == ("bright-dark", "test[:30]")
    assert _evaluator().cache_fields == ("bright-dark", "test", FinetuneSettings(20, 16, 0.05).key)


def test_a_user_evaluator_plugs_into_the_cache(tmp_path):
    def my_evaluator(model: torch.nn.Module) -> dict[str, float]:
        return {"top1": 50.0, "params": float(sum(p.numel() for p in model.parameters()))}

    assert isinstance(my_evaluator, Evaluator)
    cache = AccuracyCache(tmp_path / "acc.sqlite")
    key = make_key("plan-a", "my-data", "val", "my-settings")
    metrics, cached = cache.get_or_compute(key, lambda: my_evaluator(TinyNet()))
    assert not cached and metrics["params"] == 4 * 9 + 8 + 4 * 2 + 2


def test_prepare_uses_the_zoo_normalization_and_checks_the_shape():
    pixels = np.full((2, 1, 28, 28), 255, dtype=np.uint8)
    data = ArrayDataset("fashion-mnist", "test", pixels, np.zeros(2, np.int64), tuple("0123456789"), 10000, "mem")
    images, _ = prepare(data, "resnet20").batch(np.arange(1))
    # Fashion-MNIST statistics of the zoo variant: mean 0.2860, std 0.3530.
    assert images.flatten()[0].item() == pytest.approx((1.0 - 0.2860) / 0.3530, rel=1e-6)
    wrong = ArrayDataset("fashion-mnist", "test", np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2, np.int64),
                         tuple("0123456789"), 10000, "mem")
    with pytest.raises(DatasetError, match=r"takes inputs \(1, 28, 28\)"):
        prepare(wrong, "resnet20")
