"""Co-exploration on the crossbar template (issue 12 part 3): a search that meets energy and area
specs **and** a minimum top-1 under device variation (sigma = 0.1), choosing the device, crossbar
size, cell and ADC bits beside each layer's quantization and channels, with variation-aware
fine-tuning of every candidate (NACIM's recipe), and the winner re-checked on fresh draws.

Prints (and writes with --json):
1. the search's result: specs, the base model and the winner (latency, energy, area, clean top-1,
   top-1 under variation on the selection and test splits, design);
2. every trained candidate: its device x crossbar x cell bits x ADC bits, what it costs and its
   accuracy under variation (from trials.csv), feasible or why not;
3. what each device x ADC bits x crossbar size costs for the winner's network (each choice pinned,
   the rest of the design explored under the same specs), with the ADC's lossless point.

    python benchmarks/cim_search.py                                 # ResNet-20, Fashion-MNIST
    python benchmarks/cim_search.py --minutes 8 --floor 80 --energy-mj 0.05 --area-mm2 4 --json cim_search.json
    python benchmarks/cim_search.py --floor 88 --bn-calibration 512    # batch norms re-estimated per draw
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nn2hw import api
from nn2hw.errors import InfeasibleError
from nn2hw.evaluate import FinetuneSettings
from nn2hw.hardware import get_template
from nn2hw.hardware.cim.model import exact_adc_bits
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR

NOISE = {"sigma": 0.1, "stuck_at_off": 0, "stuck_at_on": 0}
"""sigma = 0.1 on every device (the spec's variation), no stuck-at faults (a fault rate of MNSIM's
9 % stuck-off collapses every network, whatever the design)."""
CHIP = {"dac_bits": 1, "cell_bits": "1,2"}
"""The chip's own choices, as a user pins them (``--hw-param``): 1-bit DACs and cells of 1 or 2 bits
(the exploration picks; 4-bit cells spread a weight's noise the most). Without them the search also
chooses the DAC and cell bits, and needs more trials to find designs that hold accuracy."""
DESIGN_KEYS = ("device", "rows", "cols", "cell_bits", "adc_bits", "dac_bits")


def _design(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}


def candidate_rows(out: Path) -> list[dict[str, Any]]:
    """Every trained candidate of the search (trials.csv): design, costs, clean and noisy top-1."""
    with (out / "trials.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["top1"]]
    found = []
    for r in rows:
        design = _design(r["design"])
        found.append({**{k: design.get(k) for k in DESIGN_KEYS}, "trial": int(r["trial"]),
                      "latency_ms": float(r["latency_ms"]), "energy_mj": float(r["energy_mj"]),
                      "area_mm2": float(r["area_mm2"]), "top1": float(r["top1"]),
                      "top1_variation": float(r["top1_variation"]) if r["top1_variation"] else None,
                      "feasible": r["feasible"] == "True", "reason": r["reason"]})
    return found


def choice_costs(plan_file: Path, specs: dict[str, float]) -> list[dict[str, Any]]:
    """What each device x ADC bits x crossbar size costs the winner's network: the best design with
    those pinned (the other axes explored), meeting the specs where one does."""
    from nn2hw.api import plan_workload
    from nn2hw.compress import apply_plan
    from nn2hw.plan import Plan

    plan = Plan.load(plan_file)
    workload = apply_plan(plan, plan_workload(plan))
    template, _ = get_template("cim")
    rows = []
    for device in template.devices():
        for side in (64, 128, 256):
            for adc in (4, 6, 8, 9, 10):
                grid = {"device": [device], "rows": [side], "cols": [side], "adc_bits": [adc],
                        "sigma": [NOISE["sigma"]], "dac_bits": [CHIP["dac_bits"]], "cell_bits": [1, 2]}
                try:
                    best = template.explore(workload, device, grid, specs=specs).best
                    met = True
                except InfeasibleError:
                    best = template.explore(workload, device, grid).best
                    met = False
                rows.append({"device": device, "crossbar": f"{side}x{side}", "adc_bits": adc,
                             "cell_bits": best.design["cell_bits"],
                             "lossless_adc_bits": exact_adc_bits(side, best.design["cell_bits"],
                                                                 best.design["dac_bits"]),
                             "latency_ms": best.latency_ms, "energy_mj": best.energy_mj, "area_mm2": best.area_mm2,
                             "meets_specs": met})
    return rows


def search(args: argparse.Namespace, specs: dict[str, float]) -> Any:
    """The co-exploration the arguments describe (``nn2hw.api.search``)."""
    return api.search(
        args.model, args.dataset, hardware="cim:reram", hw_params={**NOISE, **CHIP}, progress=False, out=str(args.out),
        strategy=args.strategy, minutes=args.minutes, trials=None, seed=args.seed, threads=args.threads,
        finetune=FinetuneSettings(batches=args.finetune_batches, lr=SEARCH_FINETUNE_LR, seed=args.seed),
        final_finetune=replace(FINAL_FINETUNE, batches=args.final_batches, seed=args.seed), pruner=args.pruner,
        search_images=args.search_images, min_accuracy_under_variation=args.floor, variation_draws=args.draws,
        final_variation_draws=args.final_draws, bn_calibration=args.bn_calibration, **specs)


def _table(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--floor", type=float, default=80.0, help="top-1 under variation spec, percent (80)")
    parser.add_argument("--energy-mj", type=float, default=0.05, help="energy spec (0.05 mJ)")
    parser.add_argument("--area-mm2", type=float, default=4.0, help="area spec (4 mm^2)")
    parser.add_argument("--latency-ms", type=float, default=None, help="optional latency spec")
    parser.add_argument("--minutes", type=float, default=8.0, help="search budget (8)")
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--finetune-batches", type=int, default=100)
    parser.add_argument("--final-batches", type=int, default=500)
    parser.add_argument("--draws", type=int, default=3, help="noise draws per candidate (3)")
    parser.add_argument("--final-draws", type=int, default=5, help="fresh draws re-checking the winner (5)")
    parser.add_argument("--search-images", type=int, default=1000)
    parser.add_argument("--bn-calibration", type=int, default=0, metavar="N",
                        help="re-estimate each draw's batch norms on N training images (0: the trained statistics)")
    parser.add_argument("--pruner", default="none",
                        help="early stopping on clean partial scores (none: every candidate that meets the cost specs "
                             "gets its Monte-Carlo test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/cim_search"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    specs = {k: v for k, v in (("latency_ms", args.latency_ms), ("energy_mj", args.energy_mj),
                               ("area_mm2", args.area_mm2)) if v is not None}
    started = time.perf_counter()
    try:
        result = search(args, specs)
    except InfeasibleError as exc:  # still show what every candidate cost and how it held up
        print(f"no candidate met every spec: {exc.cause}\n")
        print(_table(candidate_rows(args.out), ("trial", *DESIGN_KEYS, "latency_ms", "energy_mj", "area_mm2", "top1",
                                                 "top1_variation", "feasible")))
        raise SystemExit(1) from None
    wall_s = time.perf_counter() - started

    report = json.loads((args.out / "report.json").read_text())
    sol, base = report["solution"], report["baseline"]
    check = sol["accuracy_under_variation"]
    summary = [
        {"": "base model", **{k: base[k] for k in ("latency_ms", "energy_mj", "area_mm2", "top1")},
         **{k: base["design"].get(k) for k in DESIGN_KEYS}},
        {"": "solution", **{k: sol[k] for k in ("latency_ms", "energy_mj", "area_mm2", "top1")},
         **{k: sol["design"].get(k) for k in DESIGN_KEYS}},
    ]
    print(f"{args.model} on {args.dataset}, cim (sigma {NOISE['sigma']}, no stuck-at, {CHIP}), specs {specs}, "
          f"top-1 under variation >= {args.floor:g} %; {result.trials['total']} trials in {args.minutes:g} min "
          f"({result.trials['feasible']} met every spec), {wall_s:.0f} s wall\n")
    print(_table(summary, ("", "latency_ms", "energy_mj", "area_mm2", "top1", *DESIGN_KEYS)))
    sel, rep = check["selection"], check["report"]
    print(f"\nwinner under variation, {sel['draws']} fresh draws: {sel['top1']:.2f} ± {sel['top1_std']:.2f} % "
          f"(worst {sel['top1_min']:.2f}) on {sel['split']} ({sel['n_images']} images); {rep['top1']:.2f} ± "
          f"{rep['top1_std']:.2f} % (worst {rep['top1_min']:.2f}, clean {rep['top1_clean']:.2f}) on {rep['split']}\n")
    candidates = candidate_rows(args.out)
    print(_table(candidates, ("trial", *DESIGN_KEYS, "latency_ms", "energy_mj", "area_mm2", "top1", "top1_variation",
                              "feasible")))
    costs = choice_costs(args.out / "plan.json", specs)
    print("\nwhat each choice costs the winner's network (best design with it pinned):\n")
    print(_table(costs, ("device", "crossbar", "adc_bits", "cell_bits", "lossless_adc_bits", "latency_ms",
                         "energy_mj", "area_mm2", "meets_specs")))
    if args.json:
        args.json.write_text(json.dumps({"specs": specs, "floor": args.floor, "noise": NOISE, "wall_s": wall_s,
                                         "trials": result.trials, "summary": summary, "variation": check,
                                         "candidates": candidates, "choice_costs": costs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
