"""Fine-tune and evaluation speed (images/s) of the zoo models nn2hw fine-tunes on the CPU.

    python benchmarks/finetune_speed.py                      # Fashion-MNIST zoo + CIFAR-10 ResNets, 2 threads
    python benchmarks/finetune_speed.py --threads 1 --batches 50 --test-images 2000
    python benchmarks/finetune_speed.py --models resnet20:fashion-mnist resnet56:cifar10

Fine-tuning runs ``nn2hw.evaluate.finetune`` (HotNAS settings, batch 32, augmentation on) and
evaluation ``nn2hw.evaluate.test`` (batch 256) on the real data when it is installed
(Fashion-MNIST train/test; CIFAR-10 test-partial, whose 1017 images also stand in for the absent
CIFAR-10 train split), otherwise on random images of the right shape. Speed does not depend on
the weights, so models without local weights run from their random initialization. Wall times
on a shared machine vary with its load; run it on an idle one for figures to compare.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from nn2hw import evaluate, zoo
from nn2hw.data import ArrayDataset, Dataset, load_dataset
from nn2hw.errors import Nn2hwError

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


def measure(name: str, dataset: str, batches: int, test_images: int, threads: int) -> dict[str, object]:
    """Images/s of fine-tuning ``batches`` batches of 32 and of testing ``test_images`` images."""
    train_split, test_split = SPLITS[dataset]
    model, weights = _model(name, dataset)
    train_data, source = _data(dataset, train_split, max(batches * 32, 64))
    test_data, _ = _data(dataset, test_split, test_images)
    train_data, test_data = zoo.prepare(train_data, name), zoo.prepare(test_data, name)
    evaluate.finetune(model, train_data, batches=2, threads=threads, progress=False)  # warm-up
    tuned = evaluate.finetune(model, train_data, batches=batches, threads=threads, progress=False)
    start = time.perf_counter()
    evaluate.test(model, test_data, threads=threads, progress=False)
    seconds = time.perf_counter() - start
    return {"model": name, "dataset": dataset, "weights": weights, "data": source,
            "finetune_img_s": tuned.images / tuned.seconds, "eval_img_s": len(test_data) / seconds,
            "macs": zoo.stats(name, dataset).macs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="NAME:DATASET")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: both cores)")
    parser.add_argument("--batches", type=int, default=20, help="fine-tune batches of 32 to time (20)")
    parser.add_argument("--test-images", type=int, default=1000, help="test images to time (1000)")
    args = parser.parse_args()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"nn2hw fine-tune / evaluation speed ({args.threads} threads, torch {torch.__version__})")
    for column in ("model", "dataset", "MMACs/img", "fine-tune img/s", "eval img/s", "weights", "data"):
        table.add_column(column, justify="right" if "/" in column else "left", no_wrap=True)
    for spec in args.models:
        name, _, dataset = spec.partition(":")
        row = measure(name, dataset or zoo.entry(name).default_dataset, args.batches, args.test_images, args.threads)
        table.add_row(row["model"], row["dataset"], f"{row['macs'] / 1e6:.1f}", f"{row['finetune_img_s']:.0f}",
                      f"{row['eval_img_s']:.0f}", row["weights"], row["data"])
        console.print(f"{name} ({row['dataset']}): fine-tune {row['finetune_img_s']:.0f} img/s, "
                      f"eval {row['eval_img_s']:.0f} img/s")
    console.print(table)


if __name__ == "__main__":
    main()
