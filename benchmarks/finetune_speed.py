"""Fine-tune and evaluation speed (images/s) of the zoo models nn2hw fine-tunes on the CPU.

    python benchmarks/finetune_speed.py                      # Fashion-MNIST zoo + CIFAR-10 ResNets, 2 threads
    python benchmarks/finetune_speed.py --threads 1 --batches 50 --test-images 2000
    python benchmarks/finetune_speed.py --models resnet20:fashion-mnist resnet56:cifar10
    python benchmarks/finetune_speed.py --compare-precision --seeds 0 1 2 --threads 2 1

``--compare-precision`` fine-tunes a channel-cut Fashion-MNIST ResNet-20 (every block's first conv
at half width) as the search does (100 batches, lr ``SEARCH_FINETUNE_LR``) and as finalize does
(``FINAL_FINETUNE``: 2000 cosine batches distilled from the unmodified model; ``--batches``
shortens it) in fp32 and in bf16 autocast, once per seed, fp32 and bf16 interleaved; it prints
images/s (of each run's median step, so that other processes' bursts do not count; median and
min-max over the seeds), top-1 on the whole 10,000-image test set (mean ± sd;
tested in fp32, and in bf16 to show what bf16 evaluation would change) and the bf16/fp32 ratios.
It needs the real Fashion-MNIST (docs/datasets.md).

Fine-tuning runs ``nn2hw.evaluate.finetune`` (HotNAS settings, batch 32, augmentation on) and
evaluation ``nn2hw.evaluate.test`` (batch 256) on the real data when it is installed
(Fashion-MNIST train/test; CIFAR-10 test-partial, whose 1017 images also stand in for the absent
CIFAR-10 train split), otherwise on random images of the right shape. Speed does not depend on
the weights, so models without local weights run from their random initialization. Wall times
on a shared machine vary with its load; run it on an idle one for figures to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from nn2hw import evaluate, zoo
from nn2hw.compress import apply_plan, with_cut
from nn2hw.data import ArrayDataset, Dataset, load_dataset
from nn2hw.errors import Nn2hwError
from nn2hw.evaluate.settings import FinetuneSettings, resolve_precision
from nn2hw.plan import Plan
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR

DEFAULT_MODELS = ("resnet20:fashion-mnist", "mobilenetv2_fmnist:fashion-mnist", "vgg_fmnist:fashion-mnist",
                  "resnet20:cifar10", "resnet32:cifar10", "resnet44:cifar10", "resnet56:cifar10")
SPLITS = {"fashion-mnist": ("train", "test"), "cifar10": ("test-partial", "test-partial")}


def _data(dataset: str, split: str, count: int) -> tuple[Dataset, str]:
    """The real split (first ``count`` images) or random images of the dataset's shape."""
    try:
        data = load_dataset(dataset, split)
        return data.take(min(count, len(data))), f"{dataset} {split}"
    except Nn2hwError:
        shape = zoo.entry("resnet20").variant(dataset).input_shape
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, count).astype(np.int64)
        return ArrayDataset(dataset, split, pixels, labels, tuple(map(str, range(10))), count, "random"), "random"


def _model(name: str, dataset: str) -> tuple[torch.nn.Module, str]:
    try:
        return zoo.build(name, dataset, pretrained=True), "pretrained"
    except Nn2hwError:
        return zoo.build(name, dataset), "random init"


def measure(name: str, dataset: str, batches: int, test_images: int, threads: int,
            precision: str) -> dict[str, object]:
    """Images/s of fine-tuning ``batches`` batches of 32 and of testing ``test_images`` images."""
    train_split, test_split = SPLITS[dataset]
    model, weights = _model(name, dataset)
    train_data, source = _data(dataset, train_split, max(batches * 32, 64))
    test_data, _ = _data(dataset, test_split, test_images)
    train_data, test_data = zoo.prepare(train_data, name), zoo.prepare(test_data, name)
    evaluate.finetune(model, train_data, batches=2, threads=threads, progress=False, precision=precision)  # warm-up
    tuned = evaluate.finetune(model, train_data, batches=batches, threads=threads, progress=False,
                              precision=precision)
    start = time.perf_counter()
    evaluate.test(model, test_data, threads=threads, progress=False)
    seconds = time.perf_counter() - start
    return {"model": name, "dataset": dataset, "weights": weights, "data": source,
            "finetune_img_s": tuned.images / tuned.seconds, "eval_img_s": len(test_data) / seconds,
            "macs": zoo.stats(name, dataset).macs}


