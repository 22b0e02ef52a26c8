"""HELP's setting in the FBNet space: fit ``nn2hw.predict.fit`` on N networks' whole-network latencies
of one device (HW-NAS-Bench's lookup sums) and rank 2,000 held-out networks (Kendall tau).

    NN2HW_DATA=../shared/data python benchmarks/whole_predictor_fbnet.py [--train 1000 100] [--seed 0]

Prints, per device and training size, tau, the fraction within +-10 % and RMSPE on the held-out networks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nn2hw.bench import fbnet_workload, query_fbnet, random_arch
from nn2hw.predict import accuracy, fit

DEVICES = ("raspi4_latency", "pixel3_latency", "edgegpu_latency", "eyeriss_latency", "fpga_latency")
HELD_OUT = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, nargs="+", default=[1000, 100])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    archs = [random_arch(rng) for _ in range(max(args.train) + HELD_OUT)]
    workloads = [fbnet_workload(arch) for arch in archs]
    costs = [query_fbnet(arch) for arch in archs]
    test = slice(len(archs) - HELD_OUT, None)
    print(f"{'device':<16} {'train':>5} {'tau':>6} {'<=10%':>6} {'RMSPE':>7} {'fit s':>6}")
    for device in DEVICES:
        latencies = [c[device] for c in costs]
        for n in args.train:
            start = time.perf_counter()
            predictor = fit(workloads[:n], latencies[:n], device=device, seed=args.seed)
            seconds = time.perf_counter() - start
            acc = accuracy(predictor, workloads[test], latencies[test])
            print(f"{device:<16} {n:>5} {acc.kendall_tau:6.3f} {acc.within_10_pct:6.1%} {acc.rmspe_pct:6.1f}% "
                  f"{seconds:6.1f}")


if __name__ == "__main__":
    main()
