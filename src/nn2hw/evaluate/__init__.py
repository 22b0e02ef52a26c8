"""Accuracy evaluation: HotNAS's short fine-tune, frozen top-1/top-5 tests, the evaluator
protocol, the accuracy store, and training from scratch.

- ``finetune(model, train_data, batches=100, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-4,
  seed=0)`` trains in place, seeded and deterministic, on 2 threads by default;
- ``test(model, data) -> Metrics`` (top1/top5 in percent, n_images, partial);
- ``Evaluator``: the protocol of a pluggable evaluator (any ``model -> Mapping[str, float]``,
  optionally declaring ``cache_fields``), ``FinetuneEvaluator`` the default one;
- ``EvaluationStore``: measurements by ``evaluation_key``, each claimed and made once, shared by
  processes (``local_store(path)``: in an SQLite file);
- ``nn2hw.evaluate.train``: the from-scratch training recipe of the Fashion-MNIST zoo.

Importing this package imports neither torch nor SQLAlchemy: the names that need them load on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from nn2hw.evaluate.evaluator import Evaluator, FinetuneEvaluator, checked_metrics, evaluator_id
from nn2hw.evaluate.settings import FinetuneSettings

_LAZY = {"FinetuneResult": "loops", "Metrics": "loops", "finetune": "loops", "test": "loops",
         "run_context": "runtime", "Evaluated": "store", "EvaluationStore": "store", "evaluation_key": "store",
         "local_store": "store"}

__all__ = ["Evaluated", "EvaluationStore", "Evaluator", "FinetuneEvaluator", "FinetuneResult", "FinetuneSettings",
           "Metrics", "checked_metrics", "evaluation_key", "evaluator_id", "finetune", "local_store", "run_context",
           "test"]


def __getattr__(name: str) -> Any:
    """The names whose modules import torch or SQLAlchemy, loaded when first used."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
