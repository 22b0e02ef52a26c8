"""Finalize = the guarantee: re-cost the best candidates, re-check every spec and resource,
fine-tune the winner longer, re-measure it, and export the bundle and the reports.

A candidate whose re-check fails is never returned (the next best is tried); when none passes,
an ``InfeasibleError`` says so with the best latency seen. The winner first loses every change no
spec needs (``nn2hw.search.minimize``). The base model and the solution are measured once, on the
whole ``split`` (the test split); candidates were scored during the search on the first
``search_images`` images of the validation split (``splits_used`` records both in the report).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nn2hw import __version__
from nn2hw._json import jsonable, thaw
from nn2hw.bundle import save_bundle
from nn2hw.compress import apply_plan
from nn2hw.errors import ConfigError, InfeasibleError, ModelError
from nn2hw.evaluate import Evaluator, FinetuneEvaluator, FinetuneSettings
from nn2hw.evaluate.evaluator import EmbeddingFidelityEvaluator
from nn2hw.evaluate.store import EvaluationStore
from nn2hw.hardware.cpu import DEFAULT_FINALISTS, margin_of
from nn2hw.hardware.records import NetworkCost, design_label
from nn2hw.plan import Plan
from nn2hw.report import ParetoPoint, layer_rows, plot_pareto, write_html, write_pareto_csv
from nn2hw.report.layers import LayerRow, write_layers_csv
from nn2hw.search.context import SearchContext, member_evaluator
from nn2hw.search.evaluations import joint_key, joint_metrics
from nn2hw.search.minimize import UNDONE, Minimized, hardware_record, minimize_vector, partly_minimized
from nn2hw.search.settings import COSINE
from nn2hw.search.study import beat_periods, count_trials, reclaim
from nn2hw.search.variation import VARIATION_METRIC, VariationCheck, final_variation, trained_plans
from nn2hw.splits import VALIDATION

KEY_METRICS = ("top1", "top5", "cosine", "cosine_min", "n_images", "partial")
"""The metrics a solution reports (those its evaluator returned): top-1/top-5, or the label-free
cosine fidelity and its worst text (percent: 100 x the cosine similarity)."""


@dataclass(frozen=True)
class Solution:
    """The networks (one plan each) on their design, with the cost and measured metrics.

    ``metrics`` are the networks' mean (one network: its own); ``networks`` each network's."""

    plans: Mapping[str, Plan]
    cost: NetworkCost
    metrics: Mapping[str, float]
    networks: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    trial: int | None = None
    predicted_ms: float | None = None
    """On a measured template: the latency the search predicted for it (``cost`` is the measured one)."""
    measurement: Mapping[str, Any] | None = None
    """On a measured template: runs, median, IQR, threads, runtime, CPU and the file timed."""
    minimization: Mapping[str, Any] | None = None
    """What minimizing the searched candidate removed and kept (``Minimized.to_dict``); None when it was
    not minimized."""
    variation: Mapping[str, Any] | None = None
    """With an accuracy-under-variation spec: its re-check on fresh draws (``VariationCheck.to_dict``)."""

    @property
    def plan(self) -> Plan:
        """The plan of a single-network search."""
        if len(self.plans) != 1:
            raise ConfigError(f"This solution has {len(self.plans)} networks ({', '.join(self.plans)}).",
                              "Read solution.plans[name].")
        return next(iter(self.plans.values()))

    def to_dict(self) -> dict[str, Any]:
        out = {"latency_ms": self.cost.latency_ms, "energy_mj": self.cost.energy_mj,
               "area_mm2": self.cost.area_mm2, "total_cycles": self.cost.total_cycles,
               **{k: self.metrics[k] for k in KEY_METRICS if k in self.metrics},
               "design": jsonable(self.cost.design), "plan_key": joint_key(self.plans), "trial": self.trial,
               "changed_layers": sum(len(p.choices) for p in self.plans.values())}
        if self.measurement is not None:
            out.update({"predicted_latency_ms": self.predicted_ms, "measurement": dict(self.measurement)})
        if self.variation is not None:
            out["accuracy_under_variation"] = dict(self.variation)
        if self.minimization is not None:
            out["removed_changes"] = list(self.minimization["removed"])
            out["minimization"] = {k: v for k, v in self.minimization.items() if k != "removed"}
        if len(self.plans) > 1:
            busy = self.cost.engine_latency_ms()
            engines = {layer.name.split("/", 1)[0]: layer.engine for layer in self.cost.layers}
            out["networks"] = {net: {**{k: m[k] for k in KEY_METRICS if k in m}, "runs_on": engines.get(net),
                                     "sub_busy_ms": busy.get(engines.get(net, ""), 0.0)}
                               for net, m in self.networks.items()}
        return out


@dataclass(frozen=True)
class SearchResult:
    """What a search returns and writes to ``report.json``."""

    spec: Mapping[str, float]
    baseline: Solution
    solution: Solution
    trials: Mapping[str, int]
    out_dir: Path
    files: Mapping[str, str]
    settings: Mapping[str, Any]
    wall_s: float
    notes: tuple[str, ...] = ()
    rows: tuple[LayerRow, ...] = field(default_factory=tuple)
    splits: Mapping[str, Any] = field(default_factory=dict)
    """What each number was measured on (``splits_used``): the trials and the search's base score on
    ``candidates``, the baseline and the solution on ``report``."""
    family: Mapping[str, Any] | None = None
    """With latency levels: the family of variants, one per level (``nn2hw.search.family``); the
    solution is its tightest level's."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """What the strategy reports of its own (its sampler's ``report(study)``), by strategy name: the
    differentiable strategy's training record and relaxed vs exact costs."""

    def to_dict(self) -> dict[str, Any]:
        measured_on = {"split": self.splits.get("report")} if self.splits else {}
        return {"spec": dict(self.spec), "splits": dict(self.splits),
                "baseline": {**self.baseline.to_dict(), **measured_on},
                "solution": {**self.solution.to_dict(), **measured_on},
                "trials": dict(self.trials), "settings": dict(self.settings), "wall_s": self.wall_s,
                "files": dict(self.files), "notes": list(self.notes),
                "layers": [r.to_dict() for r in self.rows],
                **({} if self.family is None else {"family": dict(self.family)}),
                **{name: dict(section) for name, section in self.sections.items()},
                "versions": {"nn2hw": __version__, "python": platform.python_version(), **_library_versions()}}


