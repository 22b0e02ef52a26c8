"""Wall time of nn2hw's analytic ASIC models versus SCALE-Sim and ZigZag on the same network and
configuration, in one run, with the ratio and the agreement.

    .venv/bin/python benchmarks/asic_speed.py                   # both peers, fresh peer runs
    .venv/bin/python benchmarks/asic_speed.py --cached          # reuse earlier peer runs (their wall time)
    .venv/bin/python benchmarks/asic_speed.py --peers scalesim --scalesim-net resnet20

SCALE-Sim: ResNet-18 (ImageNet) on a 32x32 output-stationary array (64 KiB SRAMs), compute
cycles per layer; ZigZag: ResNet-20 (CIFAR) on the description equivalent to a 32x32
weight-stationary array in the 45nm technology, energy per layer. nn2hw's time is the median of
``--repeats`` full cost evaluations (layer table rebuilt each time). A peer that is not installed
is skipped, saying so. Peer runs are niced; SCALE-Sim on ResNet-18 needs several minutes and
~5 GB of memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn2hw.hardware import get_template
from nn2hw.hardware.asic.arrays import _table
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.peers import install_command, installed
from nn2hw.workload import Workload


def network(name: str) -> Workload:
    from nn2hw.api import zoo_workload

    return zoo_workload(name)


def time_nn2hw(workload: Workload, design: SystolicDesign, repeats: int) -> tuple[float, object]:
    """Median wall seconds of one cost evaluation, caches cleared each time, and the last cost."""
    systolic = get_template("systolic")[0]
    times, cost = [], None
    for _ in range(repeats):
        _table.cache_clear()
        start = time.perf_counter()
        cost = systolic.cost(workload, design)
        times.append(time.perf_counter() - start)
    return statistics.median(times), cost


def bench_scalesim(net: str, repeats: int, cached: bool) -> dict:
    from nn2hw.peers import scalesim

    workload = network(net)
    design = SystolicDesign(rows=32, cols=32, dataflow="os", ifmap_kib=64, filter_kib=64, ofmap_kib=64)
    ours_s, cost = time_nn2hw(workload, design, repeats)
    peer = scalesim.run(workload, design, timeout_s=3600, use_cache=cached)
    ours = [layer.breakdown_cycles["compute_cycles"] for layer in cost.layers]
    theirs = [layer.compute_cycles for layer in peer.layers]
    worst = max(abs(a - b) / b for a, b in zip(ours, theirs))
    return {"peer": "SCALE-Sim 3.0.0", "network": net, "config": "32x32 os, 64 KiB SRAMs, CALC bandwidth",
            "nn2hw_ms": ours_s * 1e3, "peer_s": peer.seconds, "peer_cached": peer.cached,
            "ratio": peer.seconds / ours_s, "compute_cycles_nn2hw": sum(ours), "compute_cycles_peer": sum(theirs),
            "layers_exact": sum(a == b for a, b in zip(ours, theirs)), "layers": len(ours),
            "worst_layer_rel_diff": worst}


def bench_zigzag(net: str, repeats: int, cached: bool) -> dict:
    from nn2hw.peers import zigzag

    workload = network(net)
    design = SystolicDesign(rows=32, cols=32, dataflow="ws", ifmap_kib=64, filter_kib=64, ofmap_kib=64)
    ours_s, cost = time_nn2hw(workload, design, repeats)
    peer = zigzag.run(workload, design, "45nm", timeout_s=3600, use_cache=cached)
    per_layer = [abs(a.energy_mj / (b.energy_total_pj * 1e-9) - 1) for a, b in zip(cost.layers, peer.layers)]
    return {"peer": "ZigZag 3.9.1", "network": net, "config": "32x32 ws, 64 KiB SRAMs, 45nm, opt=energy",
            "nn2hw_ms": ours_s * 1e3, "peer_s": peer.seconds, "peer_cached": peer.cached,
            "ratio": peer.seconds / ours_s, "energy_mj_nn2hw": cost.energy_mj, "energy_mj_peer": peer.energy_mj,
            "energy_rel_diff": cost.energy_mj / peer.energy_mj - 1, "worst_layer_rel_diff": max(per_layer),
            "levels_nn2hw_mj": cost.energy_breakdown_mj(), "levels_peer_mj": peer.energy_breakdown_mj()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default="scalesim,zigzag", help="comma-separated peers to run")
    parser.add_argument("--scalesim-net", default="resnet18")
    parser.add_argument("--zigzag-net", default="resnet20")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cached", action="store_true", help="reuse earlier peer runs (and their wall time)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results = []
    for peer in args.peers.split(","):
        if not installed(peer):
            print(f"{peer}: skipped, not installed ({install_command(peer)})")
            continue
        print(f"{peer}: running ({'cached runs allowed' if args.cached else 'fresh run'}) ...", flush=True)
        row = (bench_scalesim(args.scalesim_net, args.repeats, args.cached) if peer == "scalesim"
               else bench_zigzag(args.zigzag_net, args.repeats, args.cached))
        results.append(row)
        agreement = (f"compute cycles {row['compute_cycles_nn2hw']:,.0f} vs {row['compute_cycles_peer']:,.0f}, "
                     f"{row['layers_exact']}/{row['layers']} layers exact" if peer == "scalesim" else
                     f"energy {row['energy_mj_nn2hw']:.4f} vs {row['energy_mj_peer']:.4f} mJ "
                     f"({row['energy_rel_diff']:+.1%}; worst layer {row['worst_layer_rel_diff']:.1%})")
        print(f"{row['peer']} on {row['network']} ({row['config']}): nn2hw {row['nn2hw_ms']:.2f} ms, peer "
              f"{row['peer_s']:.1f} s{' (cached run)' if row['peer_cached'] else ''} -> {row['ratio']:,.0f}x faster; "
              f"{agreement}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
