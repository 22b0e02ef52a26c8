"""RT3-style run-time reconfiguration: one search returns a family of variants, one per latency
level, and the bundle carries a selector (``nn2hw.bundle.BundleFamily.select``).

How the family is built (``--latency-levels-ms 0.30,0.25,0.20``):

- The search targets the **tightest** level the space can reach (``run_family``: a level below the
  leanest candidate, or below what this machine can verify, is reported missing and the next one
  is searched). Every trained candidate then meets every level, and the search's budget goes to
  the hardest level, where accuracy is most at stake.
- Finalize re-checks and fine-tunes the tightest level's winner as any search does. Each looser
  level's variant is the tighter variant **less every change that level does not need**
  (``minimize_vector`` against the looser spec, largest accuracy risk first), re-checked exactly
  against its own level (re-timed on a measured template). So the plans are nested: every tighter
  variant holds all the changes of the looser ones, and a looser variant keeps more of the network.
- Weights: the variants are **one set of weights** (``nn2hw.compress._joint``). Each variant is its
  plan applied to the pretrained model, so each of its parameters is a slice of the pretrained
  model's (a cut keeps rows and columns, a mask or quantizer sits on such a slice); the final
  fine-tune trains all variants at once on one copy of those parameters (every batch through every
  variant, their distilled losses summed), so each variant's weights end as its slices of one set.
  That set is written beside the bundles (``family/shared-weights.pt``) with each variant's slices,
  and ``BundleFamily.shared_parameters`` recomputes a variant's weights from it (what a device that
  holds one copy does when it switches level). Batch-norm statistics stay each variant's own. A
  level whose variant has the same plan as the tighter one uses that variant's bundle. With
  ``family_weights='separate'``, an evaluator the search did not build (``final_evaluator``), or
  the cosine metric (no fine-tune), each variant is fine-tuned (or scored) on its own and has its
  own weights.
- A level no variant meets is reported with the reason; only when no level can be met is the
  search an error (``NoLevelMet``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import optuna

from nn2hw._json import jsonable
from nn2hw.bundle import BundleFamily, FamilyVariant, save_family, save_shared
from nn2hw.compress import apply_plan
from nn2hw.errors import InfeasibleError
from nn2hw.evaluate import Evaluator, FinetuneEvaluator, FinetuneSettings
from nn2hw.plan import Plan
from nn2hw.search.context import SearchContext, check_reachable
from nn2hw.search.finalize import (
    KEY_METRICS,
    Checked,
    FinalizedElsewhere,
    SearchResult,
    bundle_saved,
    evaluators_for,
    finalize,
    measure,
    minimal_plan,
    write_reports,
)
from nn2hw.search.loop import run_search
from nn2hw.search.minimize import Minimized
from nn2hw.search.settings import COSINE, SearchSettings
from nn2hw.search.variation import trained_plans

FAMILY_FOLDER = "family"
"""Where the looser levels' own bundles go, inside the output folder (the tightest level's is the
output folder's bundle itself)."""

SHARED_WEIGHTS = "shared-weights.pt"
"""The one set of weights of a jointly trained family, in ``FAMILY_FOLDER``."""
NESTED_NOTE = ("Nested plans: each tighter variant holds every change of the looser ones. A level whose plan equals "
               "the tighter level's shares its bundle.")
JOINT_NOTE = (" The variants were fine-tuned jointly as slices of one set of weights (every batch through every "
              "variant), written to {path} with each variant's slices; batch-norm statistics are each variant's own.")
SEPARATE_NOTE = " The other variants were fine-tuned separately, each from the pretrained weights."


class NoLevelMet(InfeasibleError):
    """No level of a family could be met (every level's reason is in the cause)."""


def run_family(settings: SearchSettings, evaluator: Evaluator | None = None,
               final_evaluator: Evaluator | None = None, progress: bool = True,
               log: Callable[[str], None] = print) -> SearchResult | FinalizedElsewhere:
    """Search the tightest reachable level of ``settings.latency_levels_ms`` and finalize the family
    (``finalize_family``). A level the search refuses up front (below the leanest candidate, or
    below what this machine's timing can verify) is skipped for the next looser one; the output
    folder and the study keep the first level's names."""
    settings = replace(settings, out=str(settings.out_dir), study=settings.study_name)
    refused: list[str] = []
    last: InfeasibleError | None = None
    for level in (v for v in settings.latency_levels_ms if v >= (settings.spec.latency_ms or 0.0)):
        attempt = replace(settings, spec=replace(settings.spec, latency_ms=level))
        try:
            return run_search(attempt, evaluator, final_evaluator, progress, log)
        except NoLevelMet:
            raise
        except InfeasibleError as exc:
            refused.append(f"level {level:g} ms: {exc.cause}")
            last = exc
            log(f"family: level {level:g} ms cannot be searched ({exc.cause}); searching the next looser level")
    raise NoLevelMet("No level of the family can be met. " + " ".join(refused),
                     last.fix if last is not None else "Relax the levels.",
                     best_bound=last.best_bound if last is not None else None)


