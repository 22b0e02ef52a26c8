"""``nn2hw bundle``: work on the result of a search.

    nn2hw bundle select runs/r20-family --latency-ms 0.27            # the variant to run under 0.27 ms
    nn2hw bundle select runs/r20-family --latency-ms 0.27 --json chosen.json

``select`` reads the family a search with ``--latency-levels-ms`` wrote (``family.json``) and prints
its levels and the most accurate variant whose latency meets the budget, with its bundle folder
(what ``nn2hw export`` or ``nn2hw.bundle.load_bundle`` takes). A budget below every variant exits 2
naming the fastest. A thin shell over ``nn2hw.bundle.load_family(...).select(...)``.
"""

from __future__ import annotations

import argparse

from nn2hw.cli._common import require_output_files, wide_console, write_json
from nn2hw.cli._options import add_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw bundle`` and its ``select`` subcommand."""
    parser = subparsers.add_parser("bundle", help="work on a search's result (select a family's variant)",
                                   description="Work on the output folder of a search.")
    commands = parser.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)
    select = commands.add_parser(
        "select", help="the family's most accurate variant that meets a latency budget",
        description="From the family of variants a search with --latency-levels-ms wrote, pick the most accurate "
                    "variant whose latency meets the budget (RT3-style run-time reconfiguration: e.g. one budget "
                    "per DVFS level of a phone; see docs/search.md).")
    select.add_argument("folder", metavar="FOLDER", help="the search's output folder (with family.json)")
    select.add_argument("--latency-ms", type=float, required=True, metavar="MS", help="the latency budget")
    add_json(select, "the selected variant (and the family)")
    select.set_defaults(handler=_select)


def _select(args: argparse.Namespace) -> int:
    from nn2hw.bundle import load_family
    from nn2hw.cli.search import print_family

    require_output_files({"--json": args.json})
    family = load_family(args.folder)
    chosen = family.select(args.latency_ms)
    print_family(family.to_dict(), chosen.level_ms)
    console = wide_console()
    console.print(f"selected level {chosen.level_ms:g} ms: {chosen.latency_ms:.4g} ms, {family.metric} "
                  f"{chosen.metrics.get(family.metric, float('nan')):.2f} %, bundle {family.path(chosen)}",
                  markup=False)
    if args.json:
        record = {"budget_ms": args.latency_ms, "selected": {**chosen.to_dict(), "path": str(family.path(chosen))},
                  "family": family.to_dict()}
        console.print(f"wrote {write_json(args.json, record)}", markup=False)
    return 0