def _library_versions() -> dict[str, str]:
    import numpy
    import torch

    return {"torch": torch.__version__, "numpy": numpy.__version__, "optuna": optuna.__version__}


def ranked_candidates(study: optuna.Study, metric: str) -> list[FrozenTrial]:
    """Completed candidates that met the specs: best metric first, then lower latency, earlier trial;
    one trial per distinct network. A pruned trial is never one: only a full fine-tune's score ranks."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("feasible") and t.user_attrs.get(metric) is not None]
    done.sort(key=lambda t: (-t.user_attrs[metric], t.user_attrs["latency_ms"], t.number))
    seen: set[str] = set()
    unique = []
    for t in done:
        if t.user_attrs["plan_key"] not in seen:
            seen.add(t.user_attrs["plan_key"])
            unique.append(t)
    return unique


@dataclass(frozen=True)
class Checked:
    """A candidate that passed the re-check: its plans (carrying the hardware) and cost; on a
    measured template the cost is the measured one and ``predicted_ms`` what the search predicted."""

    plans: dict[str, Plan]
    cost: NetworkCost
    predicted_ms: float | None = None
    measurement: Mapping[str, Any] | None = None
    minimized: Minimized | None = None
    """What minimizing removed from the searched candidate (None: not minimized)."""


FINAL_REPEATS_FACTOR = 2
"""A finalist on a measured template is timed anew with this many times the protocol's runs."""


def finalists(ctx: SearchContext) -> int:
    """How many of the best candidates are re-checked: ``top_k``; on a measured template at least
    its ``finalists`` option (timing one takes about a second, and a predictor's error near the
    spec refuses some)."""
    if ctx.measured_base is None:
        return ctx.settings.top_k
    return max(ctx.settings.top_k, int(ctx.target.options.get("finalists", DEFAULT_FINALISTS)))


def guaranteed(ctx: SearchContext, trial: FrozenTrial) -> Checked | str:
    """Re-cost a candidate on its own best design and re-check specs and resources (on a measured
    template: time it on this machine and check the measured median with the margin); the checked
    candidate when it passes, else the reason it does not."""
    plans = {net: Plan.from_dict(data) for net, data in trial.user_attrs["plans"].items()}
    return recheck(ctx, trial.number, plans, trial.user_attrs.get("knobs") or {})


def recheck(ctx: SearchContext, number: int, plans: Mapping[str, Plan], knobs: Mapping[str, Any]) -> Checked | str:
    """``guaranteed`` for the networks ``plans`` make with hardware ``knobs`` (trial ``number``)."""
    workloads = ctx.workloads(plans)
    best = ctx.target.best(workloads, knobs)
    cost = ctx.target.recost(workloads, best.design)
    if not cost.fits:
        over = [f"{r.name} {r.used:g} > {r.available:g}" for r in cost.resources if not r.fits]
        return f"trial {number}: design exceeds {', '.join(over)}"
    miss = ctx.spec.describe_miss(cost)
    if miss:
        return f"trial {number}: {miss}"
    hardware = _hardware(ctx, cost)
    checked = Checked({net: plan.with_hardware(hardware) for net, plan in plans.items()}, cost)
    return checked if ctx.measured_base is None else _measured(ctx, number, checked)


