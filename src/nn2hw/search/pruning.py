"""Early stopping of hopeless candidates: the fine-tune of a candidate is scored at a few
checkpoints and Optuna's pruner stops it when it is clearly worse than the candidates before it.

The pruners (``PRUNERS``) are Optuna's: ``median`` (``MedianPruner``: stop a candidate whose
score at a checkpoint is below the median of the completed trials' scores there) and ``halving``
(``SuccessiveHalvingPruner``, reduction factor 2, first rung at the first checkpoint: keep the top
half at each rung); ``none`` switches early stopping off. Every pruner is wrapped
(``StudyPruner``) so that it decides exactly as in an uninterrupted run: it sees the finished
trials only (completed and pruned; not the failed trial of an interrupted run, nor the running
trials of other workers), and it stops nothing until ``warmup`` trials have been fine-tuned to
the end.

A pruned trial ends in state PRUNED with user attributes ``pruned_at`` (batches) and
``<metric>_partial`` (its score at that checkpoint, on the first ``images`` of the scoring
split); the store records no result for it. Only single-objective, single-network searches with
the default evaluator are pruned (Optuna prunes single-objective studies only; a user's evaluator
reports no checkpoints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import optuna
from optuna.pruners import BasePruner, MedianPruner, SuccessiveHalvingPruner
from optuna.trial import FrozenTrial, TrialState

from nn2hw.errors import ConfigError
from nn2hw.evaluate.evaluator import Checkpoints
from nn2hw.search.evaluations import takes_checkpoints

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext

PRUNERS: Mapping[str, str] = {
    "median": "stop a candidate scoring below the median of the completed trials at a checkpoint (Optuna "
              "MedianPruner)",
    "halving": "successive halving: keep the top half of the candidates at each rung (Optuna "
               "SuccessiveHalvingPruner, reduction factor 2)",
    "none": "no early stopping: every candidate that meets the specs is fine-tuned to the end",
}
"""The pruner names ``--pruner`` takes, with what each does."""

HALVING_FACTOR = 2
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def check_pruner(name: str) -> None:
    """A ``ConfigError`` naming the choices when ``name`` is not a pruner of ``PRUNERS``."""
    if name not in PRUNERS:
        raise ConfigError(f"There is no pruner named {name!r}.",
                          f"Use --pruner with one of: {', '.join(PRUNERS)} ('none' switches early stopping off).")


def checkpoint_steps(batches: int, count: int) -> tuple[int, ...]:
    """The batches after which a fine-tune of ``batches`` is scored: ``count`` evenly spaced inside
    it (3 of 100: 25, 50, 75); none when it is too short."""
    steps = {round(batches * k / (count + 1)) for k in range(1, count + 1)}
    return tuple(sorted(s for s in steps if 0 < s < batches))


class _FinishedTrials:
    """A study as a pruner should see it: its finished trials only (completed and pruned)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def get_trials(self, deepcopy: bool = True, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        wanted = FINISHED if states is None else tuple(s for s in states if s in FINISHED)
        return self._study.get_trials(deepcopy=deepcopy, states=wanted)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class StudyPruner(BasePruner):
    """An Optuna pruner that decides as in an uninterrupted single-worker run: shown the finished
    trials only, and its verdict ignored until ``warmup`` trials completed their fine-tune with
    checkpoints (it is still asked, so that successive halving records every rung)."""

    def __init__(self, name: str, inner: BasePruner, warmup: int) -> None:
        self.name, self.inner, self.warmup = name, inner, warmup

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        verdict = self.inner.prune(cast(optuna.Study, _FinishedTrials(study)), trial)
        trained = sum(bool(t.intermediate_values)
                      for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return verdict and trained >= self.warmup


def build_pruner(name: str, steps: Sequence[int], warmup: int) -> StudyPruner | None:
    """The pruner ``name`` for checkpoints at ``steps`` (None for 'none' or no checkpoints)."""
    check_pruner(name)
    if name == "none" or not steps:
        return None
    inner: BasePruner = (MedianPruner(n_startup_trials=0, n_warmup_steps=0) if name == "median" else
                         SuccessiveHalvingPruner(min_resource=steps[0], reduction_factor=HALVING_FACTOR))
    return StudyPruner(name, inner, warmup)


class Pruned(optuna.TrialPruned):
    """A candidate stopped at a checkpoint: after ``step`` batches it scored ``score``."""

    def __init__(self, step: int, score: float, metric: str) -> None:
        super().__init__(f"pruned at {step} batches ({metric} {score:.2f} %)")
        self.step, self.score = step, score


def trial_checkpoints(trial: optuna.Trial, metric: str, steps: Sequence[int], images: int) -> Checkpoints:
    """The checkpoints of ``trial``'s fine-tune: each score is reported to the study (its
    intermediate value at that step) and the study's pruner asked; ``Pruned`` stops the trial."""
    def report(step: int, metrics: Mapping[str, float]) -> None:
        score = float(metrics[metric])
        trial.report(score, step)
        if trial.should_prune():
            raise Pruned(step, score, metric)

    return Checkpoints(tuple(steps), images, report)


def record_pruned(trial: optuna.Trial, metric: str, step: int, score: float) -> None:
    """The user attributes of a pruned trial: where it stopped and its partial score."""
    trial.set_user_attr("pruned_at", step)
    trial.set_user_attr(f"{metric}_partial", score)


def pruned_before(study: optuna.Study, plan_key: str) -> FrozenTrial | None:
    """The first pruned trial of the same candidate, if any: a candidate proposed again after it was
    pruned is not fine-tuned again (its checkpoints are seeded: it would score the same)."""
    return next((t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
                 if t.user_attrs.get("plan_key") == plan_key and "pruned_at" in t.user_attrs), None)


def study_pruner(ctx: SearchContext, objectives: int) -> tuple[StudyPruner | None, str]:
    """The study's pruner (None when it prunes nothing) and one line for the log saying what it
    does or why it is off: ``--pruner none``, two objectives (Optuna prunes single-objective studies
    only), several networks, an evaluator that reports no checkpoints, or too short a fine-tune."""
    s = ctx.settings
    steps = checkpoint_steps(s.finetune.batches, s.prune_checkpoints)
    why = ("--pruner none" if s.pruner == "none" else
           "a two-objective strategy: Optuna prunes single-objective studies only" if objectives != 1 else
           "a joint search of several networks" if len(ctx.members) > 1 else
           "the evaluator reports no checkpoints" if not takes_checkpoints(ctx) else
           f"a fine-tune of {s.finetune.batches} batches is too short for checkpoints" if not steps else "")
    if why:
        return None, f"early stopping: off ({why})"
    pruner = build_pruner(s.pruner, steps, s.prune_warmup)
    return pruner, (f"early stopping: {s.pruner} rule at {', '.join(map(str, steps))} of {s.finetune.batches} "
                    f"batches on {s.prune_images} images, once {s.prune_warmup} fine-tunes ran to the end")

