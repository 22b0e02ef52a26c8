"""Conformance suites shipped with nn2hw, as Optuna ships its sampler test cases.

A third-party template, transform, strategy, dataset or model proves it keeps nn2hw's contract by
subclassing the matching suite in its own tests; nn2hw runs them for every registered entry:

- ``nn2hw.testing.templates.TemplateContract``
- ``nn2hw.testing.transforms.TransformContract``
- ``nn2hw.testing.strategies.StrategyContract``
- ``nn2hw.testing.datasets.DatasetContract``
- ``nn2hw.testing.models.ModelContract``

They need pytest (and torch, for transforms, datasets and models); importing one suite imports
only what it checks. ``nn2hw.testing.workloads`` holds small hand-described workloads (no torch)
and ``nn2hw.testing.nets`` small torch networks (a BERT-style encoder, a NAS-Bench-201 cell
network, a ViT) that the extractors and templates are checked on.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUITES = {"TemplateContract": "templates", "TransformContract": "transforms", "StrategyContract": "strategies",
           "DatasetContract": "datasets", "ModelContract": "models"}

__all__ = sorted(_SUITES)


def __getattr__(name: str) -> Any:
    """``from nn2hw.testing import TemplateContract`` imports only that suite's module."""
    if name in _SUITES:
        return getattr(importlib.import_module(f"{__name__}.{_SUITES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
