"""``nn2hw bench``: benchmark spaces and HW-NAS-Bench's published costs.

    nn2hw bench hwnasbench --space fbnet --arch 0,0,...,0 --dataset cifar100 [--json F]
    nn2hw bench agreement --hardware eyeriss --metric eyeriss_latency --samples 50 [--seed 0] [--json F]

``hwnasbench`` prints HW-NAS-Bench's own cost of one architecture on each of its devices (its
lookup sums over the FBNet tables under ``NN2HW_DATA``); ``agreement`` ranks a seeded sample of
the space's architectures with an nn2hw template and with one HW-NAS-Bench metric and prints
Kendall's tau and Spearman's rho. A thin shell over ``nn2hw.bench``.
"""

from __future__ import annotations

import argparse

from nn2hw.cli._common import console, parse_key_values, write_json
from nn2hw.cli._options import add_hardware, add_json, add_seed
from nn2hw.errors import ConfigError

SPACES = ("fbnet",)
"""The spaces whose HW-NAS-Bench costs ship as tables here (the FBNet lookup tables)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw bench`` with ``hwnasbench`` and ``agreement``."""
    parser = subparsers.add_parser("bench", help="benchmark spaces: HW-NAS-Bench costs, template rank agreement",
                                   description="The FBNet space and HW-NAS-Bench's costs of it on its six devices.")
    commands = parser.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)

    query = commands.add_parser("hwnasbench", help="HW-NAS-Bench's cost of one architecture on each device",
                                description="HW-NAS-Bench's lookup-sum latency (ms) and energy (mJ) of one "
                                            "architecture, with its own key names.")
    _add_space(query)
    query.add_argument("--arch", required=True, metavar="I,I,...",
                       help="the architecture: 22 comma-separated op indices in 0..8 (FBNet's order)")
    add_json(query, "the costs")
    query.set_defaults(handler=_hwnasbench)

    agree = commands.add_parser("agreement", help="rank agreement of a template with a HW-NAS-Bench metric",
                                description="Kendall's tau and Spearman's rho between a template's cost and one "
                                            "HW-NAS-Bench metric over seeded random architectures of the space.")
    _add_space(agree)
    add_hardware(agree)
    agree.add_argument("--metric", required=True, metavar="NAME",
                       help="HW-NAS-Bench metric, e.g. eyeriss_latency, fpga_energy, raspi4_latency")
    agree.add_argument("--samples", type=int, default=50, metavar="N", help="architectures to rank (default 50)")
    add_seed(agree, "the sample of architectures")
    add_json(agree, "tau, rho and every sampled architecture's two costs")
    agree.set_defaults(handler=_agreement)


def _add_space(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="fbnet", choices=SPACES, help="the search space (fbnet)")
    parser.add_argument("--dataset", default="cifar100", metavar="NAME",
                        help="the space's input setting: cifar100 (32x32) or ImageNet (224x224)")


def parse_arch(text: str) -> list[int]:
    """'0,1,8' -> [0, 1, 8]; the length and range are checked by the space."""
    parts = [part.strip() for part in text.split(",")]
    bad = [part for part in parts if not part.lstrip("-").isdigit()]
    if bad:
        raise ConfigError(f"--arch {text!r} has entries that are not integers: {', '.join(map(repr, bad))}.",
                          "Write 22 comma-separated op indices, e.g. --arch " + ",".join(["0"] * 22) + ".")
    return [int(part) for part in parts]


def _hwnasbench(args: argparse.Namespace) -> int:
    from nn2hw.bench import query_fbnet

    costs = query_fbnet(parse_arch(args.arch), args.dataset)
    for key, value in costs.items():
        unit = "ms" if key.endswith("_latency") else "mJ" if key.endswith("_energy") else ""
        console.print(f"{key:<20} {value:.10g} {unit}".rstrip(), highlight=False)
    if args.json:
        write_json(args.json, {"space": args.space, "dataset": args.dataset, "arch": parse_arch(args.arch), **costs})
    return 0


def _agreement(args: argparse.Namespace) -> int:
    from nn2hw.bench.agreement import rank_agreement

    result = rank_agreement(args.hardware, args.metric, samples=args.samples, seed=args.seed, dataset=args.dataset,
                            hw_params=parse_key_values(args.hw_param))
    console.print(f"{result.hardware} vs HW-NAS-Bench {result.metric} on {len(result.samples)} {args.space} "
                  f"architectures ({result.dataset}, seed {result.seed}): Kendall tau {result.kendall_tau:.3f}, "
                  f"Spearman rho {result.spearman_rho:.3f}", highlight=False, soft_wrap=True)
    if args.json:
        write_json(args.json, {"space": args.space, **result.as_dict()})
    return 0