@dataclass(frozen=True)
class MinimalPlan:
    """A candidate minimized and re-checked: the minimal plan (on a measured template, the most
    minimized plan ``minimal_plan`` found that the measurement let through), its re-check (None: it
    removed nothing, so the candidate is its own minimal plan; a reason: no plan with a removal
    passed) and why the measurement refused each plan it refused, the first minimal plan first."""

    found: Minimized
    checked: Checked | str | None
    refused: tuple[str, ...] = ()


def minimal_plan(ctx: SearchContext, vector: tuple[int, ...] | list[int], number: int,
                 knobs: Mapping[str, Any]) -> MinimalPlan:
    """Candidate ``vector`` (trial ``number``, hardware ``knobs``) less the changes no spec of
    ``ctx`` needs, re-checked against those specs. On a measured template a minimal plan the
    predictor let through but the measurement refuses is not all-or-nothing: the removals are
    undone from the last back (a bisection over how many of them, in the order made, each candidate
    re-timed), then each removal after the refused one is tried on its own on top of the plan kept
    (re-timed; kept when the measurement lets it through), so a predictor that is low on a few
    removals costs those removals, not all of them nor the ones after them.
    Raises ``InfeasibleError`` when the candidate itself is predicted to miss the spec."""
    found = minimize_vector(ctx, vector)
    if not found.removed:
        return MinimalPlan(found, None)
    checked = recheck(ctx, number, found.plans, knobs)
    if not isinstance(checked, str) or ctx.measured_base is None:
        return MinimalPlan(found, checked)
    refused, best = [checked], MinimalPlan(found, checked)

    def attempt(made: Sequence[int]) -> MinimalPlan | None:
        """The plan with the removals at positions ``made``, re-checked: None (and its reason kept) when refused."""
        part = partly_minimized(ctx, vector, found, made)
        result = recheck(ctx, number, part.plans, knobs)
        if isinstance(result, str):
            refused.append(result)
            return None
        return MinimalPlan(part, result)

    low, high = 0, len(found.removed)  # removals: none is the candidate itself; ``high`` were refused
    while high - low > 1:
        middle = (low + high) // 2
        passed = attempt(range(middle))
        if passed is None:
            high = middle
        else:
            low, best = middle, passed
    made = list(range(low))
    for extra in range(high, len(found.removed)):  # removal ``high - 1`` was refused on top of ``made``
        passed = attempt([*made, extra])
        if passed is not None:
            made.append(extra)
            best = passed
    return replace(best, refused=tuple(refused))


def minimal(ctx: SearchContext, trial: FrozenTrial, notes: list[str]) -> Checked | str:
    """The trial's candidate without the changes no spec needs (``minimal_plan``), re-checked as
    ``guaranteed`` does; the candidate as searched when no minimal plan passes the re-check (e.g.
    each measured slower than predicted), with a note saying so."""
    vector = [int(trial.params[name]) for name in ctx.space.names]
    try:
        tried = minimal_plan(ctx, vector, trial.number, trial.user_attrs.get("knobs") or {})
    except InfeasibleError as exc:
        notes.append(f"Trial {trial.number} was not minimized: {exc.cause}")
        return guaranteed(ctx, trial)
    if tried.checked is None:
        return guaranteed(ctx, trial)
    if isinstance(tried.checked, str):
        notes.append(f"The minimal plan of trial {trial.number} failed the re-check ({tried.checked}), and so did "
                     f"{len(tried.refused) - 1} plan(s) with fewer of its removals; the trial is returned with all "
                     "its changes.")
        return guaranteed(ctx, trial)
    notes.append(f"Minimal plan of trial {trial.number}{_retries(tried)}: {tried.found.summary()}.")
    return replace(tried.checked, minimized=tried.found)


def _retries(tried: MinimalPlan) -> str:
    """' (k of the n removals ...)' when the measurement refused a more minimized plan, else ''."""
    if not tried.refused or isinstance(tried.checked, str):
        return ""
    undone = sum(c.needed == UNDONE for c in tried.found.kept)
    made = len(tried.found.removed) + undone
    return (f" ({undone} of its {made} removals undone: the measurement refused {len(tried.refused)} more "
            f"minimized plan(s), first: {tried.refused[0]})")


def _measured(ctx: SearchContext, number: int, checked: Checked) -> Checked | str:
    """Time a candidate again on this machine, anew with twice the runs, interleaved with the base
    network; it passes when its median, referred to the base's reference timing (the drift since
    then taken out), keeps the margin."""
    from nn2hw.measured import missed

    try:
        timed = ctx.timed(checked.plans, repeats_factor=FINAL_REPEATS_FACTOR, against_base=True)
    except ModelError as exc:  # an export failing its own check is not deployable: refused, like a miss
        return f"trial {number}: its exported network failed the export check ({exc.cause})"
    predicted = checked.cost.latency_ms
    reason = missed(timed, ctx.settings.spec.latency_ms, margin_of(ctx.target.options), predicted)
    if reason:
        return f"trial {number}: {reason}"
    return Checked(checked.plans, timed.cost, predicted, timed.to_dict())


