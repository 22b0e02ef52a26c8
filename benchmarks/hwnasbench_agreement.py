"""How nn2hw's analytical templates rank FBNet architectures against HW-NAS-Bench's devices.

    NN2HW_DATA=../shared/data python benchmarks/hwnasbench_agreement.py [--samples 50] [--seed 0] [--csv F]

For each (template, HW-NAS-Bench metric) pair, the same seeded sample of FBNet architectures
(CIFAR-100 layout) is costed by the template on its best design and looked up in HW-NAS-Bench's
tables; prints Kendall's tau and Spearman's rho with the wall time (docs/hwnasbench.md quotes them).
"""

from __future__ import annotations

import argparse
import csv
import time

from nn2hw.bench.agreement import rank_agreement

PAIRS = (
    ("fpga:zc706", "fpga_latency"), ("fpga:zc706", "eyeriss_latency"), ("chunk:zc706", "fpga_latency"),
    ("eyeriss", "eyeriss_latency"), ("eyeriss", "eyeriss_energy"),
    ("systolic", "eyeriss_latency"), ("systolic", "eyeriss_energy"),
    ("shidiannao", "eyeriss_latency"),
    ("systolic", "edgegpu_latency"), ("systolic", "raspi4_latency"), ("systolic", "pixel3_latency"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", help="also write the table as CSV")
    args = parser.parse_args()
    rows = []
    print(f"{'template':<12} {'HW-NAS-Bench metric':<18} {'tau':>6} {'rho':>6} {'s':>6}", flush=True)
    for hardware, metric in PAIRS:
        start = time.perf_counter()
        result = rank_agreement(hardware, metric, samples=args.samples, seed=args.seed)
        seconds = time.perf_counter() - start
        rows.append({"template": hardware, "metric": metric, "samples": args.samples, "seed": args.seed,
                     "kendall_tau": round(result.kendall_tau, 4), "spearman_rho": round(result.spearman_rho, 4),
                     "seconds": round(seconds, 1)})
        print(f"{hardware:<12} {metric:<18} {result.kendall_tau:6.3f} {result.spearman_rho:6.3f} {seconds:6.1f}",
              flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
