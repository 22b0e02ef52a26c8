"""The search loop: open (or resume, or join) the study, run trials until the budget is spent in
this process and in worker processes, show progress, then finalize.

The study is persistent: interrupting loses no completed trial, and a resumed study continues
where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from nn2hw import __version__
from nn2hw._liveness import owner_id
from nn2hw.errors import Nn2hwError, StudyError
from nn2hw.evaluate import Evaluator
from nn2hw.evaluate.store import EvaluationStore
from nn2hw.search.context import SearchContext, prepare, reward_config
from nn2hw.search.evaluations import base_metric
from nn2hw.search.finalize import SearchResult, finalize
from nn2hw.search.settings import SearchSettings
from nn2hw.search.study import count_trials, heartbeat, open_storage, open_study
from nn2hw.search.trial import make_sampler, run_trial

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from nn2hw.search.strategies import StrategyInfo


@dataclass(frozen=True)
class SearchBudget:
    """How long a search runs: ``trials`` (completed plus running, None: no limit) and a
    ``deadline`` (``time.time()`` after which no new trial starts; None: none)."""

    trials: int | None
    deadline: float | None

    def more(self, study: optuna.Study) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return False
        if self.trials is None:
            return True
        counts = count_trials(study)
        return counts["complete"] + counts["running"] < self.trials


def open_run(ctx: SearchContext, mode: str, owner: str) -> tuple[optuna.Study, EvaluationStore, StrategyInfo]:
    """The study (created, resumed or joined) and the shared evaluation store; sets the reward."""
    storage = open_storage(ctx.settings.storage_url)
    store = EvaluationStore(storage.engine, owner)
    if ctx.reward is None:
        ctx.base_metric = base_metric(ctx, store)
        ctx.reward = reward_config(ctx, ctx.base_metric)
    sampler, info = make_sampler(ctx, ctx.reward)
    identity = {**ctx.settings.identity(), "space": ctx.space.key, "nn2hw": __version__.split(".")[0]}
    study = open_study(storage, ctx.settings.study_name, identity, sampler, info.directions, mode)
    return study, store, info


def work(ctx: SearchContext, study: optuna.Study, store: EvaluationStore, objectives: int, budget: SearchBudget,
         on_trial: Callable[[], None] = lambda: None) -> None:
    """Run trials until the budget is spent; a trial interrupted here is failed (re-run on resume)."""
    while budget.more(study):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        try:
            with heartbeat(study, trial):
                run_trial(ctx, study, trial, store, objectives)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Nn2hwError as exc:  # e.g. fine-tuning diverged: record why, go on
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
        on_trial()


def _set_threads(settings: SearchSettings) -> None:
    """Torch threads per worker: ``threads``, else the cores shared among the workers."""
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)
    elif settings.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))


def _worker_main(settings: SearchSettings, index: int, deadline: float | None) -> None:
    """Entry point of a worker process (spawned): prepare, join the study, work."""
    _set_threads(settings)
    ctx = prepare(settings)
    study, store, info = open_run(ctx, "join", owner_id(f"w{index}"))
    try:
        work(ctx, study, store, info.objectives, SearchBudget(settings.trials, deadline))
    except KeyboardInterrupt:
        pass  # the parent reports the interruption


def start_workers(settings: SearchSettings, deadline: float | None) -> list[BaseProcess]:
    """Spawn ``workers - 1`` extra processes on the same study (this process is the first)."""
    context = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = [context.Process(target=_worker_main, args=(settings, i, deadline), daemon=False)
             for i in range(1, settings.workers)]
    for p in procs:
        p.start()
    return procs


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
    start = time.time()
    _set_threads(settings)
    ctx = prepare(settings, evaluator)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    base_eval = evaluator
    final_eval = final_evaluator or evaluator
    if ctx.spec.met(ctx.base_cost):
        log(f"The unmodified {' + '.join(m.model for m in settings.members)} already meets the spec on "
            f"{settings.hardware} ({ctx.base_cost.latency_ms:.6g} ms); returning it on its best design.")
        return finalize(ctx, None, time.time() - start, final_eval, base_eval, progress)
    study, store, info = open_run(ctx, "resume" if settings.resume else "new", owner_id("w0"))
    deadline = start + settings.minutes * 60 if settings.minutes else None
    budget = SearchBudget(settings.trials, deadline)
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


def _loop_with_progress(ctx: SearchContext, study: optuna.Study, store: EvaluationStore, objectives: int,
                        budget: SearchBudget, procs: Sequence[BaseProcess], show: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    metric = ctx.settings.metric
    total = ctx.settings.trials
    columns = [TextColumn("[bold]search[/]"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(progress_line(study, metric, total), total=total)
        plain = show and not bar.console.is_terminal  # a file or pipe: one plain line per completed trial
        shown = [-1]

        def update() -> None:
            counts = sum(t.state is TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
            line = progress_line(study, metric, total)
            bar.update(task, completed=counts, description=line)
            if plain and counts != shown[0]:
                shown[0] = counts
                bar.console.print(f"search {line}", soft_wrap=True, highlight=False)

        work(ctx, study, store, objectives, budget, on_trial=update)
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            update()
        update()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise StudyError(f"{len(failed)} worker process(es) exited with an error (exit codes {failed}).",
                         "See the messages above; completed trials are saved, resume with --resume.")