def _hardware(ctx: SearchContext, cost: NetworkCost) -> dict[str, Any]:
    return hardware_record(cost, ctx.settings.hardware, ctx.settings.hw_options)


def measure(ctx: SearchContext, plans: Mapping[str, Plan], evaluators: Mapping[str, Evaluator]
            ) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """(models, metrics) of every network: its plan applied to a copy of its base model, scored."""
    models, metrics = {}, {}
    for m in ctx.members:
        models[m.name] = apply_plan(plans[m.name], m.model)
        metrics[m.name] = {k: float(v) for k, v in evaluators[m.name](models[m.name]).items()}
    return models, metrics


def evaluators_for(ctx: SearchContext, given: Evaluator | Mapping[str, Evaluator] | None, finetune: FinetuneSettings,
                   progress: bool) -> dict[str, Evaluator]:
    """Per network: the user's evaluator, else the default one (fine-tune as ``finetune`` says,
    distilling from the unmodified model, then test the whole split, or its first ``report_images``)."""
    found = {}
    for m in ctx.members:
        chosen = given.get(m.name) if isinstance(given, Mapping) else given
        found[m.name] = chosen or member_evaluator(ctx.settings, m.member, ctx.settings.report_images, finetune,
                                                   m.model, progress)
    return found


def finalize(ctx: SearchContext, study: optuna.Study | None, wall_s: float,
             final_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
             base_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
             progress: bool = False) -> SearchResult:
    """Pick, re-check, fine-tune longer, measure and export. ``study=None``: the base models already
    meet the specs and are returned on their best design."""
    s = ctx.settings
    out = s.out_dir
    out.mkdir(parents=True, exist_ok=True)
    base_evals = evaluators_for(ctx, base_evaluator, FinetuneSettings(batches=0), progress)
    base_hw = _hardware(ctx, ctx.base_cost)
    base_plans = {net: plan.with_hardware(base_hw) for net, plan in ctx.space.bases.items()}
    base_models, base_networks = measure(ctx, base_plans, base_evals)
    baseline = _baseline(ctx, base_plans, joint_metrics(base_networks), base_networks)
    notes: list[str] = []
    counts = trial_counts(study)
    if study is None:
        notes.append("The unmodified model already meets every spec; it is returned on its best design.")
        solution, models = baseline, base_models
    else:
        picked = None
        final_evals = (base_evals if s.metric == COSINE and final_evaluator is None and base_evaluator is None
                       else evaluators_for(ctx, final_evaluator, s.final_finetune, progress))  # cosine: the same
        # evaluation (no fine-tune, whole split, same reference), so the reference is embedded once
        for trial in ranked_candidates(study, s.metric)[: finalists(ctx)]:
            checked = minimal(ctx, trial, notes) if s.minimize else guaranteed(ctx, trial)
            if isinstance(checked, str):
                notes.append(f"Re-check refused {checked}.")
                continue
            checked = replace(checked, plans=trained_plans(ctx, checked.plans, checked.cost))  # minimizing drops it
            models, networks = measure(ctx, checked.plans, final_evals)
            variation: VariationCheck | None = None
            if s.min_accuracy_under_variation is not None:
                found = final_variation(ctx, checked.plans, checked.cost, models)
                if isinstance(found, str) or not found.passed:
                    notes.append(f"Re-check refused trial {trial.number} after its final fine-tune: "
                                 f"{_variation_failure(found)}.")
                    continue
                variation = found
            picked = (checked, trial.number, models, networks, variation)
            break
        if picked is None:
            write_trials_csv(out / "trials.csv", study, ctx)
            best = min((t.user_attrs["latency_ms"] for t in study.trials if t.user_attrs.get("latency_ms")),
                       default=None)
            refused = "".join(f" {note}" for note in notes[:3]) + (f" ({len(notes) - 3} more.)"
                                                                     if len(notes) > 3 else "")
            raise InfeasibleError(
                f"No candidate of the {counts['total']} trials met every spec and passed the re-check"
                + (f" (lowest latency seen: {best:.6g} ms)" if best is not None else "") + "." + refused,
                "Resume the study with more trials (--resume --trials N), relax the spec, or widen the space"
                + (" (or raise --hw-param finalists / predict_margin)" if ctx.measured_base is not None else "")
                + ".", best_bound=best)
        checked, trial_no, models, networks, variation = picked
        solution = Solution(checked.plans, checked.cost, joint_metrics(networks), networks, trial_no,
                            checked.predicted_ms, checked.measurement,
                            checked.minimized.to_dict() if checked.minimized is not None else None,
                            variation.to_dict() if variation is not None else None)
        if variation is not None:
            notes.append(_variation_note(variation))
        notes.extend(_export_notes(solution.measurement))
    _save_bundles(ctx, out, models, solution)
    rows = [row for m in ctx.members
            for row in layer_rows(baseline.cost, solution.cost, ctx.bottlenecks[m.name], solution.plans[m.name],
                                  m.workload, apply_plan(solution.plans[m.name], m.workload),
                                  prefix=f"{m.name}/" if len(ctx.members) > 1 else "")]
    splits = splits_used(ctx)
    if splits["selected_on_test"] and study is not None:
        notes.append(f"SELECTED ON TEST: candidates were scored on {splits['candidates']}, the split the "
                     "accuracies are reported on, so the reported accuracy is optimistic.")
    sections = strategy_sections(ctx, study, notes)
    files = write_reports(ctx, study, baseline, solution, rows, notes, splits)
    spec = {**s.spec.to_dict(), **({} if s.min_accuracy_under_variation is None
                                    else {"min_accuracy_under_variation": s.min_accuracy_under_variation})}
    result = SearchResult(spec, baseline, solution, counts, out, files, _settings_dict(ctx), wall_s,
                          tuple(notes), tuple(rows), splits, sections=sections)
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=jsonable) + "\n")
    return result


