"""Accuracy evaluation: HotNAS's short fine-tune, frozen top-1/top-5 tests, a SQLite cache, evaluators.

- ``finetune(model, train_data, batches=100, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-4,
  seed=0)`` trains in place, seeded and deterministic, on 2 threads by default;
- ``test(model, data) -> Metrics`` (top1/top5 in percent, n_images, partial);
- ``Evaluator``: the protocol of a pluggable evaluator (any ``model -> Mapping[str, float]``),
  ``FinetuneEvaluator`` the default one;
- ``evaluate_zoo_model``: a zoo checkpoint (+ plan, + fine-tune) on a dataset split (``nn2hw evaluate``);
- ``AccuracyCache``: results per (plan key, model, dataset, split, settings), shared by processes.
"""

from nn2hw.evaluate.cache import AccuracyCache, CacheKey, checked_metrics, make_key
from nn2hw.evaluate.evaluator import Evaluator, FinetuneEvaluator, ZooEvaluation, evaluate_zoo_model, prepare
from nn2hw.evaluate.loops import FinetuneResult, FinetuneSettings, Metrics, finetune, test
from nn2hw.evaluate.runtime import run_context

__all__ = ["AccuracyCache", "CacheKey", "Evaluator", "FinetuneEvaluator", "FinetuneResult", "FinetuneSettings",
           "Metrics", "ZooEvaluation", "checked_metrics", "evaluate_zoo_model", "finetune", "make_key", "prepare",
           "run_context", "test"]
