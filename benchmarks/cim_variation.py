"""Accuracy of the Fashion-MNIST zoo under crossbar variation, before and after variation-aware
fine-tuning (NACIM's experiment, issue 12).

    .venv/bin/python benchmarks/cim_variation.py                       # the table in docs/cim.md
    .venv/bin/python benchmarks/cim_variation.py --models resnet20 --images 500 --draws 3 --batches 50
    .venv/bin/python benchmarks/cim_variation.py --models resnet20 --adc-sweep   # the ADC table

Per model: the zoo checkpoint ("unaware") and a copy fine-tuned with NACIM's recipe ("aware": a
plan with ``noise_train`` on every conv/linear layer at the weight noise of ``--train-sigma``,
fresh noise at every step; ``--batches`` SGD steps of ``--batch-size``, cosine learning rate from
``--lr``), each tested under ``--draws`` Monte-Carlo draws of a ``cim:reram`` design (128x128
crossbars, 2-bit cells, 1-bit DACs, differential pairs, 16-bit weights and inputs, a 9-bit ADC:
lossless for these columns, ``--adc-bits`` to change it) at each sigma of ``--sigmas``, on the
first ``--images`` test images, seed ``--seed``; with ``--bn-calibration N`` each draw's batch norms are
re-estimated on the first N training images (``evaluate_variation(calibration=...)``). Stuck-at faults
are off (``stuck_at_off=0 stuck_at_on=0``) so the table isolates the programming variation as
NACIM's does; ``--faults`` keeps the device's sourced rates (MNSIM's 9 % / 1 %). ``--json`` writes
every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn2hw import zoo
from nn2hw.compress import apply_plan, with_noise_training
from nn2hw.data import load_dataset
from nn2hw.evaluate import finetune
from nn2hw.evaluate.variation import VariationMetrics, design_noise, evaluate_variation
from nn2hw.plan import Plan

MODELS = ("resnet20", "mobilenetv2_fmnist", "vgg_fmnist")
DATASET = "fashion-mnist"


def params(sigma: float, args: argparse.Namespace) -> dict[str, object]:
    return {"sigma": sigma, "adc_bits": args.adc_bits,
            **({} if args.faults else {"stuck_at_off": 0, "stuck_at_on": 0})}


def aware_copy(name: str, base, train_data, args: argparse.Namespace) -> tuple[object, float, float]:
    """The zoo model fine-tuned with training noise at ``--train-sigma``'s weight spread; (model,
    weight sigma, seconds)."""
    workload = zoo.workload(name, DATASET)
    weight_sigma = design_noise("cim:reram", params(args.train_sigma, args))[0].weight_sigma
    plan = with_noise_training(Plan.for_workload(workload, name, DATASET), workload, weight_sigma, clip=args.train_clip)
    model = apply_plan(plan, base)
    start = time.perf_counter()
    finetune(model, train_data, args.batches, args.batch_size, args.lr, seed=args.seed, schedule="cosine",
             threads=args.threads, progress=False)
    return model, weight_sigma, time.perf_counter() - start


def adc_sweep(args: argparse.Namespace) -> list[str]:
    """The first model (unaware) at ADC bits 6..9 and the first two sigmas: the ADC table of docs/cim.md."""
    name = args.models[0]
    data = zoo.prepare(load_dataset(DATASET, "test"), name).take(args.images)
    model = zoo.build(name, DATASET, pretrained=True)
    lines = [f"| ADC bits | step (LSB) | {' | '.join(f'sigma {s:g}' for s in args.sigmas[:2])} |",
             "|---|---|" + "---|" * len(args.sigmas[:2])]
    for bits in (6, 7, 8, 9):
        args.adc_bits = bits
        cells = []
        for sigma in args.sigmas[:2]:
            noise, _ = design_noise("cim:reram", params(sigma, args))
            cells.append(row(evaluate_variation(model, data, noise, args.draws, args.seed, threads=args.threads)))
        lines.append(f"| {bits} | {noise.adc_step:.2f} | {' | '.join(cells)} |")
        print(lines[-1], flush=True)
    return lines


def row(metrics: VariationMetrics) -> str:
    return f"{metrics.top1:6.2f} ± {metrics.top1_std:4.2f} ({metrics.top1_min:6.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2])
    parser.add_argument("--train-sigma", type=float, default=0.1, help="cell sigma the aware model trains at")
    parser.add_argument("--train-clip", type=float, default=None,
                        help="clip the aware model's weights to this many standard deviations of each layer's "
                             "weights (aihwkit's LayerGaussian clipping; default: no clipping)")
    parser.add_argument("--bn-calibration", type=int, default=0, metavar="N",
                        help="re-estimate both networks' batch norms on each programmed draw from the first N "
                             "training images (default 0: the trained statistics)")
    parser.add_argument("--images", type=int, default=300, help="first N test images (default 300)")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--batches", type=int, default=150, help="fine-tune steps (default 150)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--faults", action="store_true", help="keep the device's stuck-at rates")
    parser.add_argument("--adc-bits", type=int, default=9,
                        help="ADC bits (default 9: lossless for 128 rows of 2-bit cells and 1-bit DACs)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--adc-sweep", action="store_true",
                        help="instead: the first model, unaware, at ADC bits 6..9 and the first two sigmas")
    args = parser.parse_args(argv)
    if args.adc_sweep:
        print("\n".join(adc_sweep(args)))
        return 0

    raw_test, raw_train = load_dataset(DATASET, "test"), load_dataset(DATASET, "train")
    record: dict[str, object] = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    lines = ["| model | sigma | unaware top-1 mean ± std (worst) | aware top-1 mean ± std (worst) |",
             "|---|---|---|---|"]
    for name in args.models:
        test_data = zoo.prepare(raw_test, name).take(args.images)
        base = zoo.build(name, DATASET, pretrained=True)
        train_data = zoo.prepare(raw_train, name)
        aware, weight_sigma, seconds = aware_copy(name, base, train_data, args)
        calibration = train_data.take(args.bn_calibration) if args.bn_calibration else None
        results: dict[str, list[dict[str, object]]] = {"unaware": [], "aware": []}
        for sigma in args.sigmas:
            noise, _ = design_noise("cim:reram", params(sigma, args))
            cells = [evaluate_variation(model, test_data, noise, args.draws, args.seed, threads=args.threads,
                                        calibration=calibration) for model in (base, aware)]
            for kind, metrics in zip(("unaware", "aware"), cells):
                results[kind].append(metrics.to_dict())
            lines.append(f"| {name} | {sigma:g} | {row(cells[0])} | {row(cells[1])} |")
            print(lines[-1], flush=True)
        record[name] = {"finetune_s": seconds, "train_weight_sigma": weight_sigma, **results}
        print(f"  ({name}: aware fine-tune {args.batches} x {args.batch_size} images, weight noise "
              f"{weight_sigma:.4f} x max|w|, {seconds:.0f} s)", flush=True)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