def strategy_sections(ctx: SearchContext, study: optuna.Study | None, notes: list[str]) -> dict[str, Any]:
    """The strategy's own report section (its sampler's ``report(study)``, e.g. the differentiable
    strategy's relaxed vs exact costs), by strategy name, and its ``note`` among the notes."""
    report = getattr(study.sampler, "report", None) if study is not None else None
    if not callable(report):
        return {}
    section = report(study)
    if section.get("note"):
        notes.append(str(section["note"]))
    return {ctx.settings.strategy: section}


def _variation_failure(found: VariationCheck | str) -> str:
    if isinstance(found, str):
        return found
    sel = found.selection
    return (f"top-1 under variation {sel.top1:.2f} ± {sel.top1_std:.2f} % over {sel.draws} fresh draws on "
            f"{found.selection_split} is below the {found.min_top1:g} % spec")


def _export_notes(measurement: Mapping[str, Any] | None) -> list[str]:
    """On a measured template: the quantized layers the timed ONNX file kept as float operators. The
    measured latency is that file's, while the per-layer table lists the plan's quantization."""
    kept = dict(((measurement or {}).get("onnx") or {}).get("fp32_layers") or {})
    if not kept:
        return []
    shown = "; ".join(f"{name}: {reason}" for name, reason in list(kept.items())[:3])
    more = f"; and {len(kept) - 3} more" if len(kept) > 3 else ""
    return [f"The timed ONNX file kept {len(kept)} quantized layer(s) as float operators ({shown}{more}): the "
            "measured latency is that of the file, while the per-layer table lists their quantization."]


def _variation_note(found: VariationCheck) -> str:
    sel, rep = found.selection, found.report
    return (f"Accuracy under variation re-checked on {sel.draws} fresh draws of the chosen design: "
            f"{sel.top1:.2f} ± {sel.top1_std:.2f} % (worst {sel.top1_min:.2f} %) on {found.selection_split} "
            f">= the {found.min_top1:g} % spec; on {found.report_split}: {rep.top1:.2f} ± {rep.top1_std:.2f} % "
            f"(worst {rep.top1_min:.2f} %, {rep.top1_clean:.2f} % without noise)"
            + (f"; each draw's batch norms re-estimated on {sel.calibration_images} training images."
               if sel.calibration_images else "."))


FINALIZE_ATTR = "nn2hw_finalize"
"""The study attribute naming the worker that finalizes the study now and its output folder."""


@dataclass(frozen=True)
class FinalizedElsewhere:
    """What a worker of a shared study returns when another worker finalizes (or finalized) the
    study: who, and where the bundle and reports are (or will be). It does not wait for them."""

    study: str
    owner: str
    out_dir: str
    done: bool
    completed: int
    solution: Mapping[str, Any] | None = None

    @property
    def host(self) -> str:
        return self.owner.split(":", 1)[0]

    def message(self) -> str:
        where = f"{self.out_dir} on {self.host}"
        if not self.done:
            return (f"Study {self.study!r} is being finalized by another worker ({self.owner}): its bundle and "
                    f"reports will be in {where}. This worker does not finalize it again.")
        sol = self.solution or {}
        found = (f"; solution: trial {sol['trial']}, {sol['latency_ms']:.4g} ms, {sol['metric']} "
                 f"{sol['value']:.2f} %" if sol.get("trial") is not None else "")
        return (f"Study {self.study!r} with {self.completed} completed trials was already finalized by {self.owner}: "
                f"its bundle and reports are in {where}{found}. To finalize it again, resume it with more trials "
                "or other final fine-tune settings.")


def finalize_any(ctx: SearchContext, study: optuna.Study | None, wall_s: float,
                 final_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
                 base_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
                 progress: bool = False) -> SearchResult:
    """``finalize``; with latency levels, the family's (``nn2hw.search.family.finalize_family``)."""
    if ctx.settings.latency_levels_ms:
        from nn2hw.search.family import finalize_family  # it builds on this module

        return finalize_family(ctx, study, wall_s, final_evaluator, base_evaluator, progress)
    return finalize(ctx, study, wall_s, final_evaluator, base_evaluator, progress)


