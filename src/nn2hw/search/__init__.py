"""Hot-start co-search (HotNAS generalized): ``run_search(SearchSettings(...)) -> SearchResult``.

Layers: ``strategies`` (registry of samplers), ``study`` (persistent Optuna storage),
``evaluations`` (shared accuracy results), ``runner`` (the trial loop), ``finalize`` (the
guarantee and the exports). See docs/search.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from nn2hw._liveness import owner_id
from nn2hw.search.finalize import SearchResult, Solution, finalize
from nn2hw.search.runner import Budget, Evaluator, SearchContext, open_run, prepare, start_workers, work
from nn2hw.search.settings import SearchSettings
from nn2hw.search.spec import Spec
from nn2hw.search.strategies import STRATEGIES

__all__ = ["STRATEGIES", "SearchResult", "SearchSettings", "Solution", "Spec", "run_search"]


def progress_line(study: optuna.Study, metric: str, total: int | None) -> str:
    """'12/40 trials | 5 feasible (42%) | best top1 91.23% at 0.2400 ms'."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    ok = [t for t in done if t.user_attrs.get("feasible") and t.user_attrs.get(metric) is not None]
    share = f"{100 * len(ok) / len(done):.0f}%" if done else "-"
    line = f"{len(done)}{f'/{total}' if total else ''} trials | {len(ok)} feasible ({share})"
    if ok:
        best = max(ok, key=lambda t: (t.user_attrs[metric], -t.user_attrs["latency_ms"]))
        line += f" | best {metric} {best.user_attrs[metric]:.2f}% at {best.user_attrs['latency_ms']:.4g} ms"
    return line


def run_search(settings: SearchSettings, evaluator: Evaluator | None = None,
               final_evaluator: Evaluator | None = None, progress: bool = True,
               log: Callable[[str], None] = print) -> SearchResult:
    """Run (or resume) a co-search and finalize it; see ``SearchSettings`` for every knob.

    ``evaluator``: any callable ``model -> {'top1': ..., ...}`` replacing the default short
    fine-tune + test (it then also scores the base model and, unless ``final_evaluator`` is
    given, the winner). Raises ``InfeasibleError`` at once when no candidate can meet the spec.
    """
    import torch

    start = time.time()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    elif settings.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))
    ctx = prepare(settings, evaluator)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    base_eval = evaluator
    final_eval = final_evaluator or evaluator
    if settings.spec.met(ctx.base_cost):
        log(f"The unmodified {' + '.join(m.model for m in settings.members)} already meets the spec on "
            f"{settings.hardware} ({ctx.base_cost.latency_ms:.6g} ms); returning it on its best design.")
        return finalize(ctx, None, time.time() - start, final_eval, base_eval, progress)
    study, store, info = open_run(ctx, "resume" if settings.resume else "new", owner_id("w0"))
    deadline = start + settings.minutes * 60 if settings.minutes else None
    budget = Budget(settings.trials, deadline)
    log(f"search space: {len(ctx.space.dimensions)} dimensions, {ctx.space.size:.3g} candidates; base "
        f"{ctx.base_cost.latency_ms:.6g} ms, leanest {ctx.bound_cost.latency_ms:.6g} ms, spec "
        f"{', '.join(f'{k} <= {v:g}' for k, v in settings.spec.limits.items())}")
    procs = start_workers(settings, deadline) if settings.workers > 1 else []
    try:
        _loop_with_progress(ctx, study, store, info.objectives, budget, procs, progress)
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    return finalize(ctx, study, time.time() - start, final_eval, base_eval, progress)


def _loop_with_progress(ctx: SearchContext, study, store, objectives: int, budget: Budget, procs, show: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    metric = ctx.settings.metric
    total = ctx.settings.trials
    columns = [TextColumn("[bold]search[/]"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(progress_line(study, metric, total), total=total)

        def update() -> None:
            counts = sum(t.state is TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
            bar.update(task, completed=counts, description=progress_line(study, metric, total))

        work(ctx, study, store, objectives, budget, on_trial=update)
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            update()
        update()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        from nn2hw.errors import StudyError

        raise StudyError(f"{len(failed)} worker process(es) exited with an error (exit codes {failed}).",
                         "See the messages above; completed trials are saved, resume with --resume.")

