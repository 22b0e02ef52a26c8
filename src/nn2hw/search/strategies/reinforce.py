"""The HotNAS REINFORCE controller and the FNAS reward variant (reference §2.7, §3.2), registered.

The policy is a small torch LSTM (``_reinforce``), imported only when a search builds it, so that
listing strategies or importing ``nn2hw.search`` does not import torch.
"""

from __future__ import annotations

from typing import Any

from nn2hw.search.strategies.base import STRATEGIES, StrategyInfo
from nn2hw.search.strategies.sampler import SamplerContext, StrategySampler


def _build(kind: str) -> Any:
    def build(ctx: SamplerContext) -> StrategySampler:
        from nn2hw.search.strategies import _reinforce

        cls = _reinforce.FnasReinforce if kind == "fnas" else _reinforce.Reinforce
        return StrategySampler(cls(ctx.counts, ctx.reward, ctx.seed, **ctx.options), ctx)

    return build


STRATEGIES.register("reinforce", StrategyInfo(
    "reinforce", "HotNAS REINFORCE controller (LSTM policy, EMA baseline, HotNAS reward)", _build("reinforce")))
STRATEGIES.register("fnas", StrategyInfo(
    "fnas", "REINFORCE with the FNAS reward (code version: clipped, EMA accuracy baseline)", _build("fnas")))
