"""The evaluator protocol and the default FinetuneEvaluator."""

from __future__ import annotations

import json
from collections.abc import Mapping

import torch

from nn2hw.evaluate import Evaluator, FinetuneEvaluator, FinetuneSettings, evaluation_key, evaluator_id, local_store
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


def test_a_user_evaluator_plugs_into_the_store(tmp_path):
    def my_evaluator(model: torch.nn.Module) -> dict[str, float]:
        return {"top1": 50.0, "params": float(sum(p.numel() for p in model.parameters()))}

    assert isinstance(my_evaluator, Evaluator)
    store = local_store(tmp_path / "acc.sqlite")
    key = evaluation_key("plan-a", "tiny", "my-data", evaluator_id(my_evaluator, "val"))
    result = store.evaluate(key, lambda: my_evaluator(TinyNet()))
    assert result.computed and result.metrics["params"] == 4 * 9 + 8 + 4 * 2 + 2


def test_declared_cache_fields_identify_the_settings():
    tuned, other = _evaluator(), _evaluator(max_test_images=30)
    assert evaluator_id(tuned, "weights") != evaluator_id(other, "weights")
    assert evaluator_id(tuned, "weights") != evaluator_id(tuned, "other weights")
    assert json.loads(evaluator_id(tuned, "weights")) == ["FinetuneEvaluator", *tuned.cache_fields, "weights"]

    def plain(model):
        return {"top1": 1.0}

    assert json.loads(evaluator_id(plain, None)) == [plain.__qualname__, None]  # no fields: known by name only
