"""Repeatability of nn2hw.measure on this machine: each network measured N times in separate
``measure`` calls (fresh sessions, a fresh store each time), with the spread of the medians.

    .venv/bin/python benchmarks/measure_repeatability.py                 # 5 measurements per network
    .venv/bin/python benchmarks/measure_repeatability.py --times 8 --repeats 50 --threads 1

Networks (built with onnx.helper, ONNX Runtime, CPU): conv stacks of 3x3 Conv+Relu on a 32x32 image
(16, 32 and 64 channels, 4 layers; the last also on 64x64) and a 512x512 MatMul+Add+Relu. For each: the median of the
measured medians, the median IQR, and the repeatability, (max - min of the medians) / their median.
The last line is the same table as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.measure.nets import conv_net, matmul_net

from nn2hw.measure import MeasurementStore, Protocol, measure_onnx, this_machine

NETWORKS = {
    "conv16x4": lambda: conv_net([16] * 5),
    "conv32x4": lambda: conv_net([32] * 5),
    "conv64x4": lambda: conv_net([64] * 5),
    "conv64x4@64": lambda: conv_net([64] * 5, size=64),
    "matmul512": lambda: matmul_net(512),
}


def repeatability(model: bytes, protocol: Protocol, times: int) -> dict[str, float]:
    """``times`` separate measurements of ``model``: median of medians, median IQR, spread of the medians."""
    medians, iqrs, outliers = [], [], []
    for _ in range(times):
        with tempfile.TemporaryDirectory() as folder:
            measured = measure_onnx(model, protocol, store=MeasurementStore(Path(folder) / "m.sqlite"))
        medians.append(measured.median_ms)
        iqrs.append(measured.iqr_ms)
        outliers.append(measured.outliers)
    center = statistics.median(medians)
    return {"median_ms": center, "iqr_ms": statistics.median(iqrs), "min_median_ms": min(medians),
            "max_median_ms": max(medians), "spread_pct": 100 * (max(medians) - min(medians)) / center,
            "outliers_per_run": statistics.mean(outliers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=5, help="separate measurements per network")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    protocol = Protocol(threads=args.threads, warmup=args.warmup, repeats=args.repeats, profile_runs=0)
    machine = this_machine()
    print(f"{machine.cpu_model}, {machine.logical_cores} logical cores, ONNX Runtime {machine.runtime_version}; "
          f"{args.times} measurements x {protocol.repeats} runs, {protocol.threads} thread(s)")
    print(f"{'network':<12} {'median ms':>10} {'IQR ms':>8} {'medians ms':>17} {'spread %':>9} {'outliers':>9}")
    rows = {}
    for name, build in NETWORKS.items():
        row = rows[name] = repeatability(build(), protocol, args.times)
        print(f"{name:<12} {row['median_ms']:>10.3f} {row['iqr_ms']:>8.3f} "
              f"{row['min_median_ms']:>8.3f}-{row['max_median_ms']:<8.3f} {row['spread_pct']:>9.1f} "
              f"{row['outliers_per_run']:>9.1f}")
    print(json.dumps({"benchmark": "measure_repeatability", "machine": machine.to_dict(), "protocol": protocol.key(),
                      "times": args.times, "networks": rows}))


if __name__ == "__main__":
    main()
