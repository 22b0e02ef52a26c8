"""The HotNAS REINFORCE controller and the FNAS reward variant (reference §2.7, §3.2), registered.

The policy is a small torch LSTM (``_reinforce``), imported only when a search builds it, so that
listing strategies or importing ``nn2hw.search`` does not import torch.
"""

from __future__ import annotations

from nn2hw.search.strategies.base import STRATEGIES, Strategy, StrategyInfo
from nn2hw.search.strategies.sampler import own


def _reinforce() -> type[Strategy]:
    from nn2hw.search.strategies._reinforce import Reinforce

    return Reinforce


def _fnas() -> type[Strategy]:
    from nn2hw.search.strategies._reinforce import FnasReinforce

    return FnasReinforce


STRATEGIES.register("reinforce", StrategyInfo(
    "reinforce", "HotNAS REINFORCE controller (LSTM policy, EMA baseline, HotNAS reward)", own(_reinforce)))
STRATEGIES.register("fnas", StrategyInfo(
    "fnas", "REINFORCE with the FNAS reward (code version: clipped, EMA accuracy baseline)", own(_fnas)))
