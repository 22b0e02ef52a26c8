"""Kernel predictors on the networks a Transformer search really timed: a study's trials, re-timed here.

A ``benchmarks/transformer_search.py`` run leaves its study in ``OUT/study.db`` and its settings in
``OUT/report.json``. Every trial is a partly-int8 variant of the network (FFN cuts, fewer heads,
dropped layers, w8a8 linear layers); this script rebuilds each trial's network, times it on this
CPU as the search times it (``SearchContext.timed``: the deployed export, ONNX Runtime, the measured
template's protocol; the measurement store keeps it, so trials the search timed with the same
``NN2HW_CACHE`` are not timed again) and prices it with each ``--predictor`` file, scaled by
measured / predicted on the base network as the search scales it. Prints per predictor: the median
measured/predicted ratio, its spread (sd of the log), Kendall tau, the share within +-10 % as scaled
and with the median bias taken out (``nn2hw.predict.check.score``); the last line is JSON.

    NN2HW_DATA=../shared/data NN2HW_CACHE=C .venv/bin/python benchmarks/transformer_predictor.py OUT \
        --predictor C/predictors/cpu-onnxruntime-t1-s8s8-k2-<machine>.json [--predictor OLD.json]

Without ``--predictor`` the search's own predictor is used (this machine's, built on first use).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import optuna

from nn2hw.predict import load
from nn2hw.predict.check import score
from nn2hw.search.context import SearchContext, prepare
from nn2hw.search.settings import SearchSettings
from nn2hw.spec import Spec


def context(out: Path) -> tuple[SearchContext, list[tuple[int, ...]]]:
    """The search context of the run in ``out`` (prepared as the search prepared it) and its trials' vectors."""
    settings = json.loads((out / "report.json").read_text())["settings"]
    ctx = prepare(SearchSettings(model=settings["model"], dataset=settings["dataset"], spec=Spec(**settings["spec"]),
                                 hardware="cpu", hw_options={"threads": 1}, search_images=2000,
                                 seed=settings["seed"]))
    study = optuna.load_study(study_name=settings["study"], storage=f"sqlite:///{out / 'study.db'}")
    vectors = [tuple(int(t.params[n]) for n in ctx.space.names) for t in study.trials]
    return ctx, vectors


def summary(measured: list[float], predicted: list[float]) -> dict[str, float]:
    logs = [math.log(m / p) for m, p in zip(measured, predicted)]
    bias = statistics.median(logs)
    scaled = score(predicted, measured)
    unbiased = score([p * math.exp(bias) for p in predicted], measured)
    return {"median_ratio": math.exp(bias), "sd_log": statistics.pstdev(logs), "kendall_tau": scaled.kendall_tau,
            "within_10_pct": scaled.within_10_pct, "within_10_pct_unbiased": unbiased.within_10_pct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a transformer_search.py output folder (study.db, report.json)")
    parser.add_argument("--predictor", action="append", default=[], help="a predictor file (repeatable)")
    args = parser.parse_args()
    ctx, vectors = context(args.out)
    base_plans = ctx.space.decode(tuple(0 for _ in ctx.space.names)).plans
    base_ms = ctx.timed(base_plans).median_ms
    plans = [ctx.space.decode(v).plans for v in vectors]
    measured = [ctx.timed(p).median_ms for p in plans]
    print(f"{len(measured)} trials of {args.out} timed; base {base_ms:.2f} ms", flush=True)
    results = {}
    for path in args.predictor or [None]:
        if path is None:
            predict = lambda w: ctx.target.best(w).latency_ms  # noqa: E731 - the search's, calibrated on the base
            scale, label = 1.0, "the search's predictor"
        else:
            predictor = load(path)
            predict, label = predictor.predict, Path(path).name
            scale = base_ms / predictor.predict(ctx.workloads(base_plans))
        predicted = [scale * predict(ctx.workloads(p)) for p in plans]
        results[label] = {"base_calibration": scale, **summary(measured, predicted)}
        r = results[label]
        print(f"{label}: x{scale:.3f} on the base; measured/predicted median {r['median_ratio']:.3f}, sd of log "
              f"{r['sd_log']:.3f}, Kendall tau {r['kendall_tau']:.3f}, within +-10 % {r['within_10_pct']:.0%} "
              f"({r['within_10_pct_unbiased']:.0%} with the median bias out)", flush=True)
    print(json.dumps({"trials": len(measured), "base_ms": base_ms, "predictors": results}))


if __name__ == "__main__":
    main()
