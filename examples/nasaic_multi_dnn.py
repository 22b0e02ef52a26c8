"""NASAIC-style multi-DNN chip: two networks on one ASIC built from two heterogeneous
sub-accelerators, under latency, energy and area specs.

Part 1 (``--part chip``) searches the hardware alone for the unmodified networks: which
sub-accelerator templates and sizes, how the PE, bandwidth and area budgets are split, and which
network runs where. Part 2 (``--part cosearch``, the default) searches both networks' compression
(channel cuts, quantization) together with the chip, end to end: every candidate pair of networks
gets its own best chip, candidates that miss a spec are never trained, the others are fine-tuned
briefly, and the winner is re-checked, fine-tuned longer and exported (one bundle per network,
the chip in hardware.json, a report of which network runs where).

    .venv/bin/python examples/nasaic_multi_dnn.py --part chip                   # about 1 s
    .venv/bin/python examples/nasaic_multi_dnn.py --trials 40 --out runs/nasaic  # about 22 min on this 2-core CPU

Measured (cosearch, defaults): chip 0.2227 -> 0.1569 ms and 0.983 -> 0.738 mJ at 3.78 mm^2, ResNet-20
on an NVDLA-style 16x16 sub (94.46 -> 94.39 % top-1), MobileNet-V2 on an Eyeriss-style 16x7 sub
(93.73 -> 93.28 %); docs/asic-cost-models.md.

Both networks are from the Fashion-MNIST zoo so that both can be fine-tuned on this machine
(the CIFAR-10 training set is not available here); any zoo pair works the same way.
"""

from __future__ import annotations

import argparse
import sys

from nn2hw.api import search, zoo_workload
from nn2hw.errors import InfeasibleError, Nn2hwError
from nn2hw.hardware.asic.hetero import explore
from nn2hw.hardware.budgets import Budgets
from nn2hw.search.settings import Member
from nn2hw.spec import Spec

NETWORKS = (("resnet20", "fashion-mnist"), ("mobilenetv2_fmnist", "fashion-mnist"))


def chip_only(args: argparse.Namespace) -> int:
    networks = {name: zoo_workload(name, dataset) for name, dataset in NETWORKS}
    budgets = Budgets(max_pes=args.max_pes, max_dram_bw=args.max_dram_bw)
    specs = Spec(latency_ms=args.latency_ms, energy_mj=args.energy_mj, area_mm2=args.area_mm2)
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


def cosearch(args: argparse.Namespace) -> int:
    (model, dataset), *others = NETWORKS
    try:
        result = search(model, dataset, latency_ms=args.latency_ms, energy_mj=args.energy_mj,
                        area_mm2=args.area_mm2, hardware="hetero",
                        hw_params={"max_pes": args.max_pes, "max_dram_bw": args.max_dram_bw},
                        companions=tuple(Member(m, d) for m, d in others), strategy=args.strategy,
                        trials=args.trials, out=args.out, seed=args.seed, resume=args.resume)
    except Nn2hwError as exc:
        print(f"error: {exc}")
        return 2
    base, sol = result.baseline, result.solution
    print(f"chip: latency {base.cost.latency_ms:.4f} -> {sol.cost.latency_ms:.4f} ms, energy "
          f"{base.cost.energy_mj:.4f} -> {sol.cost.energy_mj:.4f} mJ, area {sol.cost.area_mm2:.3f} mm^2")
    for net, info in sol.to_dict()["networks"].items():
        print(f"  {net}: top-1 {base.networks[net]['top1']:.2f} -> {info['top1']:.2f} %, runs on {info['runs_on']} "
              f"(busy {info['sub_busy_ms']:.4f} ms)")
    for note in sol.cost.notes:
        print(f"  {note}")
    print(f"bundles, report and plots in {result.out_dir}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("chip", "cosearch"), default="cosearch")
    parser.add_argument("--latency-ms", type=float, help="latency spec: the slowest sub's busy time (default: chip "
                                                         "0.3, cosearch 0.18, below what the unmodified pair reaches)")
    parser.add_argument("--energy-mj", type=float, help="energy spec, both networks, one inference each (default: "
                                                        "chip 1.1, cosearch 0.75)")
    parser.add_argument("--area-mm2", type=float, default=4.0, help="area spec of the chip")
    parser.add_argument("--max-pes", type=int, default=1024, help="PE budget shared by the sub-accelerators")
    parser.add_argument("--max-dram-bw", type=float, default=16, help="DRAM bandwidth budget (16-bit words/cycle)")
    parser.add_argument("--strategy", default="tpe")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/nasaic")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    defaults = {"chip": (0.3, 1.1), "cosearch": (0.18, 0.75)}[args.part]
    args.latency_ms = args.latency_ms if args.latency_ms is not None else defaults[0]
    args.energy_mj = args.energy_mj if args.energy_mj is not None else defaults[1]
    return chip_only(args) if args.part == "chip" else cosearch(args)


if __name__ == "__main__":
    sys.exit(main())
