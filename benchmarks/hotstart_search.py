"""Hot-start co-search on the Fashion-MNIST zoo: a HotNAS-style table and a strategy comparison.

    python benchmarks/hotstart_search.py                      # both parts, defaults below
    python benchmarks/hotstart_search.py --part table --models resnet20
    python benchmarks/hotstart_search.py --part compare --trials 40 --seeds 3

Part 1 (table): per model and seed (--seeds, default 3), the base model on its best ZCU102 design
(latency, top-1 on the full test set) and the searched solution under a latency spec of --fraction
x base (latency, top-1 after the final fine-tune on the full test set, wall time of the whole
search), then mean ± sd (min .. max) over the seeds. Target (issue 13): ResNet-20 at >= 40 % lower
latency within 0.5 points of the base's top-1, in <= 5 minutes of wall time on a 2-core machine.

Part 2 (compare): every strategy at the same trial budget over several seeds on ResNet-20 at the
same spec: best search score under the spec (top-1 on the first --search-images validation
images after the 100-batch fine-tune) and trials to the first candidate that meets the spec; each
strategy's per-seed difference to random, with an exact one-sided paired sign-flip test (it says
plainly when a strategy is not shown to beat random). All runs share one storage database, so a
candidate already trained by any run is reused (same result, less time). Figures are printed and
written to --out as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import optuna
from _common import spread
from optuna.trial import TrialState

from nn2hw.errors import InfeasibleError
from nn2hw.evaluate.settings import FinetuneSettings
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import prepare
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR

HARDWARE = "fpga:zcu102"


def base_latency(model: str) -> float:
    ctx = prepare(SearchSettings(model=model, dataset="fashion-mnist", spec=Spec(latency_ms=1.0), hardware=HARDWARE),
                  evaluator=lambda m: {"top1": 0.0})
    return ctx.base_cost.latency_ms


def paired_sign_flip_p(diffs: list[float]) -> float:
    """One-sided exact p-value of a paired comparison: the share of the 2^n sign assignments of the
    per-seed differences whose mean is at least the observed one (no distribution assumed; with n
    seeds the smallest attainable p is 1 / 2^n)."""
    observed = statistics.mean(diffs)
    flips = list(itertools.product((1.0, -1.0), repeat=len(diffs)))
    at_least = sum(statistics.mean(s * d for s, d in zip(signs, diffs)) >= observed - 1e-12 for signs in flips)
    return at_least / len(flips)


def table_run(args: argparse.Namespace, model: str, spec: float, seed: int) -> dict:
    """One search of the table (a README main job at ``seed``): its figures, or the reason it found nothing."""
    start = time.perf_counter()
    name = f"table-{model}-s{seed}"
    try:
        result = run_search(SearchSettings(
            model=model, dataset="fashion-mnist", spec=Spec(latency_ms=spec), hardware=HARDWARE,
            strategy=args.strategy, trials=None if args.minutes else args.trials, minutes=args.minutes or None,
            seed=seed, out=str(Path(args.out) / name), study=name, threads=args.threads,
            search_images=args.search_images,
            final_finetune=replace(FINAL_FINETUNE, batches=args.final_batches, seed=seed),
            finetune=FinetuneSettings(batches=args.finetune_batches, lr=SEARCH_FINETUNE_LR, seed=seed)),
            progress=False)
    except InfeasibleError as exc:
        return {"model": model, "seed": seed, "spec_ms": spec, "error": exc.cause}
    wall = time.perf_counter() - start
    b, s = result.baseline, result.solution
    report = result.to_dict()
    return {"model": model, "seed": seed, "spec_ms": spec, "base_ms": b.cost.latency_ms,
            "base_top1": b.metrics["top1"], "solution_ms": s.cost.latency_ms, "solution_top1": s.metrics["top1"],
            "latency_reduction_pct": 100 * (1 - s.cost.latency_ms / b.cost.latency_ms),
            "top1_change": s.metrics["top1"] - b.metrics["top1"], "wall_s": wall,
            "trials": result.trials["total"], "trained": result.trials["trained"],
            "pruned": result.trials.get("pruned", 0), "splits": report["splits"],
            "changed_layers": report["solution"]["changed_layers"],
            "removed_changes": len(report["solution"].get("removed_changes", [])),
            "solution_design": report["solution"]["design"]}


def table(args: argparse.Namespace) -> list[dict]:
    """Per model, the README's main job over ``--seeds`` seeds; per seed and as mean ± sd."""
    rows = []
    for model in args.models.split(","):
        spec = args.fraction * base_latency(model)
        for seed in range(args.seeds):
            rows.append(table_run(args, model, spec, seed))
            r = rows[-1]
            print(f"{model} seed {seed}: " + (r["error"] if "error" in r else
                  f"{r['solution_ms']:.4f} ms ({r['latency_reduction_pct']:.1f} % lower), top-1 "
                  f"{r['solution_top1']:.2f} ({r['top1_change']:+.2f}), {r['trials']} trials ({r['pruned']} pruned), "
                  f"{r['wall_s']:.0f} s"), flush=True)
    budget = f"{args.minutes:g} search minutes" if args.minutes else f"{args.trials} trials"
    print(f"\nHotNAS-style table (ZCU102, spec = {args.fraction:.0%} of the base latency, strategy {args.strategy}, "
          f"{budget} per search, {args.seeds} seeds; top-1 on the full test split, candidates selected on the "
          "validation split): mean ± sd (min .. max) over seeds")
    for model in args.models.split(","):
        mine = [r for r in rows if r["model"] == model and "error" not in r]
        failed = sum(1 for r in rows if r["model"] == model and "error" in r)
        if not mine:
            print(f"{model:<20} no solution in any seed")
            continue
        first = mine[0]
        print(f"{model:<20} base {first['base_ms']:.4f} ms, {first['base_top1']:.2f} %; spec {first['spec_ms']:.4f} ms"
              + (f"; {failed} seed(s) found nothing" if failed else ""))
        for label, key in (("latency reduction (%)", "latency_reduction_pct"), ("top-1 change (points)", "top1_change"),
                           ("wall time (s)", "wall_s"), ("trials", "trials")):
            print(f"  {label:<24} {spread([float(r[key]) for r in mine])}")
        if model == "resnet20":
            ok = [r["latency_reduction_pct"] >= 40 and r["top1_change"] >= -0.5 and r["wall_s"] <= 300 for r in mine]
            print(f"  target (>= 40 % lower latency, top-1 within 0.5 points, <= 5 min wall): {sum(ok)} of "
                  f"{len(mine) + failed} seeds pass")
    return rows


