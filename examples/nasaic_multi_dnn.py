"""NASAIC-style multi-DNN chip: a CIFAR-10 ResNet-20 and a Fashion-MNIST MobileNet-V2 on one ASIC
built from two heterogeneous sub-accelerators, searched end to end (which sub-accelerator
templates and sizes, how the PE, bandwidth and area budgets are split, which network runs where)
under latency, energy and area specs.

    .venv/bin/python examples/nasaic_multi_dnn.py
    .venv/bin/python examples/nasaic_multi_dnn.py --latency-ms 0.2 --energy-mj 0.8 --area-mm2 4

The network side (NAS / compression per candidate) joins when the co-search calls
``nn2hw.hardware.asic.hetero.explore`` once per candidate pair of networks.
"""

from __future__ import annotations

import argparse
import sys

from nn2hw.api import zoo_workload
from nn2hw.errors import InfeasibleError
from nn2hw.hardware.asic.hetero import Specs, SystemBudgets, explore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=0.3, help="latency spec: the slowest sub's busy time")
    parser.add_argument("--energy-mj", type=float, default=1.0, help="energy spec: both networks, one inference each")
    parser.add_argument("--area-mm2", type=float, default=4.0, help="area spec of the chip")
    parser.add_argument("--max-pes", type=int, default=1024, help="PE budget shared by the sub-accelerators")
    parser.add_argument("--max-dram-bw", type=float, default=16, help="DRAM bandwidth budget (16-bit words/cycle)")
    args = parser.parse_args()

    networks = {"resnet20 (CIFAR-10)": zoo_workload("resnet20"),
                "mobilenetv2 (Fashion-MNIST)": zoo_workload("mobilenetv2_fmnist")}
    budgets = SystemBudgets(max_pes=args.max_pes, max_dram_bw=args.max_dram_bw)
    specs = Specs(latency_ms=args.latency_ms, energy_mj=args.energy_mj, area_mm2=args.area_mm2)
    try:
        found = explore(networks, budgets, specs, n_subs=2)
    except InfeasibleError as exc:
        print(f"no chip meets the specs: {exc}")
        return 2
    print(f"searched {found.n_candidates} sub-accelerator designs, {found.n_chips:,} two-sub chips within the "
          f"budgets, {found.n_feasible:,} meeting the specs, in {found.seconds:.1f} s")
    print("best chip (minimum latency, then energy, then area):")
    for line in found.best.report():
        print("  " + line)
    print("Pareto set (latency ms, energy mJ, area mm^2 -> subs):")
    for chip in found.pareto:
        subs = "; ".join(f"{net} on {chip.design.sub(sub).label()}" for net, sub in chip.assignment.items())
        print(f"  {chip.latency_ms:.4f}  {chip.energy_mj:.4f}  {chip.area_mm2:.3f}  {subs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