def finalize_key(ctx: SearchContext, study: optuna.Study) -> str:
    """What makes a finalization: the study, its completed trials, and the settings of the re-check
    and the final fine-tune (a resume with more trials, or another final fine-tune, finalizes anew)."""
    s = ctx.settings
    counts = count_trials(study)
    parts = ["finalize", s.study_name, study._study_id, counts["complete"] + counts["pruned"], s.final_finetune.key,
             s.top_k, s.metric, *(() if s.minimize else ("not minimized",)), *s.latency_levels_ms]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def settle(study: optuna.Study, log: Callable[[str], None], poll_s: float = 2.0) -> None:
    """Wait until no trial of the study runs: the last trials of the other workers finish, or fail
    once their worker is found dead (stopped heartbeat, or a gone process of this host) and are
    queued to run again on resume."""
    told = False
    while True:
        reclaim(study, beat_periods()[1])
        running = count_trials(study)["running"]
        if not running:
            return
        if not told:
            log(f"waiting for {running} trial(s) still running in other workers before finalizing")
            told = True
        time.sleep(poll_s)


def finalize_once(ctx: SearchContext, study: optuna.Study, store: EvaluationStore, started: float,
                  final_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
                  base_evaluator: Evaluator | Mapping[str, Evaluator] | None = None,
                  progress: bool = False, log: Callable[[str], None] = print,
                  claim_wait_s: float = 10.0) -> SearchResult | FinalizedElsewhere:
    """``finalize`` the study once for all its workers: after the running trials settle, the first
    worker to claim the finalization (in the study's store, like a candidate's evaluation) runs
    it; the others return where its bundle is, at once. A claim whose worker died is taken over."""
    settle(study, log)
    key = finalize_key(ctx, study)
    completed = count_trials(study)["complete"]
    out = str(ctx.settings.out_dir.resolve())
    result: list[SearchResult] = []

    def run() -> dict[str, Any]:
        study.set_user_attr(FINALIZE_ATTR, {"key": key, "owner": store.owner, "out_dir": out})
        result.append(finalize_any(ctx, study, time.time() - started, final_evaluator, base_evaluator, progress))
        sol = result[0].solution
        return {"out_dir": out, "solution": {"trial": sol.trial, "latency_ms": sol.cost.latency_ms,
                                             "metric": ctx.settings.metric, "value": sol.metrics[ctx.settings.metric]}}

    found = store.once(key, run)
    if found.computed:
        return result[0]
    if found.record is not None:
        elsewhere = FinalizedElsewhere(ctx.settings.study_name, found.owner, found.record["out_dir"], True, completed,
                                       found.record["solution"])
    else:
        elsewhere = FinalizedElsewhere(ctx.settings.study_name, found.owner, _claimed_out(study, key, claim_wait_s),
                                       False, completed)
    log(elsewhere.message())
    return elsewhere


def _claimed_out(study: optuna.Study, key: str, wait_s: float) -> str:
    """The output folder the finalizing worker names on the study (it writes it right after its
    claim: wait a moment for it)."""
    deadline = time.time() + wait_s
    while True:
        claim = study.user_attrs.get(FINALIZE_ATTR) or {}
        if claim.get("key") == key:
            return str(claim["out_dir"])
        if time.time() >= deadline:
            return "(not yet named)"
        time.sleep(0.2)


def splits_used(ctx: SearchContext) -> dict[str, Any]:
    """The data behind each number: ``candidates`` (every trial's score and the base score during
    the search), ``fine_tune`` (what candidates and the winner train on) and ``report`` (the
    baseline and the solution, measured once at the end); ``selected_on_test`` when candidates were
    scored on the split the results are reported on (None: a user's evaluator, its data unknown)."""
    from nn2hw.data.base import DATASETS, default_holdout  # torch: only once a search finalizes

    s, m = ctx.settings, ctx.members[0]
    evaluator = m.evaluator
    report = s.report_split(m.member.dataset, m.member.split)
    if isinstance(evaluator, EmbeddingFidelityEvaluator):  # label-free: nothing is fine-tuned
        return {"candidates": evaluator.data().description, "fine_tune": None, "report": report,
                "selected_on_test": s.selection_split == m.member.split}
    if not isinstance(evaluator, FinetuneEvaluator):
        return {"candidates": "the search's own evaluator (its data are not known to nn2hw)", "fine_tune": None,
                "report": report, "selected_on_test": None}
    scored = evaluator.test_data()
    holdout = s.holdout or default_holdout(DATASETS.get(m.member.dataset))
    carved = (f" (carved from the training split, seed {holdout.seed}; fine-tuning uses the rest)"
              if s.selection_split == VALIDATION and holdout is not None and VALIDATION not in
              DATASETS.get(m.member.dataset).splits else "")
    return {"candidates": scored.description + carved, "fine_tune": f"{m.member.dataset} {s.train_split}",
            "report": report, "selected_on_test": s.selection_split == m.member.split}


