"""Hot-start co-search (HotNAS generalized): ``run_search(SearchSettings(...)) -> SearchResult``.

Layers: ``strategies`` (registry of samplers), ``study`` (persistent Optuna storage),
``context`` (what a worker prepares once), ``evaluations`` (candidates scored through the shared
accuracy store), ``trial`` (cost first, train what meets the specs), ``loop`` (budget, workers,
progress), ``finalize`` (the guarantee and the exports). See docs/search.md.

Importing this package does not import torch; ``STRATEGIES`` (whose REINFORCE controller needs
it) loads on first use.
"""

from __future__ import annotations

from typing import Any

from nn2hw.search.finalize import SearchResult, Solution
from nn2hw.search.loop import run_search
from nn2hw.search.settings import SearchSettings
from nn2hw.search.spec import Spec

__all__ = ["STRATEGIES", "SearchResult", "SearchSettings", "Solution", "Spec", "run_search"]


def __getattr__(name: str) -> Any:
    """``STRATEGIES``, loaded when first used."""
    if name == "STRATEGIES":
        from nn2hw.search.strategies import STRATEGIES

        return STRATEGIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