def first_feasible(study: optuna.Study) -> int | None:
    numbers = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.user_attrs.get("feasible")]
    return min(numbers) + 1 if numbers else None


def compare(args: argparse.Namespace) -> list[dict]:
    model = "resnet20"
    spec = args.fraction * base_latency(model)
    storage = f"sqlite:///{Path(args.out).resolve() / 'compare.db'}"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = []
    for strategy in args.strategies.split(","):
        for seed in range(args.seeds):
            name = f"compare-{strategy}-s{seed}-t{args.trials}"
            start = time.perf_counter()
            resume = name in optuna.get_all_study_names(storage)  # an interrupted benchmark continues
            settings = SearchSettings(model=model, dataset="fashion-mnist", spec=Spec(latency_ms=spec),
                                      hardware=HARDWARE, strategy=strategy, trials=args.trials, seed=seed,
                                      storage=storage, study=name, out=str(Path(args.out) / name), resume=resume,
                                      search_images=args.search_images, top_k=1, threads=args.threads,
                                      final_finetune=replace(FINAL_FINETUNE, batches=0),
                                      finetune=FinetuneSettings(batches=args.finetune_batches, lr=SEARCH_FINETUNE_LR))
            try:
                run_search(settings, progress=False, log=lambda _: None)
            except InfeasibleError:
                pass  # no feasible candidate within the budget: scored as such below
            study = optuna.load_study(study_name=name, storage=storage)
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            scores = [t.user_attrs["top1"] for t in done if t.user_attrs.get("feasible")]
            rows.append({"strategy": strategy, "seed": seed, "best_top1": max(scores, default=None),
                         "feasible": len(scores), "first_feasible": first_feasible(study),
                         "wall_s": time.perf_counter() - start})
            print(f"{strategy:<10} seed {seed}: best {rows[-1]['best_top1']}, fine-tuned to the end and meeting the "
                  f"spec {len(scores)}/{args.trials}, "
                  f"first at {rows[-1]['first_feasible']}, {rows[-1]['wall_s']:.0f} s")
    print(f"\nstrategy comparison: ResNet-20 (Fashion-MNIST), spec {spec:.4f} ms = {args.fraction:.0%} of base, "
          f"{args.trials} trials, {args.seeds} seeds (unfound = 0 % score, first feasible = budget + 1)")
    print(f"{'strategy':<10} {'mean best top1':>15} {'mean first feasible':>20} {'completed share':>16}")
    summary = {}
    for strategy in args.strategies.split(","):
        mine = [r for r in rows if r["strategy"] == strategy]
        best = statistics.mean(r["best_top1"] or 0.0 for r in mine)
        first = statistics.mean(r["first_feasible"] or args.trials + 1 for r in mine)
        share = statistics.mean(r["feasible"] / args.trials for r in mine)
        summary[strategy] = best
        print(f"{strategy:<10} {best:>15.2f} {first:>20.1f} {share:>16.0%}")
    if "random" in summary:
        baseline = {r["seed"]: r["best_top1"] or 0.0 for r in rows if r["strategy"] == "random"}
        for strategy in summary:
            if strategy == "random":
                continue
            diffs = [(r["best_top1"] or 0.0) - baseline[r["seed"]] for r in rows if r["strategy"] == strategy]
            p = paired_sign_flip_p(diffs)
            verdict = ("beats random" if p < 0.05 else "is NOT shown to beat random (the smallest p "
                       f"{args.seeds} seeds allow is {0.5 ** args.seeds:.3g})")
            print(f"{strategy} - random, paired over seeds: {spread(diffs)} points; one-sided sign-flip p = {p:.3g}: "
                  f"{strategy} {verdict}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("table", "compare", "both"), default="both")
    parser.add_argument("--models", default="resnet20,mobilenetv2_fmnist,vgg_fmnist")
    parser.add_argument("--strategy", default="reinforce", help="strategy of the table runs")
    parser.add_argument("--strategies", default="reinforce,tpe,evolution,random")
    parser.add_argument("--fraction", type=float, default=0.6, help="latency spec as a fraction of the base")
    parser.add_argument("--trials", type=int, default=60, help="trials per comparison run (and table run)")
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="search-time budget of each table search, as the README's main job (0: trials only)")
    parser.add_argument("--threads", type=int, help="torch threads per search (default 2)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration (table and comparison)")
    parser.add_argument("--finetune-batches", type=int, default=100)
    parser.add_argument("--final-batches", type=int, default=2000)
    parser.add_argument("--search-images", type=int, default=2000)
    parser.add_argument("--out", default="runs/bench-hotstart")
    args = parser.parse_args()
    results = {}
    if args.part in ("table", "both"):
        results["table"] = table(args)
    if args.part in ("compare", "both"):
        results["compare"] = compare(args)
    path = Path(args.out) / f"hotstart_search-{args.part}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), **results}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