def at_level(ctx: SearchContext, level_ms: float) -> SearchContext:
    """The search's context as a single search's with the latency spec at ``level_ms`` (its other
    specs kept): what finalizing, re-checking and minimizing one level need."""
    s = ctx.settings
    return replace(ctx, settings=replace(s, spec=replace(s.spec, latency_ms=level_ms), latency_levels_ms=()))


@dataclass(frozen=True)
class _Built:
    """A level's variant as built: its record, its index vector in the search space (None: the
    base network, no change to remove), and for a looser level with a network of its own its plans
    before training (None: it shares a tighter level's bundle, or it is the finalized level)."""

    variant: FamilyVariant
    vector: tuple[int, ...] | None
    plans: Mapping[str, Plan] | None = None


def finalize_family(ctx: SearchContext, study: optuna.Study | None, wall_s: float,
                    final_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
                    base_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
                    progress: bool = False) -> SearchResult:
    """Finalize the searched level (``finalize``; if no candidate passes its re-check, the next
    looser level's), build each looser level's variant from the tighter one, train the variants
    (jointly, as slices of one set of weights, when the search's own evaluator fine-tunes them),
    write the family and add it to the reports."""
    s = ctx.settings
    levels = s.latency_levels_ms
    searched = s.spec.latency_ms or levels[0]
    missing = [{"level_ms": v, "reason": _unreachable(ctx, v)} for v in levels if v < searched]
    joint = _joint_evaluator(ctx, final_evaluator, progress) if study is not None else None
    scoring = final_evaluator if joint is None else evaluators_for(ctx, None, replace(s.final_finetune, batches=0),
                                                                   progress)  # trained below, with the others
    result: SearchResult | None = None
    for level in (v for v in levels if v >= searched):
        try:
            result = finalize(at_level(ctx, level), study, wall_s, scoring, base_evaluator, progress)
        except InfeasibleError as exc:
            missing.append({"level_ms": level, "reason": exc.cause})
            continue
        break
    if result is None:
        raise NoLevelMet("No level of the family met its re-check. " + " ".join(
            f"Level {m['level_ms']:g} ms: {m['reason']}" for m in missing),
            "Resume the study with more trials (--resume --trials N), relax the levels, or widen the space.")
    built = [_from_result(ctx, study, result, result.spec["latency_ms"])]
    notes = list(result.notes)
    for level in (v for v in levels if v > built[0].variant.level_ms):
        built.append(_looser(at_level(ctx, level), built[-1], result, notes))
    if joint is not None:
        built, result, note = _trained_jointly(ctx, built, result, joint, notes)
    else:
        built, note = _trained_separately(ctx, built, result, _final_evaluators(ctx, final_evaluator, progress)), \
            SEPARATE_NOTE
    family = BundleFamily(result.out_dir, s.metric, _with_shared_metrics(built),
                          tuple(sorted(missing, key=lambda m: m["level_ms"])), NESTED_NOTE + note,
                          shared_weights=f"{FAMILY_FOLDER}/{SHARED_WEIGHTS}" if joint is not None else None)
    notes.extend(_order_notes(family))
    files = {**result.files, "family": str(save_family(family))}
    files.update(write_reports(at_level(ctx, family.variants[0].level_ms), study, result.baseline, result.solution,
                               result.rows, notes, result.splits, family_facts(family)))
    done = replace(result, family=family.to_dict(), files=files, notes=tuple(notes))
    (result.out_dir / "report.json").write_text(json.dumps(done.to_dict(), indent=2, default=jsonable) + "\n")
    return done


def _joint_evaluator(ctx: SearchContext, given: Evaluator | Mapping[str, Evaluator] | None,
                     progress: bool) -> FinetuneEvaluator | None:
    """The evaluator that trains the family jointly: the search's own final fine-tune (None: separate
    weights asked for, an evaluator the caller gave, which takes one network, or no fine-tune at all)."""
    s = ctx.settings
    if s.family_weights == "separate" or given is not None or s.metric == COSINE or not s.final_finetune.batches:
        return None
    evaluator, = evaluators_for(ctx, None, s.final_finetune, progress).values()
    return evaluator if isinstance(evaluator, FinetuneEvaluator) else None


