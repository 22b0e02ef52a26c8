"""CANAO-style search of a Transformer classifier on this CPU, re-measured (issue 10, part 4).

    .venv/bin/python benchmarks/transformer_search.py --strategy tpe --train-threads 2 --minutes 12 \
        --search-images 2000 --finetune-batches 0 --final-batches 800  # MiniLM, spec 0.6 x base (docs/transformers.md)
    .venv/bin/python benchmarks/transformer_search.py --strategy tpe --minutes 14 --search-images 2000 \
        --finetune-batches 0 --final-batches 400 --fraction 0.5 --out runs/ts-2x   # the 2x stretch
    .venv/bin/python benchmarks/transformer_search.py --model vit_fmnist --dataset fashion-mnist --minutes 4 \
        --finetune-batches 100 --search-images 2000 --final-batches 500 --out runs/ts-vit

On a shared machine run it with a fresh ``NN2HW_CACHE`` holding only this machine's predictor
(``mkdir -p C/predictors && cp ~/.cache/nn2hw/predictors/cpu-onnxruntime-t1-*.json C/predictors/``,
then ``NN2HW_CACHE=C``): the measurement store never times a network twice, so an old cache would
hand the search a base timed under another load than its candidates.

1. The unmodified network is timed on this CPU (``--hardware cpu``: ONNX Runtime, 1 thread, the
   exported file at ``--seq-len`` tokens, 128 by default) and the latency spec is set to
   ``--fraction`` x its median (0.6: -40 %).
2. ``nn2hw.api.search`` runs the joint search the ``cpu`` template builds from each layer's
   bottleneck: per encoder layer the heads, the FFN width, whether the layer stays, int8 w8a8 on
   each linear layer. Candidates are predicted, the ones that pass timed before they are trained
   (measured median x 1.05 <= spec), fine-tuned (``--finetune-batches`` of 32 on the training split,
   texts trimmed to their batch's longest gloss, which the padding mask makes exact) and scored on the
   first ``--search-images`` of the validation split; the winner is minimized, re-timed, fine-tuned
   ``--final-batches`` distilled from the unmodified model and tested once on the whole test split.
   ``--train-threads N`` runs the fine-tunes and scoring on N torch threads while every timing
   keeps ``--threads`` (stop 32: with ``--minutes 12`` and 800 final batches, each whole run 21-23
   minutes, the predictor's build included).
3. The base and the returned network are timed again here, interleaved (``--repeats`` runs each):
   median, IQR and the speed-up with its spread [base q1 / solution q3, base q3 / solution q1].

Prints the searched variants (every trained candidate: measured latency, validation score; the
winner: re-measured latency and test top-1 against the unmodified model's), what the winner changed
per layer, the wall time and the load average (1-minute, from /proc/loadavg) before and after. The
last line is the whole result as JSON (also ``--out``/benchmark.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections import Counter
from pathlib import Path

from nn2hw.evaluate.settings import OPTIMIZERS
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR, finetune_recipe


def load_average() -> float:
    return os.getloadavg()[0]


def base_median_ms(model: str, dataset: str, seq_len: int | None, threads: int) -> float:
    """The unmodified network's median on this CPU, timed as the search times it (the measurement
    store keeps it, so the search calibrates on this very measurement)."""
    from nn2hw import zoo
    from nn2hw.api import load_workload
    from nn2hw.hardware import get_template
    from nn2hw.measured import measure_models

    template, device = get_template("cpu")
    network = zoo.build(model, dataset, pretrained=True).eval()
    timed, = measure_models(template, device, {"threads": threads},
                            [(network, load_workload(model=model, dataset=dataset, seq_len=seq_len), None)])
    return float(timed.median_ms)


def remeasure(out: Path, model: str, dataset: str, seq_len: int | None, repeats: int, threads: int
              ) -> dict[str, float]:
    """Base and solution (the plan of the bundle in ``out``) timed interleaved in a fresh store, as the
    search timed them (the base model with the plan applied, exported): medians, IQRs, speed-up."""
    import tempfile

    from nn2hw.api import load_workload
    from nn2hw.compress import apply_plan
    from nn2hw.hardware import get_template
    from nn2hw.measure import MeasurementStore
    from nn2hw.measured import measure_models
    from nn2hw.plan import Plan
    from nn2hw.zoo import build

    plan = Plan.load(out / "plan.json")
    base_model = build(model, dataset, pretrained=True).eval()
    workload = load_workload(model=model, dataset=dataset, seq_len=seq_len)
    template, device = get_template("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        base, solution = measure_models(template, device, {"threads": threads, "repeats": repeats},
                                        [(base_model, workload, None),
                                         (base_model, apply_plan(plan, workload), plan)],
                                        store=MeasurementStore(Path(tmp) / "pair.sqlite"))
    b, s = base.measurement, solution.measurement
    return {"base_median_ms": b.median_ms, "base_iqr_ms": b.iqr_ms, "median_ms": s.median_ms, "iqr_ms": s.iqr_ms,
            "speedup": b.median_ms / s.median_ms, "speedup_low": b.q1_ms / s.q3_ms,
            "speedup_high": b.q3_ms / s.q1_ms}


def candidates(out: Path, metric: str) -> list[dict[str, str]]:
    """The trained candidates of ``trials.csv`` (completed, with a score), best first."""
    with (out / "trials.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(metric) not in (None, "")]
    return sorted(rows, key=lambda r: -float(r[metric]))


def summary(report: dict) -> dict[str, object]:
    """What the winner changed, counted per technique: heads kept per layer, FFN widths, layers dropped, int8."""
    rows = report["layers"]
    techniques = Counter(t for r in rows for t in r["technique"].split(", ") if t not in ("-", ""))
    dropped = sorted({r["choice"].rpartition("; ")[2] for r in rows if "layer drop" in r["technique"]})
    kept = [r for r in rows if "layer drop" not in r["technique"]]
    heads = sorted({part for r in kept if "head removal" in r["technique"] for part in r["choice"].split("; ")
                    if "heads" in part})
    ffn = sorted({part for r in kept if r["layer"].endswith("intermediate.dense") and "channel cut" in r["technique"]
                  for part in r["choice"].split("; ") if part.endswith(" ch")})
    int8 = sum(1 for r in kept if "quantization" in r["technique"])
    return {"techniques": dict(techniques), "heads": heads, "ffn": ffn, "dropped": dropped, "int8_layers": int8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm_l6")
    parser.add_argument("--dataset", default="wordnet-supersense")
    parser.add_argument("--seq-len", type=int, default=0,
                        help="tokens of a sequence model (0: the model's default, 128 for minilm_l6; images: 0)")
    parser.add_argument("--fraction", type=float, default=0.6, help="latency spec as a fraction of the base median")
    parser.add_argument("--minutes", type=float, default=12.0, help="time for starting new trials")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--strategy", default="reinforce")
    parser.add_argument("--finetune-batches", type=int, default=100)
    parser.add_argument("--final-batches", type=int, default=FINAL_FINETUNE.batches)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help="of both fine-tunes (default: the model's recovery recipe, else sgd)")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"of both fine-tunes (default: the recipe's, else {SEARCH_FINETUNE_LR})")
    parser.add_argument("--search-images", type=int, default=0,
                        help="score candidates on the first N validation inputs (0: all of them, the default: "
                             "the whole split ranks candidates best)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (timing), and torch's by default")
    parser.add_argument("--train-threads", type=int, default=None,
                        help="torch threads of the fine-tunes and scoring (default: --threads); timing keeps --threads")
    parser.add_argument("--repeats", type=int, default=40, help="interleaved runs of the re-measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predict-margin", type=float, default=None,
                        help="the cpu template's predict_margin (default 0.05): room left for the predictor's error, "
                             "so that the minimized winner still meets the spec when timed on a busy machine")
    parser.add_argument("--out", default="runs/transformer-search")
    parser.add_argument("--resume", action="store_true", help="continue the study in --storage (same settings)")
    parser.add_argument("--storage", default=None,
                        help="study database shared between runs (accuracies already measured there are reused)")
    args = parser.parse_args()

    from nn2hw import api
    from nn2hw.evaluate.settings import FinetuneSettings

    seq_len = args.seq_len or None
    recipe = finetune_recipe(args.model, optimizer=args.optimizer, lr=args.lr)
    print(f"fine-tunes: {recipe.optimizer} at lr {recipe.lr:g} ({recipe.source})", flush=True)
    load_before, start = load_average(), time.perf_counter()
    base_ms = base_median_ms(args.model, args.dataset, seq_len, args.threads)
    spec = args.fraction * base_ms
    print(f"{args.model} on {args.dataset}, seq-len {seq_len}: base {base_ms:.3f} ms measured, spec {spec:.3f} ms "
          f"({args.fraction:.2f} x); load average {load_before:.1f}", flush=True)
    api.search(args.model, args.dataset, latency_ms=spec, hardware="cpu",
               hw_params={"threads": args.threads, **({} if args.predict_margin is None else
                                                      {"predict_margin": args.predict_margin})},
                        seq_len=seq_len, strategy=args.strategy, trials=args.trials, minutes=args.minutes,
                        finetune=FinetuneSettings(batches=args.finetune_batches, lr=recipe.lr, seed=args.seed,
                                                  optimizer=recipe.optimizer),
                        final_finetune=FinetuneSettings(**{**FINAL_FINETUNE.__dict__, "batches": args.final_batches,
                                                           "lr": recipe.lr, "optimizer": recipe.optimizer}),
                        search_images=args.search_images or None, threads=args.train_threads or args.threads,
                        seed=args.seed, out=args.out,
                        storage=args.storage, resume=args.resume,
                        progress=False)
    search_s = time.perf_counter() - start
    out = Path(args.out)
    report = json.loads((out / "report.json").read_text())
    timed = remeasure(out, args.model, args.dataset, seq_len, args.repeats, args.threads)
    load_after = load_average()
    metric = "top1"
    base_top1, top1 = report["baseline"][metric], report["solution"][metric]
    tried = candidates(out, metric)
    changes = summary(report)

    scored = f"the first {args.search_images}" if args.search_images else "all"
    print(f"\nsearched variants (trained candidates; latency measured during the search, {metric} on {scored} "
          f"validation inputs after {args.finetune_batches} fine-tune batches):")
    print(f"{'trial':>6}{'measured ms':>13}{'vs base':>9}{metric:>9}")
    for r in tried:
        ms = float(r["latency_ms"])
        print(f"{r['trial']:>6}{ms:>13.3f}{ms / base_ms - 1:>+9.1%}{float(r[metric]):>9.2f}")
    print(f"\nreturned network, re-measured here ({args.repeats} interleaved runs, ONNX Runtime, "
          f"{args.threads} thread):")
    print(f"{'network':<10}{'median ms':>11}{'IQR':>8}{'latency':>9}{'test top-1':>12}{'change':>8}")
    print(f"{'base':<10}{timed['base_median_ms']:>11.3f}{timed['base_iqr_ms']:>8.3f}{'':>9}{base_top1:>12.2f}")
    print(f"{'solution':<10}{timed['median_ms']:>11.3f}{timed['iqr_ms']:>8.3f}"
          f"{timed['median_ms'] / timed['base_median_ms'] - 1:>+9.1%}{top1:>12.2f}{top1 - base_top1:>+8.2f}")
    print(f"speed-up {timed['speedup']:.2f}x [{timed['speedup_low']:.2f}, {timed['speedup_high']:.2f}]; "
          f"changes: {changes['techniques']}; heads {changes['heads']}; FFN {changes['ffn']}; "
          f"dropped {changes['dropped']}; int8 layers {changes['int8_layers']}")
    print(f"wall: search {search_s / 60:.1f} min (trials {report['trials']}); load average {load_before:.1f} before, "
          f"{load_after:.1f} after")
    record = {"args": vars(args), "base_ms_at_start": base_ms, "spec_ms": spec, "search_s": search_s,
              "load_before": load_before, "load_after": load_after, "remeasured": timed,
              "base_top1": base_top1, "top1": top1, "trials": report["trials"], "changes": changes,
              "candidates": [{"trial": r["trial"], "latency_ms": float(r["latency_ms"]), metric: float(r[metric])}
                             for r in tried]}
    (out / "benchmark.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