def _baseline(ctx: SearchContext, plans: dict[str, Plan], metrics: Mapping[str, float],
              networks: Mapping[str, Mapping[str, float]]) -> Solution:
    """The unmodified networks: their cost on the best design, or as measured on a measured template."""
    if ctx.measured_base is None:
        return Solution(plans, ctx.base_cost, metrics, networks)
    timed, = ctx.measured_base.values()
    raw_ms = ctx.base_cost.latency_ms / ctx.target.options.get("calibration", 1.0)  # before calibrating on it
    return Solution(plans, timed.cost, metrics, networks, predicted_ms=raw_ms, measurement=timed.to_dict())


def _save_bundles(ctx: SearchContext, out: Path, models: Mapping[str, Any], solution: Solution) -> None:
    """One bundle in ``out`` (one network), or one per network in ``out/<network>`` plus the chip's
    ``hardware.json`` in ``out`` (several)."""
    if len(ctx.members) == 1:
        (net, plan), = solution.plans.items()
        bundle_saved(out, models[net], plan)
        return
    for net, plan in solution.plans.items():
        bundle_saved(out / net, models[net], plan)
    (out / "hardware.json").write_text(json.dumps(thaw(next(iter(solution.plans.values())).hardware), indent=1,
                                                  sort_keys=True, default=jsonable) + "\n")


FULL_DISK_BYTES = 4 << 20
"""Free bytes below which a failed bundle write is taken for a full disk."""


def bundle_saved(folder: Path, model: Any, plan: Plan) -> None:
    """``save_bundle``, with a full disk reported as such: torch.save says only 'unexpected pos'
    (a RuntimeError), so a failure on a disk left without free space becomes ENOSPC."""
    try:
        save_bundle(folder, model, plan, plan.hardware)
    except RuntimeError as exc:
        if shutil.disk_usage(folder).free < FULL_DISK_BYTES:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "weights.pt")) from exc
        raise


def _settings_dict(ctx: SearchContext) -> dict[str, Any]:
    s = ctx.settings
    return {**s.identity(), "trials": s.trials, "minutes": s.minutes, "workers": s.workers,
            "study": s.study_name, "storage": _redacted(s.storage_url), "final_finetune": s.final_finetune.key,
            "report_images": s.report_images, "family_weights": s.family_weights,
            "space_size": ctx.space.size, "space_dimensions": len(ctx.space.dimensions),
            "base_metric_during_search": ctx.base_metric,
            "predictor_calibration": ctx.target.options.get("calibration")}


def _redacted(url: str) -> str:
    from nn2hw.search.study import _redact

    return _redact(url)


def trial_counts(study: optuna.Study | None) -> dict[str, int]:
    if study is None:
        return {"total": 0, "complete": 0, "feasible": 0, "trained": 0, "reused": 0, "infeasible": 0, "failed": 0,
                "pruned": 0}
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    feasible = [t for t in done if t.user_attrs.get("feasible")]
    return {"total": len(trials), "complete": len(done), "feasible": len(feasible),
            "trained": sum(bool(t.user_attrs.get("trained_here")) for t in feasible),
            "reused": sum(not t.user_attrs.get("trained_here") for t in feasible),
            "infeasible": len(done) - len(feasible),
            "failed": sum(t.state is TrialState.FAIL for t in trials),
            "pruned": sum(t.state is TrialState.PRUNED for t in trials)}


def score_columns(metric: str) -> tuple[str, str]:
    """The two score columns of ``trials.csv`` and the result table: top-1 and top-5, or for the
    label-free metric the mean and the worst cosine (percent)."""
    return (COSINE, f"{COSINE}_min") if metric == COSINE else ("top1", "top5")


