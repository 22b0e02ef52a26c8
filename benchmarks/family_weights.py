"""An RT3 family trained as one set of weights against the same family fine-tuned variant by variant
(issue 10 part 5).

    python benchmarks/family_weights.py [--final-batches 500] [--trials 8] [--threads 1]

ResNet-20 (Fashion-MNIST) on the analytical ZCU102 template, three latency levels at 0.3, 0.55 and
0.8 of the way from the space's leanest candidate to the base network. One search (random
strategy, seeded; candidates scored without a fine-tune on the first --search-images validation
images) gives the family's plans; it is finalized twice from the same study: **joint** (the
default: every variant fine-tuned at once as slices of one set of weights, ``nn2hw.search.family``)
and **separate** (``--family-weights separate``: each variant fine-tuned on its own from the
pretrained weights). Both fine-tunes have --final-batches steps (the joint one puts
every variant through each step). Prints per level the changed layers, the exact latency and top-1
on the whole test split of each, and each finalize's wall time; writes the figures as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from nn2hw.evaluate import FinetuneSettings
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import prepare
from nn2hw.search.settings import FINAL_FINETUNE

BASE = {"model": "resnet20", "dataset": "fashion-mnist", "hardware": "fpga:zcu102"}
FRACTIONS = (0.3, 0.55, 0.8)


def settings(args: argparse.Namespace, levels: tuple[float, ...], out: Path) -> SearchSettings:
    return SearchSettings(**BASE, spec=Spec(latency_ms=levels[0]), latency_levels_ms=levels, strategy="random",
                          trials=args.trials, seed=args.seed, finetune=FinetuneSettings(batches=0),
                          search_images=args.search_images, threads=args.threads, out=str(out),
                          final_finetune=replace(FINAL_FINETUNE, batches=args.final_batches, seed=args.seed))


def family_run(args: argparse.Namespace, levels: tuple[float, ...], out: Path, weights: str) -> dict:
    """Search and finalize the family in ``out`` (its own study: the same seed gives the same plans); its figures."""
    s = replace(settings(args, levels, out), family_weights=weights)
    start = time.perf_counter()
    result = run_search(s, progress=False, log=lambda _: None)
    wall = time.perf_counter() - start
    family = result.family
    return {"wall_s": wall, "weights": family["weights"], "shared_weights": family["shared_weights"],
            "variants": [{k: v[k] for k in ("level_ms", "latency_ms", "changed_layers", "shares_weights_with")}
                         | {"top1": v["metrics"]["top1"]} for v in family["variants"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--final-batches", type=int, default=500)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--search-images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-family-weights"))
    args = parser.parse_args()
    ctx = prepare(replace(settings(args, (1.0, 2.0), args.out / "reach"), latency_levels_ms=()),
                  evaluator=lambda m: {"top1": 0.0})
    base, lean = ctx.base_cost.latency_ms, ctx.bound_cost.latency_ms
    levels = tuple(round(lean + f * (base - lean), 6) for f in FRACTIONS)
    print(f"base {base:.4f} ms, leanest {lean:.4f} ms; levels {', '.join(f'{v:g}' for v in levels)} ms", flush=True)
    joint_dir, separate_dir = args.out / "joint", args.out / "separate"
    for folder in (joint_dir, separate_dir):
        shutil.rmtree(folder, ignore_errors=True)
    joint = family_run(args, levels, joint_dir, "joint")
    separate = family_run(args, levels, separate_dir, "separate")
    print(f"\n{'level ms':>9} {'latency ms':>11} {'changed':>8} {'joint top-1 %':>14} {'separate top-1 %':>17}")
    for j, s in zip(joint["variants"], separate["variants"]):
        assert (j["level_ms"], j["changed_layers"]) == (s["level_ms"], s["changed_layers"]), "different plans"
        print(f"{j['level_ms']:>9g} {j['latency_ms']:>11.4f} {j['changed_layers']:>8} {j['top1']:>14.2f} "
              f"{s['top1']:>17.2f}" + (f"  (level {j['shares_weights_with']:g}'s network)"
                                       if j["shares_weights_with"] is not None else ""))
    print(f"wall time (search + finalize): joint {joint['wall_s']:.0f} s, separate {separate['wall_s']:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "family_weights.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "levels_ms": levels,
                                "joint": joint, "separate": separate}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
