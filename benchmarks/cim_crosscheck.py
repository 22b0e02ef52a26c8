"""Cross-check nn2hw's accuracy under crossbar variation against IBM's aihwkit-lightning (issue 12
part 4): the zoo's Fashion-MNIST model on the same first N test images, at each sigma, with both
backends (``nn2hw.evaluate.variation`` and ``nn2hw.evaluate.aihwkit_backend``), seeded alike.

The design is ``cim:reram`` with its defaults (128 rows, 2-bit cells, differential pairs, 1-bit DACs,
16-bit weights and inputs) but a lossless 9-bit ADC and no stuck-at faults, the parts aihwkit-lightning
cannot model (docs/cim.md). Both backends then hold the same per-weight Gaussian error
(``weight_sigma`` x max|w| per layer: nn2hw by bit-sliced cells, aihwkit-lightning by its own
weight-noise injection) and the same 16-bit input quantization. They agree when
|difference of the means| <= 2 x the combined standard error of the two means (sample standard
deviations over the draws; the images are shared, so their sampling error cancels).

    python benchmarks/cim_crosscheck.py                       # 500 images, 5 draws, sigma 0, 0.05, 0.1
    python benchmarks/cim_crosscheck.py --images 300 --draws 5 --threads 1 --json crosscheck.json
    python benchmarks/cim_crosscheck.py --aware-batches 300 --train-clip 2.5   # a clipped variation-aware copy

With ``--aware-batches N`` both backends test a copy fine-tuned variation-aware first, as
``benchmarks/cim_variation.py`` makes it (N steps of 64 images, weight noise of sigma 0.1's spread,
cosine from lr 0.01, weights clipped to ``--train-clip`` standard deviations when given).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from nn2hw.data.base import Dataset
from nn2hw.evaluate.variation import CrossbarNoise, VariationMetrics


def standard_error(metrics: VariationMetrics) -> float:
    """The standard error of a mean over draws (sample standard deviation / sqrt(draws); 0 for one)."""
    draws = metrics.top1_draws
    return statistics.stdev(draws) / math.sqrt(len(draws)) if len(draws) > 1 else 0.0


def paired_draws(net, data: Dataset, noise: CrossbarNoise, seed: int, draws: int, threads: int | None
                 ) -> list[float]:
    """aihwkit-lightning's top-1 on nn2hw's own programmed weights of draws 0..draws-1 (replayed from
    ``draw_seed``: with a lossless ADC the cells take every random number of a draw, in module order),
    to compare draw by draw with nn2hw's: the forward paths on the same weights."""
    import torch

    from nn2hw.evaluate.aihwkit_backend import analog_network, unparametrized
    from nn2hw.evaluate.loops import test
    from nn2hw.evaluate.variation import baked, crossbar_modules, draw_seed, program

    network = unparametrized(baked(net))
    saved = {name: m.weight.detach().clone() for name, m in crossbar_modules(network).items()}
    analog, layers = analog_network(network, noise, next(iter(data.batches(256)))[0])
    tops = []
    for draw in range(draws):
        generator = torch.Generator().manual_seed(draw_seed(seed, draw))
        with torch.no_grad():
            for name, weight in saved.items():
                layers[name].weight.copy_(program(weight, noise, generator))
        tops.append(test(analog, data, 256, threads, False).top1)
    return tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--images", type=int, default=500, help="first N test images (500)")
    parser.add_argument("--draws", type=int, default=5, help="noise draws per sigma > 0 and backend (5)")
    parser.add_argument("--sigmas", default="0,0.05,0.1", help="comma-separated sigmas (0,0.05,0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--paired", type=int, default=3,
                        help="draws of the largest sigma replayed in aihwkit on nn2hw's programmed weights (3)")
    parser.add_argument("--aware-batches", type=int, default=0, metavar="N",
                        help="test a copy fine-tuned variation-aware for N steps first (0: the zoo checkpoint)")
    parser.add_argument("--train-clip", type=float, default=None, metavar="K",
                        help="with --aware-batches: clip each layer's weights to K standard deviations")
    parser.add_argument("--json", type=Path, default=None, help="write every row here")
    args = parser.parse_args()

    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate.aihwkit_backend import evaluate_variation_aihwkit
    from nn2hw.evaluate.variation import design_noise, evaluate_variation

    data = zoo.prepare(load_dataset("fashion-mnist", "test"), args.model).take(args.images)
    net = zoo.build(args.model, "fashion-mnist", pretrained=True)
    if args.aware_batches:
        from cim_variation import aware_copy  # this folder is on the path when the script runs

        recipe = argparse.Namespace(train_sigma=0.1, faults=False, adc_bits=9, train_clip=args.train_clip,
                                    batches=args.aware_batches, batch_size=64, lr=0.01, seed=args.seed,
                                    threads=args.threads)
        train = zoo.prepare(load_dataset("fashion-mnist", "train"), args.model)
        net, weight_sigma, seconds = aware_copy(args.model, net, train, recipe)
        print(f"aware copy: {args.aware_batches} steps at weight noise {weight_sigma:.4f} x max|w|, clip "
              f"{args.train_clip}, {seconds:.0f} s")
    backends = {"nn2hw": evaluate_variation, "aihwkit": evaluate_variation_aihwkit}
    rows = []
    print(f"{args.model} on the first {args.images} Fashion-MNIST test images, cim:reram (128 rows, 2-bit cells, "
          f"differential, 9-bit lossless ADC, no stuck-at), {args.draws} draws, seed {args.seed}\n")
    print("| sigma | weight sigma | nn2hw top-1 (%) | aihwkit top-1 (%) | difference | 2 x SE | agree |")
    print("|---|---|---|---|---|---|---|")
    for sigma in (float(s) for s in args.sigmas.split(",")):
        noise, _ = design_noise("cim:reram", {"sigma": sigma, "adc_bits": 9, "stuck_at_off": 0, "stuck_at_on": 0})
        result, seconds = {}, {}
        for name, run in backends.items():
            start = time.perf_counter()
            draws = args.draws if sigma > 0 else 1  # noise-free: every draw is the same
            result[name] = run(net, data, noise, draws, args.seed, 256, args.threads, False)
            seconds[name] = time.perf_counter() - start
        ours, theirs = result["nn2hw"], result["aihwkit"]
        difference = theirs.top1 - ours.top1
        bound = 2.0 * math.hypot(standard_error(ours), standard_error(theirs))
        agree = abs(difference) <= bound + 1e-9
        print(f"| {sigma:g} | {noise.weight_sigma:.4f} | {ours.top1:.2f} ± {ours.top1_std:.2f} ({ours.top1_min:.2f}) | "
              f"{theirs.top1:.2f} ± {theirs.top1_std:.2f} ({theirs.top1_min:.2f}) | {difference:+.2f} | {bound:.2f} | "
              f"{'yes' if agree else 'NO'} |", flush=True)
        rows.append({"sigma": sigma, "weight_sigma": noise.weight_sigma, "agree": agree, "difference": difference,
                     "two_se": bound, "seconds": seconds, **{k: v.to_dict() for k, v in result.items()}})
    print(f"\nnoise-free top-1: {ours.top1_clean:.2f} % (both backends test the same digital network)")
    if args.paired and sigma > 0:
        replayed = paired_draws(net, data, noise, args.seed, min(args.paired, args.draws), args.threads)
        print(f"sigma {sigma:g}, nn2hw's programmed weights of draws 0..{len(replayed) - 1}: nn2hw top-1 "
              f"{list(ours.top1_draws[:len(replayed)])}, aihwkit-lightning's forward on the same weights {replayed}")
        rows.append({"sigma": sigma, "paired_nn2hw": list(ours.top1_draws[:len(replayed)]), "paired_aihwkit": replayed})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