def _cut_candidate(base: torch.nn.Module) -> torch.nn.Module:
    """The benchmark's compressed candidate: every residual block's first conv at half width."""
    workload = zoo.workload("resnet20", "fashion-mnist")
    plan = Plan.for_workload(workload, "resnet20", "fashion-mnist")
    for stage, width in ((1, 8), (2, 16), (3, 32)):
        for block in range(3):
            plan = with_cut(plan, workload, f"layer{stage}.{block}.conv1", width)
    return apply_plan(plan, base)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def compare_precision(seeds: list[int], batches: int | None, threads: list[int], console: Console,
                      which: tuple[str, ...] = ("search", "final")) -> None:
    """fp32 vs bf16 fine-tuning of a channel-cut ResNet-20: speed and top-1 (see the module docstring)."""
    console.print(f"precision here: {resolve_precision('auto')[1]}")
    try:
        train = zoo.prepare(load_dataset("fashion-mnist", "train"), "resnet20")
        test_set = zoo.prepare(load_dataset("fashion-mnist", "test"), "resnet20")
    except Nn2hwError as error:
        sys.exit(f"--compare-precision needs the real Fashion-MNIST: {error}")
    base = zoo.build("resnet20", "fashion-mnist", pretrained=True)
    for precision in ("fp32", "bf16"):  # warm-up
        evaluate.finetune(_cut_candidate(base), train, batches=3, progress=False, precision=precision)
    final = FINAL_FINETUNE if batches is None else dataclasses.replace(FINAL_FINETUNE, batches=batches)
    runs = {label: settings for label, settings in (("search (100 batches)", FinetuneSettings(lr=SEARCH_FINETUNE_LR)),
                                                      (f"final ({final.batches} batches, distilled)", final))
            if label.split()[0] in which}
    table = Table(title=f"fp32 vs bf16 fine-tuning, channel-cut resnet20 on fashion-mnist, seeds {seeds} "
                        f"(torch {torch.__version__})")
    for column in ("fine-tune", "threads", "precision", "img/s median (min-max)", "top-1 fp32 test",
                   "top-1 bf16 test", "eval img/s fp32 / bf16"):
        table.add_column(column, no_wrap=True)
    for label, settings in runs.items():
        for count in threads if settings.batches <= 100 else threads[:1]:
            rows = {"fp32": _Runs(), "bf16": _Runs()}
            for seed in seeds:
                for precision, row in rows.items():  # interleaved: the machine's drift hits both alike
                    row.add(_one_run(base, train, test_set, dataclasses.replace(settings, seed=seed,
                                     precision=precision), count))
                    console.print(f"{label} {count} threads seed {seed} {precision}: {row.last()}")
            for precision, row in rows.items():
                table.add_row(label, str(count), precision, *row.cells())
            speedup = statistics.median(rows["bf16"].img_s) / statistics.median(rows["fp32"].img_s)
            change = statistics.mean(rows["bf16"].top1) - statistics.mean(rows["fp32"].top1)
            table.add_row(label, str(count), "bf16/fp32", f"{speedup:.2f}x", f"{change:+.2f} points", "", "")
    console.print(table)


