"""Hot-start co-search (HotNAS generalized): ``run_search(SearchSettings(...)) -> SearchResult``.

Layers: ``strategies`` (registry of samplers), ``study`` (persistent Optuna storage),
``context`` (what a worker prepares once), ``evaluations`` (candidates scored through the shared
accuracy store), ``trial`` (cost first, train what meets the specs), ``loop`` (budget, workers,
progress), ``finalize`` (the guarantee and the exports). See docs/search.md.

Importing this package does not import torch (the strategies that need it import it when built).
"""

from __future__ import annotations

from nn2hw.search.finalize import SearchResult, Solution
from nn2hw.search.loop import run_search
from nn2hw.search.settings import SearchSettings
from nn2hw.search.strategies import STRATEGIES
from nn2hw.spec import Spec

__all__ = ["STRATEGIES", "SearchResult", "SearchSettings", "Solution", "Spec", "run_search"]
