"""Accuracy of the kernel-level latency predictor on held-out networks, on this machine.

Builds (or loads a cached build of) a kernel predictor with a stated budget, then times networks
it never saw as whole ONNX models (ONNX Runtime, 1 thread, interleaved, median of 40 after warm-up):
the zoo's CIFAR/Fashion-MNIST ResNet-20/32/44/56 and MobileNetV2 (torch export), their uniform
channel cuts (every cuttable layer kept at 25/50/75 %), NAS-Bench-201-style cells (nn2hw.testing.nets)
and random-width CNNs (seeds the build never used). Prints the fraction within +-10 % / +-5 %, RMSPE,
Kendall tau, and the repeatability of the measurement itself (every network timed in two separate
runs). Int8 variants are added once ``nn2hw.deploy.export_onnx`` exists.

    NN2HW_DATA=../shared/data .venv/bin/python benchmarks/predictor_accuracy.py [--budget-s 300] [--rebuild]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

from nn2hw import zoo
from nn2hw.api import zoo_workload
from nn2hw.compress import apply_plan
from nn2hw.compress.channel_cut import with_uniform_cut
from nn2hw.measure import MeasurementStore, Protocol, measure, onnx_runner
from nn2hw.paths import cache_root
from nn2hw.plan import Plan
from nn2hw.predict import load
from nn2hw.predict.build import BATCH, build, random_cnn
from nn2hw.predict.kernels import workload_graph
from nn2hw.testing import nets
from nn2hw.workload import Workload, from_onnx
from nn2hw.workload.onnx_export import to_onnx

ZOO = [(f"resnet{d}", ds) for d in (20, 32, 44, 56) for ds in ("fashion-mnist", "cifar10")] + \
    [("mobilenetv2_fmnist", "fashion-mnist")]
CUTS = (0.25, 0.5, 0.75)


def exported(model, shape, folder: Path, name: str) -> tuple[bytes, Workload]:
    path = folder / f"{name}.onnx"
    to_onnx(model, shape, path, dynamo=False)
    return path.read_bytes(), from_onnx(path)


def held_out(folder: Path) -> dict[str, tuple[bytes, Workload]]:
    out: dict[str, tuple[bytes, Workload]] = {}
    for name, dataset in ZOO:
        shape = (1, *zoo.entry(name).variant(dataset).input_shape)
        out[f"{name}-{dataset}"] = exported(zoo.build(name, dataset).eval(), shape, folder, f"{name}-{dataset}")
        for keep in CUTS:
            base = zoo_workload(name, dataset)
            plan = with_uniform_cut(Plan(base_model=name, dataset=dataset, input_shape=shape), base, keep)
            model = apply_plan(plan, zoo.build(name, dataset).eval())
            out[f"{name}-{dataset}-cut{int(keep * 100)}"] = exported(model, shape, folder,
                                                                     f"{name}-{dataset}-cut{keep}")
    for i, (channels, cells) in enumerate(((8, 1), (16, 1), (16, 2), (32, 1), (24, 2))):
        model, (x,) = nets.nb201(size=32, channels=channels, cells=cells)
        out[f"nb201-{i}"] = exported(model.eval(), tuple(x.shape), folder, f"nb201-{i}")
    for i in range(12):
        work = random_cnn(random.Random(10_000 + i), f"random-{i}")
        out[work.name] = (workload_graph(work), work)
    return out


def time_all(models: dict[str, tuple[bytes, Workload]], store: MeasurementStore) -> dict[str, tuple[float, float]]:
    protocol = Protocol(threads=1, warmup=5, repeats=40, profile_runs=0)
    names, out = list(models), {}
    for i in range(0, len(names), BATCH):  # as the build times its calibration networks: BATCH interleaved
        runners = [onnx_runner(models[n][0], protocol) for n in names[i:i + BATCH]]
        out.update({n: (m.median_ms, m.iqr_ms) for n, m in zip(names[i:i + BATCH], measure(runners, protocol,
                                                                                          store=store))})
    return out


def kendall(a: list[float], b: list[float]) -> float:
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    score = sum(math.copysign(1, (a[i] - a[j]) * (b[i] - b[j])) for i, j in pairs if (a[i] - a[j]) * (b[i] - b[j]))
    return score / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--out", type=Path, default=cache_root() / "benchmarks" / "kernel-predictor.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = held_out(folder)
        if args.rebuild or not args.out.is_file():
            start = time.monotonic()
            predictor = build(budget_s=args.budget_s, workloads=[zoo_workload(n, d) for n, d in ZOO],
                              progress=print, store=MeasurementStore(folder / "build.sqlite"))
            print(f"build: {time.monotonic() - start:.0f} s (budget {args.budget_s:.0f} s)")
            predictor.save(args.out)
        predictor = load(args.out)
        first = time_all(models, MeasurementStore(folder / "run1.sqlite"))
        second = time_all(models, MeasurementStore(folder / "run2.sqlite"))
    names = list(models)
    measured = [first[n][0] for n in names]
    predicted = [predictor.predict(models[n][1]) for n in names]
    errors = [p / m - 1 for p, m in zip(predicted, measured)]
    repeat = [second[n][0] / first[n][0] - 1 for n in names]
    print(f"{'network':34s} {'measured ms':>11s} {'IQR':>7s} {'predicted':>9s} {'error':>7s} {'rerun':>7s}")
    for n, m, p, e, r in zip(names, measured, predicted, errors, repeat):
        print(f"{n:34s} {m:11.3f} {first[n][1]:7.3f} {p:9.3f} {e:+7.1%} {r:+7.1%}")
    within = lambda xs, t: sum(abs(x) <= t for x in xs) / len(xs)  # noqa: E731
    print(f"\n{len(names)} held-out networks on 1 thread")
    print(f"predictor:      within 10 %: {within(errors, 0.10):.1%}   within 5 %: {within(errors, 0.05):.1%}   "
          f"RMSPE {math.sqrt(sum(e * e for e in errors) / len(errors)):.1%}   "
          f"Kendall tau {kendall(measured, predicted):.3f}")
    print(f"repeatability:  within 10 %: {within(repeat, 0.10):.1%}   within 5 %: {within(repeat, 0.05):.1%}   "
          f"RMSPE {math.sqrt(sum(r * r for r in repeat) / len(repeat)):.1%}   "
          f"Kendall tau {kendall(measured, [second[n][0] for n in names]):.3f} (run 1 vs run 2)")


if __name__ == "__main__":
    main()
