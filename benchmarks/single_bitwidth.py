"""The single-bit-width baseline (``--strategy uniform``) on the README's main job, next to the
figures the default strategy (REINFORCE) reached on it.

    python benchmarks/single_bitwidth.py                                   # the README job, seed 0
    python benchmarks/single_bitwidth.py --latency-ms 0.385 --strategies uniform,reinforce
    python benchmarks/single_bitwidth.py --minutes 0.3 --final-batches 20  # a smoke run

Part 1 (grid, seconds, no training): every point of the uniform grid (one weight bit width x one
width multiplier over the layers the space offers them to) costed on its own best ZCU102 design,
marked where it meets the spec; so a spec no uniform candidate meets is seen before any search.

Part 2 (search): ``nn2hw search --model resnet20 --dataset fashion-mnist --hardware fpga:zcu102
--latency-ms L --minutes M`` with each of --strategies (default: uniform) at --seed, the winner
kept whole (``--no-minimize``: minimization would drop the uniform changes the spec does not need
and make it mixed). Prints latency, top-1 on the full test split, trials and wall time per run,
and, at the README's spec (0.24 ms, 3 minutes), the published REINFORCE figures beside them
(README, docs/search.md; seeds 0-2). A run whose strategy finds no candidate that meets the spec
prints the search's reason. Figures are written to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from nn2hw.errors import InfeasibleError
from nn2hw.evaluate.settings import FinetuneSettings
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import prepare
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR
from nn2hw.search.strategies.uniform import uniform_grid
from nn2hw.search.trial import assess

MODEL, DATASET, HARDWARE = "resnet20", "fashion-mnist", "fpga:zcu102"
README_SPEC_MS, README_MINUTES = 0.24, 3.0
PUBLISHED = {  # README / docs/search.md: REINFORCE, --latency-ms 0.24 --minutes 3, full test split
    "base": {"latency_ms": 0.4167, "top1": 94.46},
    "reinforce": [{"seed": 0, "latency_ms": 0.2399, "top1": 94.28, "trials": 101, "wall_s": 248},
                  {"seed": 1, "latency_ms": 0.2378, "top1": 94.43, "trials": 110, "wall_s": 248},
                  {"seed": 2, "latency_ms": 0.2385, "top1": 94.21, "trials": 79, "wall_s": 248}],
}


def grid_costs(args: argparse.Namespace) -> list[dict]:
    """Every uniform point's latency on its best design, and whether it meets the spec."""
    ctx = prepare(SearchSettings(model=MODEL, dataset=DATASET, hardware=HARDWARE, spec=Spec(latency_ms=args.latency_ms),
                                 space_config=args.space, out=str(Path(args.out) / "grid")),
                  evaluator=lambda m: {"top1": 0.0})
    rows = []
    for point in uniform_grid(ctx.space.dimensions):
        found = assess(ctx, point.indices)
        rows.append({"point": point.label, "latency_ms": found.cost.latency_ms if found.cost else None,
                     "meets_spec": found.feasible})
    return rows


def search_run(args: argparse.Namespace, strategy: str) -> dict:
    """One search of the README job with ``strategy``: its figures, or why it found nothing."""
    name = f"{strategy}-s{args.seed}-{args.latency_ms:g}ms"
    start = time.perf_counter()
    try:
        result = run_search(SearchSettings(
            model=MODEL, dataset=DATASET, hardware=HARDWARE, spec=Spec(latency_ms=args.latency_ms),
            strategy=strategy, minutes=args.minutes, seed=args.seed, out=str(Path(args.out) / name), study=name,
            space_config=args.space, minimize=False, threads=args.threads, search_images=args.search_images,
            final_finetune=replace(FINAL_FINETUNE, batches=args.final_batches, seed=args.seed),
            finetune=FinetuneSettings(batches=args.finetune_batches, lr=SEARCH_FINETUNE_LR, seed=args.seed)),
            progress=False, log=lambda _: None)
    except InfeasibleError as exc:
        return {"strategy": strategy, "seed": args.seed, "error": exc.cause, "wall_s": time.perf_counter() - start}
    return {"strategy": strategy, "seed": args.seed, "latency_ms": result.solution.cost.latency_ms,
            "top1": result.solution.metrics.get("top1"), "base_top1": result.baseline.metrics.get("top1"),
            "base_latency_ms": result.baseline.cost.latency_ms, "trials": result.trials["total"],
            "wall_s": time.perf_counter() - start}


def print_grid(rows: list[dict], spec: float) -> None:
    meets = [r for r in rows if r["meets_spec"]]
    print(f"uniform grid: {len(rows)} points, {len(meets)} meet latency <= {spec:g} ms")
    for r in rows:
        print(f"  {r['point']:24s} {r['latency_ms']:.4f} ms {'meets' if r['meets_spec'] else 'misses'}")


def print_runs(runs: list[dict], args: argparse.Namespace) -> None:
    print(f"\n{MODEL} on {DATASET}, {HARDWARE}, latency <= {args.latency_ms:g} ms, {args.minutes:g} min, "
          f"seed {args.seed} (winner kept whole; top-1 on the full test split)")
    print(f"  {'strategy':12s} {'latency ms':>10s} {'top-1':>7s} {'trials':>6s} {'wall s':>7s}")
    for r in runs:
        if "error" in r:
            print(f"  {r['strategy']:12s} no candidate met the spec: {r['error']}")
        else:
            print(f"  {r['strategy']:12s} {r['latency_ms']:10.4f} {r['top1']:7.2f} {r['trials']:6d} {r['wall_s']:7.0f}")
    if args.latency_ms == README_SPEC_MS and args.minutes == README_MINUTES:
        base = PUBLISHED["base"]
        print(f"  published (README), base {base['latency_ms']} ms, {base['top1']} %:")
        for r in PUBLISHED["reinforce"]:
            print(f"  {'reinforce':12s} {r['latency_ms']:10.4f} {r['top1']:7.2f} {r['trials']:6d} {r['wall_s']:7.0f}"
                  f"  (seed {r['seed']})")
    else:
        print("  (no published figures at this spec and budget: add the default with --strategies uniform,reinforce)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("grid", "search", "both"), default="both")
    parser.add_argument("--strategies", default="uniform", help="comma-separated (default uniform)")
    parser.add_argument("--latency-ms", type=float, default=README_SPEC_MS)
    parser.add_argument("--minutes", type=float, default=README_MINUTES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space", help="a --space file (e.g. quantize and channel_cut on every layer)")
    parser.add_argument("--finetune-batches", type=int, default=100)
    parser.add_argument("--final-batches", type=int, default=FINAL_FINETUNE.batches)
    parser.add_argument("--search-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/single_bitwidth")
    args = parser.parse_args()
    figures: dict = {"settings": vars(args)}
    if args.part in ("grid", "both"):
        figures["grid"] = grid_costs(args)
        print_grid(figures["grid"], args.latency_ms)
    if args.part in ("search", "both"):
        figures["runs"] = [search_run(args, s.strip()) for s in args.strategies.split(",") if s.strip()]
        print_runs(figures["runs"], args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "single_bitwidth.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