def write_trials_csv(path: Path, study: optuna.Study, ctx: SearchContext) -> Path:
    names = ctx.space.names
    scores = score_columns(ctx.settings.metric)
    fields = ["trial", "state", "feasible", "reason", "latency_ms", "energy_mj", "area_mm2", *scores,
              VARIATION_METRIC, f"{VARIATION_METRIC}_std", f"{VARIATION_METRIC}_min", "design",
              "scored_on", "pruned_at", "partial_score", "trained_here", "plan_key", "changes"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for t in study.get_trials(deepcopy=False):
            a = t.user_attrs
            changes = "; ".join(f"{d.name}={label}" for d, label in ctx.space.changes(
                [int(t.params[n]) for n in names])) if set(names) <= set(t.params) else ""
            writer.writerow({"trial": t.number, "state": t.state.name, "feasible": a.get("feasible"),
                             "reason": a.get("reason") or a.get("error", ""), "latency_ms": a.get("latency_ms"),
                             "energy_mj": a.get("energy_mj"), "area_mm2": a.get("area_mm2"),
                             **{k: a.get(k) for k in scores}, "trained_here": a.get("trained_here"),
                             **{k: a.get(k) for k in (VARIATION_METRIC, f"{VARIATION_METRIC}_std",
                                                      f"{VARIATION_METRIC}_min")},
                             "design": json.dumps(a["design"], sort_keys=True) if a.get("design") else "",
                             "pruned_at": a.get("pruned_at"),  # a pruned trial: batches done, its score there
                             "partial_score": a.get(f"{ctx.settings.metric}_partial"),
                             "scored_on": ctx.settings.selection_split if a.get(scores[0]) is not None else "",
                             "plan_key": a.get("plan_key"), "changes": changes})
    return path


def write_reports(ctx: SearchContext, study: optuna.Study | None, baseline: Solution, solution: Solution,
                  rows: Sequence[LayerRow], notes: list[str], splits: Mapping[str, Any] | None = None,
                  more_facts: Mapping[str, str] | None = None) -> dict[str, str]:
    """layers.csv, trials.csv, pareto.csv/png and summary.html in the output folder; ``splits``
    (``splits_used``) names the data behind the trials' and the final numbers; ``more_facts`` are
    shown after the others (a family's levels)."""
    s, out = ctx.settings, ctx.settings.out_dir
    files = {"bundle": str(out), "layers": str(write_layers_csv(out / "layers.csv", list(rows)))}
    metric = s.metric
    points = []
    if study is not None:
        files["trials"] = str(write_trials_csv(out / "trials.csv", study, ctx))
        points = [ParetoPoint(t.number, t.user_attrs["latency_ms"], t.user_attrs[metric],
                              bool(t.user_attrs["feasible"]))
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.user_attrs.get(metric) is not None]
        files["pareto_csv"] = str(write_pareto_csv(out / "pareto.csv", points))
    spec_ms = s.spec.latency_ms
    png = plot_pareto(out / "pareto.png", points, spec_ms, (baseline.cost.latency_ms, baseline.metrics[metric]),
                      (solution.cost.latency_ms, solution.metrics[metric]),
                      f"{' + '.join(m.model for m in s.members)} on {s.hardware}: {metric} vs latency "
                      f"({len(points)} trained candidates)")
    files["pareto_png"] = str(png)
    facts = {
        "networks": " + ".join(f"{m.model} ({m.dataset}, {m.split})" for m in s.members),
        "hardware": f"{s.hardware} ({baseline.cost.clock_mhz:g} MHz)",
        "spec": ", ".join(f"{k} <= {v:g}" for k, v in s.spec.limits.items()),
        **({"candidates scored on": splits["candidates"], "fine-tuned on": splits["fine_tune"] or "(evaluator's own)",
            "base and solution measured on": splits["report"]} if splits else {}),
        "base latency (ms)": baseline.cost.latency_ms,
        "solution latency (ms)": solution.cost.latency_ms,
        f"base {metric} (%)": baseline.metrics[metric],
        f"solution {metric} (%)": solution.metrics[metric],
        "images measured": f"{int(solution.metrics.get('n_images', 0))}"
                           + (" (PARTIAL split)" if solution.metrics.get("partial") else ""),
        "strategy / trials": f"{s.strategy} / {trial_counts(study)['total']}",
        **_measured_facts(ctx, baseline, solution),
        "base design": design_label(baseline.cost.design),
        "solution design": design_label(solution.cost.design),
        **(more_facts or {}),
    }
    title = f"nn2hw search: {' + '.join(m.model for m in s.members)}"
    files["summary"] = str(write_html(out / "summary.html", title, facts, rows, png, [*notes, *solution.cost.notes]))
    return files




def _measured_facts(ctx: SearchContext, baseline: Solution, solution: Solution) -> dict[str, str]:
    """Predicted next to measured latency, with the measurement's spread, and the predictor's
    calibration on the base network (measured templates only). The base's prediction is the one
    before calibration, the solution's the calibrated one the search used."""
    facts = {}
    if "calibration" in ctx.target.options:
        facts["predictor calibration"] = (f"x{ctx.target.options['calibration']:.4g} (measured / predicted, base "
                                          "network)")
    for label, sol in (("base", baseline), ("solution", solution)):
        if sol.measurement is not None and sol.predicted_ms is not None:
            m = sol.measurement
            referred = (f"; timed against the base, which ran x{m['drift']['factor']:.3f} of its reference "
                        f"timing: {m['referred_median_ms']:.4g} ms referred to it" if "drift" in m else "")
            facts[f"{label} latency: predicted / measured (ms)"] = (
                f"{sol.predicted_ms:.4g} / {m['median_ms']:.4g} (IQR {m['iqr_ms']:.3g}, {m['runs']} runs, "
                f"{m['threads']} thread(s), {m['runtime']} {m['runtime_version']}{referred})")
    return facts