def _trained_jointly(ctx: SearchContext, built: list[_Built], result: SearchResult, evaluator: FinetuneEvaluator,
                     notes: list[str]) -> tuple[list[_Built], SearchResult, str]:
    """Fine-tune the finalized variant and every looser one with a network of its own as slices of
    one set of weights (``JointNetworks``), score each, write their bundles and the shared set; the
    finalized level's metrics replace the untrained ones in the result."""
    from nn2hw.compress._joint import JointNetworks

    member, = ctx.members
    (net, plan), = result.solution.plans.items()
    owners = [0] + [i for i, b in enumerate(built) if b.plans is not None]
    plans = [plan] + [built[i].plans[net] for i in owners[1:]]  # type: ignore[index]  # owners have plans
    joint = JointNetworks(member.model, [apply_plan(p, member.model) for p in plans])
    evaluator.fit(joint)
    scored = [_metrics(evaluator.score(model).as_mapping()) for model in joint.materialize()]
    for i, model, p, metrics in zip(owners, joint.variants, plans, scored):
        bundle_saved(result.out_dir / built[i].variant.bundle, model, p)
        built[i] = replace(built[i], variant=replace(built[i].variant, metrics=metrics))
    path = result.out_dir / FAMILY_FOLDER / SHARED_WEIGHTS
    save_shared(path, joint.shared_state(), {built[i].variant.level_ms: joint.steps_of(k)
                                            for k, i in enumerate(owners)})
    shared, own = joint.counts()
    notes.append(f"Family: {len(owners)} network(s) fine-tuned jointly as slices of one set of "
                 f"{sum(t.numel() for t in joint.shared):,} weights ({shared:,} of their weights computed from it, "
                 f"{own:,} their own).")
    solution = replace(result.solution, metrics=dict(scored[0]), networks={net: dict(scored[0])})
    return built, replace(result, solution=solution), JOINT_NOTE.format(path=f"{FAMILY_FOLDER}/{SHARED_WEIGHTS}")


def _trained_separately(ctx: SearchContext, built: list[_Built], result: SearchResult,
                        evaluators: Mapping[str, Evaluator]) -> list[_Built]:
    """Fine-tune and score each looser variant with a network of its own on its own (the finalized
    level was, by ``finalize``), and write its bundle."""
    done = [built[0]]
    for b in built[1:]:
        if b.plans is not None:
            models, networks = measure(ctx, b.plans, evaluators)
            (net, plan), = b.plans.items()
            bundle_saved(result.out_dir / b.variant.bundle, models[net], plan)
            b = replace(b, variant=replace(b.variant, metrics=_metrics(networks[net])))
        done.append(b)
    return done


def _with_shared_metrics(built: list[_Built]) -> tuple[FamilyVariant, ...]:
    """The variants, each sharing another level's bundle with that level's metrics."""
    by_level = {b.variant.level_ms: b.variant for b in built}
    return tuple(replace(b.variant, metrics=by_level[b.variant.shares_weights_with].metrics)
                 if b.variant.shares_weights_with is not None else b.variant for b in built)


def _unreachable(ctx: SearchContext, level_ms: float) -> str:
    """Why a level tighter than the searched one was not searched."""
    try:
        check_reachable(at_level(ctx, level_ms))
        if ctx.measured_base is not None:
            from nn2hw.hardware.cpu import margin_of
            from nn2hw.measured import check_verifiable

            base, = ctx.measured_base.values()
            check_verifiable(base, level_ms, margin_of(ctx.target.options))
    except InfeasibleError as exc:
        return exc.cause
    return f"not searched (the search targeted {ctx.settings.spec.latency_ms:g} ms)"


def _final_evaluators(ctx: SearchContext, given: Evaluator | Mapping[str, Evaluator] | None,
                      progress: bool) -> dict[str, Evaluator]:
    """The evaluators a variant is finalized with, as ``finalize`` gives the winner (the cosine
    metric: scored as compressed)."""
    tune = FinetuneSettings(batches=0) if ctx.settings.metric == COSINE and given is None \
        else ctx.settings.final_finetune
    return evaluators_for(ctx, given, tune, progress)


def _from_result(ctx: SearchContext, study: optuna.Study | None, result: SearchResult, level_ms: float) -> _Built:
    """The finalized level's variant (the output folder's bundle) and its index vector."""
    sol = result.solution
    vector: tuple[int, ...] | None = None
    if sol.trial is not None and study is not None:
        kept = (sol.minimization or {}).get("indices")
        if kept is not None:
            vector = tuple(int(i) for i in kept)
        else:
            trial, = (t for t in study.get_trials(deepcopy=False) if t.number == sol.trial)
            vector = tuple(int(trial.params[name]) for name in ctx.space.names)
    spread = (sol.measurement or {}).get("iqr_ms")
    variant = FamilyVariant(level_ms, sol.cost.latency_ms, _metrics(sol.metrics), ".", sol.plan.key,
                            len(sol.plan.choices), latency_iqr_ms=spread)
    return _Built(variant, vector)


