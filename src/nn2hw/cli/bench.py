"""``nn2hw bench``: benchmark spaces and HW-NAS-Bench's published costs.

    nn2hw bench hwnasbench --space fbnet --arch 0,0,...,0 --dataset cifar100 [--pickle FILE] [--json F]
    nn2hw bench hwnasbench --space nb201 --arch INDEX|CELL|OPS --dataset cifar10 [--pickle FILE] [--json F]
    nn2hw bench agreement --hardware eyeriss --metric eyeriss_latency --samples 50 [--seed 0] [--json F]

``hwnasbench`` prints HW-NAS-Bench's own cost of one architecture on each of its devices (its
lookup sums over the FBNet tables under ``NN2HW_DATA``, or the pickle's; a NAS-Bench-201 cell's
entry in HW-NAS-Bench's pickle, by NAS-Bench-201's index, its cell string or its op indices);
``agreement`` ranks a seeded sample of the space's architectures with an nn2hw template and with one
HW-NAS-Bench metric and prints Kendall's tau and Spearman's rho. A thin shell over ``nn2hw.bench``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nn2hw.cli._common import console, parse_key_values, write_json
from nn2hw.cli._options import add_hardware, add_json, add_seed
from nn2hw.errors import ConfigError

if TYPE_CHECKING:
    from nn2hw.bench import HwNasBench

SPACES = ("fbnet", "nb201")
"""The spaces HW-NAS-Bench prices: FBNet (lookup tables, shipped here) and NAS-Bench-201 (its pickle)."""
DEFAULT_DATASET = {"fbnet": "cifar100", "nb201": "cifar10"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw bench`` with ``hwnasbench`` and ``agreement``."""
    parser = subparsers.add_parser("bench", help="benchmark spaces: HW-NAS-Bench costs, template rank agreement",
                                   description="The FBNet space and HW-NAS-Bench's costs of it on its six devices.")
    commands = parser.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)

    query = commands.add_parser("hwnasbench", help="HW-NAS-Bench's cost of one architecture on each device",
                                description="HW-NAS-Bench's lookup-sum latency (ms) and energy (mJ) of one "
                                            "architecture, with its own key names.")
    _add_space(query, SPACES)
    query.add_argument("--arch", required=True, metavar="ARCH",
                       help="FBNet: 22 comma-separated op indices in 0..8 (FBNet's order); NAS-Bench-201: its index "
                            "(0..15624), its cell string or 6 comma-separated op indices")
    query.add_argument("--pickle", metavar="FILE",
                       help="HW-NAS-Bench-v1_0.pickle (NAS-Bench-201 needs it; default: hw-nas-bench/ under "
                            "NN2HW_DATA); for FBNet, its tables instead of the shipped JSON")
    add_json(query, "the costs")
    query.set_defaults(handler=_hwnasbench)

    agree = commands.add_parser("agreement", help="rank agreement of a template with a HW-NAS-Bench metric",
                                description="Kendall's tau and Spearman's rho between a template's cost and one "
                                            "HW-NAS-Bench metric over seeded random architectures of the space.")
    _add_space(agree, ("fbnet",))
    add_hardware(agree)
    agree.add_argument("--metric", required=True, metavar="NAME",
                       help="HW-NAS-Bench metric, e.g. eyeriss_latency, fpga_energy, raspi4_latency")
    agree.add_argument("--samples", type=int, default=50, metavar="N", help="architectures to rank (default 50)")
    add_seed(agree, "the sample of architectures")
    add_json(agree, "tau, rho and every sampled architecture's two costs")
    agree.set_defaults(handler=_agreement)


def _add_space(parser: argparse.ArgumentParser, spaces: tuple[str, ...]) -> None:
    parser.add_argument("--space", default="fbnet", choices=spaces, help=f"the search space ({', '.join(spaces)})")
    parser.add_argument("--dataset", metavar="NAME",
                        help="the space's input setting: FBNet cifar100 (32x32, default) or ImageNet (224x224); "
                             "NAS-Bench-201 cifar10 (default), cifar100 or ImageNet16-120")


def parse_arch(text: str) -> list[int]:
    """'0,1,8' -> [0, 1, 8]; the length and range are checked by the space."""
    parts = [part.strip() for part in text.split(",")]
    bad = [part for part in parts if not part.lstrip("-").isdigit()]
    if bad:
        raise ConfigError(f"--arch {text!r} has entries that are not integers: {', '.join(map(repr, bad))}.",
                          "Write 22 comma-separated op indices, e.g. --arch " + ",".join(["0"] * 22) + ".")
    return [int(part) for part in parts]


def _hwnasbench(args: argparse.Namespace) -> int:
    from nn2hw.bench import load_hwnasbench, nb201_arch, query_fbnet, query_nb201

    dataset = args.dataset or DEFAULT_DATASET[args.space]
    if args.space == "fbnet":
        head: dict = {"arch": parse_arch(args.arch)}
        costs = query_fbnet(head["arch"], dataset, tables=load_hwnasbench(args.pickle).fbnet if args.pickle else None)
    else:
        bench = load_hwnasbench(args.pickle)
        index = _nb201_index(args.arch.strip(), bench)
        head = {"index": index, "arch": nb201_arch(index, bench)}
        costs = query_nb201(index, dataset, bench)
        console.print(f"NAS-Bench-201 cell {index}: {head['arch']}", highlight=False, soft_wrap=True)
    width = max(20, *(len(key) + 1 for key in costs))
    for key, value in costs.items():
        unit = "ms" if key.endswith("_latency") else "mJ" if key.endswith("_energy") else ""
        console.print(f"{key:<{width}} {value:.10g} {unit}".rstrip(), highlight=False)
    if args.json:
        write_json(args.json, {"space": args.space, "dataset": dataset, **head, **costs})
    return 0


def _nb201_index(text: str, bench: HwNasBench) -> int:
    """NAS-Bench-201's index given as itself, as the cell's string or as its six op indices."""
    from nn2hw.bench import nb201_index

    if text.isdigit():
        return int(text)
    if text.startswith("|"):
        return nb201_index(text, bench)
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ConfigError(f"--arch {text!r} is neither a NAS-Bench-201 index, a cell string nor op indices.",
                          "Give the index (0..15624), the cell as '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' or six "
                          "comma-separated op indices in 0..4.")
    return nb201_index([int(part) for part in parts], bench)


def _agreement(args: argparse.Namespace) -> int:
    from nn2hw.bench.agreement import rank_agreement

    result = rank_agreement(args.hardware, args.metric, samples=args.samples, seed=args.seed,
                            dataset=args.dataset or DEFAULT_DATASET[args.space],
                            hw_params=parse_key_values(args.hw_param))
    console.print(f"{result.hardware} vs HW-NAS-Bench {result.metric} on {len(result.samples)} {args.space} "
                  f"architectures ({result.dataset}, seed {result.seed}): Kendall tau {result.kendall_tau:.3f}, "
                  f"Spearman rho {result.spearman_rho:.3f}", highlight=False, soft_wrap=True)
    if args.json:
        write_json(args.json, {"space": args.space, **result.as_dict()})
    return 0
