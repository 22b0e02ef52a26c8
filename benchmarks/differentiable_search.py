"""Differentiable co-search against the discrete strategies and the single-bit-width baseline at
equal wall time (issue 11).

    python benchmarks/differentiable_search.py                     # both templates, 4 strategies, 3 seeds
    python benchmarks/differentiable_search.py --seeds 1 --hardware fpga:zcu102 --minutes 4 \\
        --final-batches 300 --strategies differentiable,reinforce   # one small run
    python benchmarks/differentiable_search.py ... --resume        # an interrupted one: runs the rest

The job is the README's: ResNet-20 (Fashion-MNIST), hot-start space, per template of --hardware
(default the issue's two: ``eyeriss`` and ``chunk``, the chunk-pipelined FPGA accelerator) a latency
spec of --fraction x the base's latency on that template. First, without training, the base latency,
the leanest latency of the whole space and the leanest the differentiable strategy can reach (its
relaxed techniques only: it refuses a spec below that before training) are printed; the default
fractions lie above the latter: 0.6 (Eyeriss reaches 0.53 x base, ``fpga:zcu102`` 0.45 x base) and
0.7 on ``chunk`` (0.59 x base). Then every strategy of --strategies
(default differentiable, reinforce, tpe and uniform, the single-bit-width baseline, whose winner is
kept whole as ``benchmarks/single_bitwidth.py`` keeps it) runs once per seed.

**Equal wall time.** By default every run gets the same search budget, ``--minutes M``, counted from
the search's start. The differentiable strategy trains its supernet inside that budget, before its
first trial: for at most ``train_share`` (0.5) x M or --epochs epochs of the ``fit`` split, whichever
ends first; its derived candidates then run as trials until the deadline or until every candidate
was proposed (so it may end early). As for every strategy, a trial running at the deadline
finishes and the final fine-tune (--final-batches) follows, so the measured wall time (printed) is
what is compared, not M (each run also prints the part before finalize: the report's ``wall_s``).

**Half the wall time.** The finalize that follows every search (minimization, the final fine-tune,
the test) costs about the same whichever strategy found the network, so at equal minutes no strategy
can take half another's wall time. ``--discrete-minutes M2`` gives every other strategy (the
baseline too) a budget of its own, so the target's reading -- the differentiable strategy within
0.3 points of what the best discrete strategy reaches in twice its wall time -- is measured
directly; the ratio printed is of the measured wall times.

**Parallel runs.** ``--jobs N`` runs N searches at once, each in its own process with --threads
threads (``--jobs 2 --threads 1`` on a 2-core machine); every run still has its own folder and
database, and each is saved as it ends.

**Fresh store per run.** Every run has its own folder under --out and its own storage database
(``study.db`` there, which holds the evaluation store), deleted before the run starts: no run reuses
a candidate another run (or an earlier benchmark) trained, which would shorten its wall time.

Per run: latency (exact cost of the solution on its own best design), top-1 on the full test split,
trials and wall time, or the search's reason when it ends with nothing that meets the spec (counted
as such). Per strategy and template: mean ± sd (min .. max) over the seeds that met the spec. Then
the target line per template: the differentiable strategy's mean top-1 against the best discrete
strategy's (any other of --strategies but ``uniform``, the baseline) and their wall-time
ratio; target (issue 11): within 0.3 points at <= 0.5 x the wall time, said plainly as MET / NOT
MET. Figures are written to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from _common import spread

from nn2hw.errors import InfeasibleError
from nn2hw.evaluate.settings import FinetuneSettings
from nn2hw.search import SearchResult, SearchSettings, Solution, Spec, run_search
from nn2hw.search.context import prepare
from nn2hw.search.differentiable.costs import ExactCosts, hardware_metrics, relaxed_positions
from nn2hw.search.differentiable.train import check_reachable
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR

MODEL, DATASET = "resnet20", "fashion-mnist"
BASELINE = "uniform"
TARGET_POINTS, TARGET_WALL_RATIO = 0.3, 0.5


def reach(hardware: str) -> dict:
    """Base latency, the whole space's leanest and the leanest the differentiable strategy's relaxed
    techniques reach (its own reachability check, asked for an unreachable spec), on ``hardware``."""
    settings = SearchSettings(model=MODEL, dataset=DATASET, hardware=hardware, spec=Spec(latency_ms=1e9),
                              strategy="differentiable", out=str(Path("runs") / "differentiable-reach"))
    ctx = prepare(settings, evaluator=lambda m: {"top1": 0.0})
    ctx = replace(ctx, settings=replace(settings, spec=Spec(latency_ms=1e-9)))
    try:
        check_reachable(ctx, ExactCosts(ctx, hardware_metrics(ctx)), relaxed_positions(ctx.space.dimensions))
    except InfeasibleError as exc:
        relaxed = exc.best_bound
    else:
        raise AssertionError("the reachability check accepted a 1e-9 ms spec")
    return {"base_ms": ctx.base_cost.latency_ms, "leanest_ms": ctx.bound_cost.latency_ms,
            "differentiable_leanest_ms": relaxed}


def spec_fraction(text: str, hardware: str) -> float:
    """The --fraction of ``hardware``: its own ``NAME=F`` entry, else the plain number given."""
    plain, own = None, {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, _, value = item.rpartition("=")
        try:
            fraction = float(value)
        except ValueError:
            raise SystemExit(f"--fraction: {value!r} is not a number; give e.g. 0.6 or 0.6,chunk=0.7") from None
        if not 0 < fraction:
            raise SystemExit(f"--fraction: {item!r} must be positive (a fraction of the base latency)")
        if name:
            own[name] = fraction
        else:
            plain = fraction
    if hardware in own:
        return own[hardware]
    if plain is None:
        raise SystemExit(f"--fraction {text!r} gives none for {hardware}; add {hardware}=F or a plain number")
    return plain


def budget_minutes(args: argparse.Namespace, strategy: str) -> float:
    """The search budget of ``strategy``: --minutes for the differentiable strategy, --discrete-minutes
    (default --minutes) for every other."""
    if strategy == "differentiable" or args.discrete_minutes is None:
        return float(args.minutes)
    return float(args.discrete_minutes)


def search_run(args: argparse.Namespace, hardware: str, spec_ms: float, strategy: str, seed: int) -> dict:
    """One search at ``spec_ms`` on ``hardware`` in a fresh folder and database: its figures, or why
    it found nothing."""
    name = f"{hardware.replace(':', '-')}-{strategy}-s{seed}"
    out = Path(args.out) / name
    (out / "study.db").unlink(missing_ok=True)
    minutes = budget_minutes(args, strategy)
    row = {"hardware": hardware, "strategy": strategy, "seed": seed, "spec_ms": spec_ms, "minutes": minutes}
    start = time.perf_counter()
    try:
        result = run_search(SearchSettings(
            model=MODEL, dataset=DATASET, hardware=hardware, spec=Spec(latency_ms=spec_ms), strategy=strategy,
            trials=None, minutes=minutes, seed=seed, out=str(out), study=name, threads=args.threads,
            epochs=args.epochs if strategy == "differentiable" else None, minimize=strategy != BASELINE,
            search_images=args.search_images,
            final_finetune=replace(FINAL_FINETUNE, batches=args.final_batches, seed=seed),
            finetune=FinetuneSettings(batches=args.finetune_batches, lr=SEARCH_FINETUNE_LR, seed=seed)),
            progress=False, log=lambda _: None)
    except InfeasibleError as exc:
        return {**row, "error": exc.cause, "wall_s": time.perf_counter() - start}
    # one worker finalizes its own study, so the result is whole and its solution a Solution
    assert isinstance(result, SearchResult) and isinstance(result.solution, Solution)
    return {**row, "latency_ms": result.solution.cost.latency_ms, "top1": result.solution.metrics["top1"],
            "base_top1": result.baseline.metrics["top1"], "trials": result.trials["total"],
            "wall_s": time.perf_counter() - start, "search_s": result.wall_s}


def print_run(r: dict) -> None:
    head = f"{r['hardware']:<12} {r['strategy']:<15} seed {r['seed']}: "
    print(head + (f"INFEASIBLE ({r['error']}), {r['wall_s']:.0f} s" if "error" in r else
                  f"{r['latency_ms']:.4f} ms, top-1 {r['top1']:.2f} %, {r['trials']} trials, {r['wall_s']:.0f} s "
                  f"({r['search_s']:.0f} s to the end of the trials, the rest finalize)"),
          flush=True)


def summarize(rows: list[dict], hardware: str, strategies: list[str]) -> dict[str, dict]:
    """Per strategy on ``hardware``: mean ± sd (min .. max) over the seeds that met the spec."""
    print(f"\n{hardware}: {'strategy':<15} {'met':>5}  {'top-1 (%)':<30} {'latency (ms)':<36} {'wall (s)':<24} trials")
    summary = {}
    for strategy in strategies:
        mine = [r for r in rows if r["hardware"] == hardware and r["strategy"] == strategy]
        ok = [r for r in mine if "error" not in r]
        summary[strategy] = {"seeds": len(mine), "met": len(ok),
                             "top1": statistics.mean(r["top1"] for r in ok) if ok else None,
                             "wall_s": statistics.mean(r["wall_s"] for r in mine)}
        cells = [spread([float(r[k]) for r in ok], digits) if ok else "-"
                 for k, digits in (("top1", 2), ("latency_ms", 4), ("wall_s", 0), ("trials", 0))]
        print(f"{'':<{len(hardware) + 2}}{strategy:<15} {len(ok)}/{len(mine):<3}  "
              + " ".join(f"{c:<{w}}" for c, w in zip(cells, (30, 36, 24, 0))))
    return summary


def target_line(hardware: str, summary: dict[str, dict]) -> dict:
    """The differentiable strategy against the best discrete strategy at the same spec: MET or NOT MET."""
    mine = summary.get("differentiable")
    discrete = {s: v for s, v in summary.items() if s not in ("differentiable", BASELINE) and v["top1"] is not None}
    if mine is None or not discrete:
        print(f"{hardware} target: not assessed (needs the differentiable strategy and a discrete strategy that met "
              "the spec)")
        return {"verdict": "not assessed"}
    best = max(discrete, key=lambda s: discrete[s]["top1"])
    ratio = mine["wall_s"] / discrete[best]["wall_s"]
    if mine["met"] < mine["seeds"]:
        verdict = {"verdict": "NOT MET", "why": f"{mine['seeds'] - mine['met']} differentiable seed(s) met no spec"}
        print(f"{hardware} target: NOT MET ({verdict['why']}); wall-time ratio {ratio:.2f}")
        return {**verdict, "best_discrete": best, "wall_ratio": ratio}
    diff = round(mine["top1"] - discrete[best]["top1"], 2)  # top-1 is read to 0.01 points
    met = diff >= -TARGET_POINTS and ratio <= TARGET_WALL_RATIO
    print(f"{hardware} target: differentiable {mine['top1']:.2f} % vs best discrete ({best}) "
          f"{discrete[best]['top1']:.2f} % = {diff:+.2f} points (within {TARGET_POINTS}: "
          f"{'yes' if diff >= -TARGET_POINTS else 'no'}); wall time {mine['wall_s']:.0f} s vs "
          f"{discrete[best]['wall_s']:.0f} s = {ratio:.2f}x (<= {TARGET_WALL_RATIO}: "
          f"{'yes' if ratio <= TARGET_WALL_RATIO else 'no'}): {'MET' if met else 'NOT MET'}")
    return {"verdict": "MET" if met else "NOT MET", "best_discrete": best, "top1_diff": diff, "wall_ratio": ratio}


SAME_RUN = ("fraction", "minutes", "discrete_minutes", "epochs", "finetune_batches", "final_batches", "search_images",
            "threads")
"""The settings a resumed benchmark must share with the runs it keeps."""


def resumed(args: argparse.Namespace) -> list[dict]:
    """The runs an earlier benchmark wrote to ``--out`` (none when there is no file); an error
    naming the setting when they were run with other settings."""
    path = Path(args.out) / "differentiable_search.json"
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    changed = [k for k in SAME_RUN if earlier["args"].get(k) != getattr(args, k)]
    if changed:
        given = ", ".join(f"{k}={earlier['args'].get(k)!r}" for k in changed)
        raise SystemExit(f"--resume: {path} holds runs made with other {', '.join(changed)} ({given}); give the "
                         "same, or another --out.")
    print(f"resuming: keeping {len(earlier['runs'])} run(s) from {path}", flush=True)
    return list(earlier["runs"])


def run_all(args: argparse.Namespace, pending: list[tuple[str, float, str, int]], figures: dict) -> None:
    """Run every (hardware, spec, strategy, seed) of ``pending``, --jobs at a time, each saved to
    --out as it ends (an interrupted benchmark keeps the runs it finished)."""
    def finished(row: dict) -> None:
        figures["runs"].append(row)
        print_run(row)
        save(figures, args.out)

    if args.jobs == 1:
        for run in pending:
            finished(search_run(args, *run))
        return
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(search_run, args, *run) for run in pending]):
            finished(future.result())


def save(figures: dict, out: str) -> Path:
    path = Path(out) / "differentiable_search.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hardware", default="eyeriss,chunk", help="comma-separated templates")
    parser.add_argument("--strategies", default="differentiable,reinforce,tpe,uniform", help="comma-separated")
    parser.add_argument("--fraction", default="0.6,chunk=0.7",
                        help="latency spec as a fraction of the base: one number for every template, NAME=F for one")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=4.0,
                        help="search budget of every run (equal wall time), or of the differentiable strategy's "
                             "when --discrete-minutes is given")
    parser.add_argument("--discrete-minutes", type=float,
                        help="search budget of every other strategy (default --minutes)")
    parser.add_argument("--epochs", type=float, help="supernet epochs of the differentiable strategy (default 1)")
    parser.add_argument("--finetune-batches", type=int, default=100)
    parser.add_argument("--final-batches", type=int, default=FINAL_FINETUNE.batches)
    parser.add_argument("--search-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process with --threads")
    parser.add_argument("--out", default="runs/bench-differentiable")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs an interrupted benchmark with the same settings wrote to --out and run "
                             "only the others (--strategies and --seeds may differ)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.minutes <= 0 or (args.discrete_minutes is not None and args.discrete_minutes <= 0):
        parser.error("--minutes and --discrete-minutes must be positive")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    fractions = {h.strip(): spec_fraction(args.fraction, h.strip()) for h in args.hardware.split(",") if h.strip()}
    figures: dict = {"args": vars(args), "templates": {}, "runs": resumed(args) if args.resume else []}
    for hardware, fraction in fractions.items():
        found = reach(hardware)
        spec = fraction * found["base_ms"]
        print(f"{hardware}: base {found['base_ms']:.4f} ms; leanest {found['leanest_ms']:.4f} ms (whole space), "
              f"{found['differentiable_leanest_ms']:.4f} ms (differentiable's relaxed techniques); spec "
              f"{spec:.4f} ms = {fraction:g} x base" + ("" if spec >= found["differentiable_leanest_ms"] else
                                                       " (below the differentiable strategy's reach)"),
              flush=True)
        figures["templates"][hardware] = {**found, "spec_ms": spec}
        pending = [(hardware, spec, strategy, seed) for seed in range(args.seeds) for strategy in strategies
                   if not any((r["hardware"], r["strategy"], r["seed"]) == (hardware, strategy, seed)
                              for r in figures["runs"])]  # the others are kept from an interrupted benchmark
        run_all(args, pending, figures)
    budget = f"{args.minutes:g} search minutes per run" + (
        "" if args.discrete_minutes is None else
        f" (differentiable), {args.discrete_minutes:g} (every other strategy)")
    print(f"\nResNet-20 (Fashion-MNIST), {budget}, {args.seeds} seed(s); top-1 on the full test split; "
          "mean ± sd (min .. max) over the seeds that met the spec")
    for hardware, template in figures["templates"].items():
        template["summary"] = summarize(figures["runs"], hardware, strategies)
        template["target"] = target_line(hardware, template["summary"])
    print(f"\nwrote {save(figures, args.out)}")


if __name__ == "__main__":
    main()