def _metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in KEY_METRICS if k in metrics}


def _looser(ctx: SearchContext, tighter: _Built, result: SearchResult, notes: list[str]) -> _Built:
    """The variant of ``ctx``'s (looser) level: the tighter variant less every change this level
    does not need, re-checked against the level (its plans, to be trained); the tighter variant
    itself (sharing its bundle) when nothing can go or the smaller plan fails the re-check."""
    level = ctx.settings.spec.latency_ms
    assert level is not None
    shared = replace(tighter.variant, level_ms=level, shares_weights_with=tighter.variant.shares_weights_with
                     or tighter.variant.level_ms, nested_in=tighter.variant.level_ms)
    if tighter.vector is None:  # the base network already meets the tighter level
        return _Built(shared, None)
    number = result.solution.trial if result.solution.trial is not None else -1
    smaller = _smaller(ctx, tighter, number, notes)
    if smaller is None:
        return _Built(shared, tighter.vector)
    found, checked = smaller
    plans = trained_plans(ctx, checked.plans, checked.cost)
    (plan,) = plans.values()
    notes.append(f"Level {level:g} ms from level {tighter.variant.level_ms:g} ms's variant: {found.summary()}.")
    spread = (checked.measurement or {}).get("iqr_ms")
    variant = FamilyVariant(level, checked.cost.latency_ms, {}, str(Path(FAMILY_FOLDER) / f"level-{level:g}ms"),
                            plan.key, len(plan.choices), nested_in=tighter.variant.level_ms, latency_iqr_ms=spread)
    return _Built(variant, tuple(found.indices or tighter.vector), plans)


def _smaller(ctx: SearchContext, tighter: _Built, number: int, notes: list[str]) -> tuple[Minimized, Checked] | None:
    """The tighter variant less the changes ``ctx``'s level does not need, re-checked against that
    level (``minimal_plan``: on a measured template the removals of a plan the measurement refuses
    are undone from the last back until one passes): a plan and its check, or None (with a note)
    when nothing can go or no smaller plan passes."""
    level = ctx.settings.spec.latency_ms
    assert level is not None and tighter.vector is not None
    try:
        tried = minimal_plan(ctx, tighter.vector, number, ctx.space.decode(tighter.vector).hardware)
    except InfeasibleError as exc:  # predicted above the level although measured below the tighter one
        notes.append(f"Level {level:g} ms uses level {tighter.variant.level_ms:g} ms's variant and weights: "
                     f"{exc.cause}")
        return None
    if tried.checked is None:
        notes.append(f"Level {level:g} ms: every change of level {tighter.variant.level_ms:g} ms's variant is "
                     "needed; it shares that variant's weights.")
        return None
    if isinstance(tried.checked, str):
        notes.append(f"Level {level:g} ms: no smaller plan passed the re-check ({len(tried.refused)} timed; first: "
                     f"{tried.checked}); the level uses level {tighter.variant.level_ms:g} ms's variant and weights.")
        return None
    return tried.found, tried.checked


def _order_notes(family: BundleFamily) -> list[str]:
    """A note for each looser level whose variant came out faster than a tighter one's (measurement
    noise, or a removed change that cost latency, e.g. int8 on a CPU)."""
    ordered = sorted(family.variants, key=lambda v: v.level_ms)
    return [f"Level {b.level_ms:g} ms's variant ({b.latency_ms:.4g} ms) is faster than level {a.level_ms:g} ms's "
            f"({a.latency_ms:.4g} ms)." for a, b in zip(ordered, ordered[1:]) if b.latency_ms < a.latency_ms]


def family_facts(family: BundleFamily) -> dict[str, str]:
    """One summary line per level: latency (with its spread), accuracy, weights; or why it is missing."""
    facts = {}
    for v in sorted(family.variants, key=lambda v: -v.level_ms):
        spread = f" (IQR {v.latency_iqr_ms:.3g})" if v.latency_iqr_ms is not None else ""
        weights = (f"weights of level {v.shares_weights_with:g} ms" if v.shares_weights_with is not None
                   else "its slices of the shared weights" if family.shared_weights is not None else "own weights")
        nested = f", changes within level {v.nested_in:g} ms's" if v.nested_in is not None else ""
        facts[f"family level {v.level_ms:g} ms"] = (
            f"{v.latency_ms:.4g} ms{spread}, {family.metric} {v.metrics.get(family.metric, float('nan')):.2f} %, "
            f"{v.changed_layers} changed layers, {weights}{nested}; bundle {v.bundle}")
    for m in family.missing:
        facts[f"family level {m['level_ms']:g} ms"] = f"MISSING: {m['reason']}"
    return facts
