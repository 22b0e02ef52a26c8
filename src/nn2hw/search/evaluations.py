"""The accuracy side of a candidate: each network's plan applied to its base model and scored by
its evaluator, once per evaluation key in the study's accuracy store (``nn2hw.evaluate.store``),
and the networks' metrics combined into the candidate's."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from nn2hw.compress import apply_plan
from nn2hw.evaluate.evaluator import Checkpoints
from nn2hw.evaluate.store import EvaluationStore, evaluation_key
from nn2hw.plan import Plan

TRAINED_KEPT = 2
"""Fine-tuned candidates kept in memory for their test under device variation (the latest)."""

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.search.context import MemberContext, SearchContext


def joint_key(plans: Mapping[str, Plan]) -> str:
    """One key for a candidate's networks (the plan's own key when there is one network)."""
    if len(plans) == 1:
        return next(iter(plans.values())).network_key
    text = json.dumps(sorted((net, plan.network_key) for net, plan in plans.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def joint_metrics(per_network: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The networks' metrics averaged (one network: its own), over the keys every network has;
    image counts add up and a result is partial when any network's is."""
    shared = set.intersection(*(set(m) for m in per_network.values()))
    combine: dict[str, Callable[[list[float]], float]] = {"n_images": sum, "partial": max}
    return {k: combine.get(k, _mean)([m[k] for m in per_network.values()]) for k in sorted(shared)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def evaluate_plan(member: MemberContext, plan: Plan, checkpoints: Checkpoints | None = None,
                  keep: OrderedDict[str, nn.Module] | None = None) -> Mapping[str, float]:
    """Apply ``plan`` to a copy of the member's base model and score it (fine-tune + test by default),
    reporting ``checkpoints`` on the way when its evaluator takes them (``reports_checkpoints``);
    ``keep`` receives the scored model by network key (the latest ``TRAINED_KEPT``)."""
    model = apply_plan(plan, member.model)
    if checkpoints is not None and getattr(member.evaluator, "reports_checkpoints", False):
        metrics = member.evaluator(model, checkpoints=checkpoints)  # type: ignore[call-arg]
    else:
        metrics = member.evaluator(model)
    if keep is not None:
        keep[plan.network_key] = model
        while len(keep) > TRAINED_KEPT:
            keep.popitem(last=False)
    return metrics


def takes_checkpoints(ctx: SearchContext) -> bool:
    """Whether a candidate's evaluation can report checkpoints: one network whose evaluator takes them."""
    return len(ctx.members) == 1 and bool(getattr(ctx.members[0].evaluator, "reports_checkpoints", False))


def evaluate_networks(ctx: SearchContext, plans: Mapping[str, Plan], store: EvaluationStore,
                      checkpoints: Checkpoints | None = None) -> tuple[dict[str, dict[str, float]], bool]:
    """Each network's metrics (shared through the store) and whether any was computed here.
    ``checkpoints`` (early stopping, one network only): an evaluation they stop stores nothing."""
    per_network, computed = {}, False
    for m in ctx.members:
        key = evaluation_key(plans[m.name].network_key, m.name, m.member.dataset, m.evaluator_id)
        keep = ctx.trained if ctx.settings.min_accuracy_under_variation is not None else None
        result = store.evaluate(key, partial(evaluate_plan, m, plans[m.name], checkpoints, keep))
        per_network[m.name] = dict(result.metrics)
        computed |= result.computed
    return per_network, computed


def base_metric(ctx: SearchContext, store: EvaluationStore) -> float:
    """The base models' score under the same evaluation as every candidate (shared, computed once)."""
    per_network, _ = evaluate_networks(ctx, ctx.space.bases, store)
    return joint_metrics(per_network)[ctx.settings.metric]
