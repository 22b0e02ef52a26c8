"""The search loop: open (or resume, or join) the study, run trials until the budget is spent in
this process and in worker processes, show progress, then finalize.

The study is persistent: interrupting loses no completed trial, the interrupted one runs again
first on resume, and a resumed study continues as the uninterrupted one would. Live workers fail
the trials of workers that are gone as they go and run their candidates again (``reclaim``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import optuna
import sqlalchemy
from optuna.trial import TrialState

from nn2hw import __version__
from nn2hw._liveness import every, interrupts_deferred, owner_id
from nn2hw.errors import Nn2hwError
from nn2hw.evaluate import Evaluator
from nn2hw.evaluate.store import EvaluationStore
from nn2hw.search.context import SearchContext, prepare, reward_config
from nn2hw.search.evaluations import base_metric
from nn2hw.search.finalize import FinalizedElsewhere, SearchResult, finalize_any, finalize_once
from nn2hw.search.pruning import FINISHED, study_pruner
from nn2hw.search.settings import SearchSettings
from nn2hw.search.strategies.sampler import ERROR, exhausted
from nn2hw.search.study import (
    beat_periods,
    count_trials,
    faults_explained,
    heartbeat,
    interrupted,
    open_storage,
    open_study,
    quiet_optuna,
    reclaim,
)
from nn2hw.search.trial import make_sampler, objective_names, run_trial
from nn2hw.search.variation import check_reachable_accuracy

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from nn2hw.search.strategies import StrategyInfo


WAIT_S = 1.0
"""How often a worker whose remaining budget is held by other workers' running trials looks again."""


@dataclass(frozen=True)
class SearchBudget:
    """How long a search runs: ``trials`` (completed trials, pruned ones, and those that failed with
    an error of their own; None: no limit) and a ``deadline``
    (``time.time()`` after which no new trial starts; None: none)."""

    trials: int | None
    deadline: float | None

    def step(self, study: optuna.Study) -> Literal["run", "wait", "done"]:
        """'run' another trial; 'wait': the running trials of other workers hold the rest of the
        budget (one may yet fail and have to run again); 'done'."""
        if self.deadline is not None and time.time() >= self.deadline:
            return "done"
        if self.trials is None:
            return "run"
        counts = count_trials(study)
        finished = counts["complete"] + counts["pruned"] + counts["errored"]  # failed on its own: spent budget
        if finished >= self.trials:
            return "done"
        return "run" if finished + counts["running"] < self.trials else "wait"


def open_run(ctx: SearchContext, mode: str, owner: str, log: Callable[[str], None] = print
             ) -> tuple[optuna.Study, EvaluationStore, StrategyInfo]:
    """The study (created, resumed or joined) and the shared evaluation store; sets the reward; the
    strategy's messages go to ``log``."""
    storage = open_storage(ctx.settings.storage_url, *beat_periods())
    store = EvaluationStore(storage.engine, owner)
    if ctx.reward is None:
        ctx.base_metric = base_metric(ctx, store)
        check_reachable_accuracy(ctx, ctx.base_metric)
        ctx.reward = reward_config(ctx, ctx.base_metric)
    sampler, info = make_sampler(ctx, ctx.reward, log)
    identity = {**ctx.settings.identity(), "space": ctx.space.key, "nn2hw": __version__.split(".")[0]}
    study = open_study(storage, ctx.settings.study_name, identity, sampler, info.directions, mode,
                       objective_names(ctx.settings.metric, info.objectives), study_pruner(ctx, info.objectives)[0])
    return study, store, info


def work(ctx: SearchContext, study: optuna.Study, store: EvaluationStore, objectives: int, budget: SearchBudget,
         on_trial: Callable[[], None] = lambda: None) -> None:
    """Run trials until the budget counts enough completed ones (or the deadline passes).

    Before each trial, and at every heartbeat while one runs, the trials of workers that are gone
    are failed and their candidates queued to run first (``reclaim``); while other workers' running
    trials hold the rest of the budget, wait for them. A trial interrupted here (SIGINT, or a
    SIGTERM turned into one) is failed and queued to run first on resume; a trial another worker
    declared gone meanwhile is left to its re-run."""
    beat_s, grace_s = beat_periods()
    while True:
        _reclaim(study, grace_s)
        step = budget.step(study)
        if step == "done" or exhausted(study):  # a finite strategy (uniform's grid) proposed everything
            return
        if step == "wait":
            time.sleep(WAIT_S)
            on_trial()
            continue
        with interrupts_deferred(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
            trial.set_user_attr("owner", store.owner)
        try:
            with heartbeat(study, trial), every(beat_s, lambda: _reclaim(study, grace_s)):
                run_trial(ctx, study, trial, store, objectives)
        except KeyboardInterrupt:
            with interrupts_deferred():
                interrupted(study, trial._trial_id)
            raise
        except Nn2hwError as exc:  # e.g. fine-tuning diverged: record why, go on
            trial.set_user_attr(ERROR, str(exc))
            study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # this worker stalled past the grace period; another one failed the trial and runs it again
        on_trial()


def _reclaim(study: optuna.Study, grace_s: float) -> None:
    """``reclaim``, between trials and at every beat of a running one (so that a dead worker's trial
    is failed within a beat, not after this trial). A database error (two workers failing the same
    trial at once on SQLite) is left to the next try: the trial's own writes report a lasting one."""
    try:
        reclaim(study, grace_s)
    except (optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError):
        pass


def _set_threads(settings: SearchSettings) -> None:
    """Torch threads per worker: ``threads``, else the cores shared among the workers."""
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)
    elif settings.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))