@dataclasses.dataclass
class _Runs:
    """One configuration's repeats: fine-tune images/s, top-1 tested in fp32 and in bf16, eval images/s."""

    img_s: list[float] = dataclasses.field(default_factory=list)
    top1: list[float] = dataclasses.field(default_factory=list)
    top1_bf16: list[float] = dataclasses.field(default_factory=list)
    eval_img_s: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def add(self, run: tuple[float, float, float, float, float]) -> None:
        self.img_s.append(run[0])
        self.top1.append(run[1])
        self.top1_bf16.append(run[2])
        self.eval_img_s.append((run[3], run[4]))

    def last(self) -> str:
        return (f"{self.img_s[-1]:.0f} img/s, top-1 {self.top1[-1]:.2f} % (bf16 test {self.top1_bf16[-1]:.2f} %), "
                f"eval {self.eval_img_s[-1][0]:.0f} / {self.eval_img_s[-1][1]:.0f} img/s")

    def cells(self) -> tuple[str, str, str, str]:
        fp32, bf16 = zip(*self.eval_img_s, strict=True)
        return (_spread(self.img_s), _mean_sd(self.top1), _mean_sd(self.top1_bf16),
                f"{statistics.median(fp32):.0f} / {statistics.median(bf16):.0f}")


def _one_run(base: torch.nn.Module, train: Dataset, test_set: Dataset, settings: FinetuneSettings,
             threads: int) -> tuple[float, float, float, float, float]:
    """Fine-tune a fresh candidate with ``settings``; (img/s, top-1 fp32, top-1 bf16, eval img/s fp32, bf16)."""
    model = _cut_candidate(base)
    s = settings
    stamps = [time.perf_counter()]
    evaluate.finetune(model, train, s.batches, s.batch_size, s.lr, s.momentum, s.weight_decay, s.seed,
                      s.augment, threads=threads, progress=False, schedule=s.schedule,
                      teacher=base if s.distill else None, distill=s.distill, temperature=s.temperature,
                      precision=s.precision, after_step=lambda _: stamps.append(time.perf_counter()))
    step_s = statistics.median(np.diff(stamps))  # robust to other processes' bursts on a shared machine
    scores, speeds = [], []
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        scores.append(evaluate.test(model, test_set, threads=threads, progress=False, precision=precision).top1)
        speeds.append(len(test_set) / (time.perf_counter() - start))
    return s.batch_size / step_s, scores[0], scores[1], speeds[0], speeds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="NAME:DATASET")
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="torch threads (2: both cores); --compare-precision times each count given")
    parser.add_argument("--batches", type=int, default=None,
                        help="fine-tune batches of 32 to time (20); with --compare-precision: the final "
                             "fine-tune's batches (default FINAL_FINETUNE's 2000)")
    parser.add_argument("--test-images", type=int, default=1000, help="test images to time (1000)")
    parser.add_argument("--compare-precision", action="store_true",
                        help="fp32 vs bf16 fine-tuning of a cut resnet20 on fashion-mnist: speed and top-1")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32",
                        help="the fine-tune's precision without --compare-precision (fp32)")
    parser.add_argument("--runs", nargs="+", choices=("search", "final"), default=["search", "final"],
                        help="with --compare-precision: the fine-tunes to compare (both)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --compare-precision (0 1 2)")
    args = parser.parse_args()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if args.compare_precision:
        compare_precision(args.seeds, args.batches, args.threads, console, tuple(args.runs))
        return
    args.threads, args.batches = args.threads[0], args.batches or 20
    table = Table(title=f"nn2hw fine-tune / evaluation speed ({args.threads} threads, torch {torch.__version__})")
    for column in ("model", "dataset", "MMACs/img", "fine-tune img/s", "eval img/s", "weights", "data"):
        table.add_column(column, justify="right" if "/" in column else "left", no_wrap=True)
    for spec in args.models:
        name, _, dataset = spec.partition(":")
        row = measure(name, dataset or zoo.entry(name).default_dataset, args.batches, args.test_images, args.threads,
                      args.precision)
        table.add_row(row["model"], row["dataset"], f"{row['macs'] / 1e6:.1f}", f"{row['finetune_img_s']:.0f}",
                      f"{row['eval_img_s']:.0f}", row["weights"], row["data"])
        console.print(f"{name} ({row['dataset']}): fine-tune {row['finetune_img_s']:.0f} img/s, "
                      f"eval {row['eval_img_s']:.0f} img/s")
    console.print(table)


if __name__ == "__main__":
    main()