def _worker_main(settings: SearchSettings, index: int, deadline: float | None) -> None:
    """Entry point of a worker process (spawned): prepare, join the study, work. SIGTERM stops it as
    SIGINT does (its trial is failed and runs again)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    _set_threads(settings)
    ctx = prepare(settings)
    try:
        with faults_explained(settings.storage_url), quiet_optuna():
            study, store, info = open_run(ctx, "join", owner_id(f"w{index}"))
            work(ctx, study, store, info.objectives, SearchBudget(settings.trials, deadline))
    except KeyboardInterrupt:
        pass  # the parent reports the interruption
    except Nn2hwError as exc:  # one paragraph, no traceback; the parent reports the exit code
        print(f"worker {index}: {exc}", file=sys.stderr)
        sys.exit(2)


def start_workers(settings: SearchSettings, deadline: float | None) -> list[BaseProcess]:
    """Spawn ``workers - 1`` extra processes on the same study (this process is the first)."""
    context = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = [context.Process(target=_worker_main, args=(settings, i, deadline), daemon=False)
             for i in range(1, settings.workers)]
    for p in procs:
        p.start()
    return procs


def progress_line(study: optuna.Study, metric: str, total: int | None) -> str:
    """'12/40 trials | 5 feasible (42%), 2 pruned | best top1 91.23% at 0.2400 ms' (finished trials:
    completed and pruned; the best of those fine-tuned to the end)."""
    done = study.get_trials(deepcopy=False, states=FINISHED)
    feasible = [t for t in done if t.user_attrs.get("feasible")]
    ok = [t for t in feasible if t.state is TrialState.COMPLETE and t.user_attrs.get(metric) is not None]
    pruned = len(feasible) - len(ok)
    share = f"{100 * len(feasible) / len(done):.0f}%" if done else "-"
    line = f"{len(done)}{f'/{total}' if total else ''} trials | {len(feasible)} feasible ({share})" \
        + (f", {pruned} pruned" if pruned else "")
    if ok:
        best = max(ok, key=lambda t: (t.user_attrs[metric], -t.user_attrs["latency_ms"]))
        line += f" | best {metric} {best.user_attrs[metric]:.2f}% at {best.user_attrs['latency_ms']:.4g} ms"
    return line


def plain_line(study: optuna.Study, metric: str, total: int | None, started: float, done_at_start: int,
               deadline: float | None) -> str:
    """``progress_line`` with what a log file needs: the trial that just finished (its latency and
    score), the time elapsed and an estimate of the time left (from this run's pace; a deadline caps it)."""
    done = study.get_trials(deepcopy=False, states=FINISHED)
    line = progress_line(study, metric, total)
    if done:
        last = max(done, key=lambda t: t.datetime_complete.timestamp() if t.datetime_complete else 0.0)
        a = last.user_attrs
        score = a.get(metric) if a.get("feasible") else None
        latency = a.get("latency_ms")
        line += f" | trial {last.number}" + (f": {latency:.4g} ms" if latency is not None else "") + (
            f", pruned at {a['pruned_at']} batches ({metric} {a[f'{metric}_partial']:.2f}%)"
            if last.state is TrialState.PRUNED else f", {metric} {score:.2f}%" if score is not None
            else ", missed a spec")
    now = time.time()
    line += f" | {_clock(now - started)} elapsed"
    left = []
    ran = len(done) - done_at_start
    if total and ran > 0:
        left.append((now - started) / ran * max(total - len(done), 0))
    if deadline is not None:
        left.append(max(deadline - now, 0.0))
    return line + (f", ~{_clock(min(left))} left" if left else "")


def _clock(seconds: float) -> str:
    """'0:03:12'."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def run_search(settings: SearchSettings, evaluator: Evaluator | None = None,
               final_evaluator: Evaluator | None = None, progress: bool = True,
               log: Callable[[str], None] = print) -> SearchResult | FinalizedElsewhere:
    """Run (or resume) a co-search and finalize it; see ``SearchSettings`` for every knob.

    ``evaluator``: any callable ``model -> {'top1': ..., ...}`` replacing the default short
    fine-tune + test (it then also scores the base model and, unless ``final_evaluator`` is
    given, the winner). Raises ``InfeasibleError`` at once when no candidate can meet the spec.
    A worker of a shared study that another worker finalizes returns ``FinalizedElsewhere``
    (where the bundle is). A full disk or a damaged or read-only study file is a ``StudyError``.
    """
    if settings.space_kind != "hotstart":  # a built-in space from scratch: its own flow, no study
        from nn2hw.search.differentiable.scratch import run_space_search

        _set_threads(settings)
        return run_space_search(settings, evaluator, final_evaluator, log)
    with faults_explained(settings.storage_url), quiet_optuna():
        return _search(settings, evaluator, final_evaluator, progress, log)


def _search(settings: SearchSettings, evaluator: Evaluator | None, final_evaluator: Evaluator | None,
            progress: bool, log: Callable[[str], None]) -> SearchResult | FinalizedElsewhere:
    start = time.time()
    _set_threads(settings)
    ctx = prepare(settings, evaluator)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    base_eval = evaluator
    final_eval = final_evaluator or evaluator
    if ctx.spec.met(ctx.base_cost) and settings.min_accuracy_under_variation is None:  # that spec is measured
        log(f"The unmodified {' + '.join(m.model for m in settings.members)} already meets the spec on "
            f"{settings.hardware} ({ctx.base_cost.latency_ms:.6g} ms); returning it on its best design.")
        return finalize_any(ctx, None, time.time() - start, final_eval, base_eval, progress)
    study, store, info = open_run(ctx, "resume" if settings.resume else "new", owner_id("w0"), log)
    deadline = start + settings.minutes * 60 if settings.minutes else None
    budget = SearchBudget(settings.trials, deadline)
    log(f"search space: {len(ctx.space.dimensions)} dimensions, {ctx.space.size:.3g} candidates; base "
        f"{ctx.base_cost.latency_ms:.6g} ms, leanest {ctx.bound_cost.latency_ms:.6g} ms, spec "
        f"{', '.join(f'{k} <= {v:g}' for k, v in settings.spec.limits.items())}")
    log(study_pruner(ctx, info.objectives)[1])
    procs = start_workers(settings, deadline) if settings.workers > 1 else []
    try:
        _loop_with_progress(ctx, study, store, info.objectives, budget, procs, progress, log)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    return finalize_once(ctx, study, store, start, final_eval, base_eval, progress, log)


def _stop(procs: Sequence[BaseProcess]) -> None:
    """After an interrupt: give the workers (which a Ctrl-C reached too) a moment to fail their
    trials, then interrupt those still running (a SIGTERM reached only this process), and wait."""
    for p in procs:
        p.join(timeout=5)
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join(timeout=30)


def _loop_with_progress(ctx: SearchContext, study: optuna.Study, store: EvaluationStore, objectives: int,
                        budget: SearchBudget, procs: Sequence[BaseProcess], show: bool,
                        log: Callable[[str], None]) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    metric = ctx.settings.metric
    total = ctx.settings.trials
    columns = [TextColumn("[bold]search[/]"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(progress_line(study, metric, total), total=total)
        plain = show and not bar.console.is_terminal  # a file or pipe: one plain line per completed trial
        started = time.time()
        done_at_start = len(study.get_trials(deepcopy=False, states=FINISHED))
        shown = [done_at_start]

        def update() -> None:
            counts = len(study.get_trials(deepcopy=False, states=FINISHED))
            bar.update(task, completed=counts, description=progress_line(study, metric, total))
            if plain and counts != shown[0]:
                shown[0] = counts
                line = plain_line(study, metric, total, started, done_at_start, budget.deadline)
                bar.console.print(f"search {line}", soft_wrap=True, highlight=False)

        work(ctx, study, store, objectives, budget, on_trial=update)
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            update()
        update()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:  # the budget is complete: the trials they left were run again by the others
        log(f"note: {len(failed)} worker process(es) stopped early (exit codes {failed}; see the messages above); "
            "the trials they left unfinished were failed and run again by the others.")
