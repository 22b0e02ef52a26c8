"""``nn2hw plan``: work on a plan file.

    nn2hw plan minimize runs/r20/plan.json --hardware fpga:zcu102 --latency-ms 0.25 --out minimal.json
    nn2hw plan minimize runs/r20 --hardware eyeriss --latency-ms 0.6 --energy-mj 0.3 --out m.json --json m-report.json

``minimize`` removes every change whose removal keeps every spec met (greedy, largest accuracy
risk first, re-costed on the best design after each removal, until no single removal keeps the
specs), writes the kept plan and prints what was removed and why each kept change is needed. A
thin shell over ``nn2hw.api.minimize_plan``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from nn2hw.cli._common import parse_key_values, require_output_files, wide_console, write_json
from nn2hw.cli._options import add_hardware, add_hardware_file, add_json, add_spec
from nn2hw.hardware.records import design_label


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw plan`` and its ``minimize`` subcommand."""
    parser = subparsers.add_parser("plan", help="work on a plan file (minimize)",
                                   description="Work on a plan file (or a bundle's plan).")
    commands = parser.add_subparsers(dest="plan_command", metavar="SUBCOMMAND", required=True)
    minimize = commands.add_parser(
        "minimize", help="remove every change of a plan that no spec needs",
        description="Remove from a plan every change whose removal keeps every spec met: greedy, largest accuracy "
                    "risk first (the parameters a change takes away, counting bits up to 8), each candidate costed "
                    "on its own best design as the search costs it, until no single removal keeps the specs. "
                    "Writes the kept plan (with its design) and says why each kept change is needed.")
    minimize.add_argument("plan", metavar="PLAN", help="plan JSON file, or a bundle folder with plan.json inside")
    add_hardware(minimize)
    add_hardware_file(minimize)
    add_spec(minimize)
    minimize.add_argument("--out", required=True, metavar="FILE", help="where to write the minimal plan (JSON)")
    add_json(minimize, "the changes removed and kept, with the cost before and after,")
    minimize.set_defaults(handler=_minimize)


def _minimize(args: argparse.Namespace) -> int:
    from nn2hw.api import minimize_plan

    require_output_files({"--out": args.out, "--json": args.json})
    result = minimize_plan(args.plan, hardware=args.hardware, hw_params=parse_key_values(args.hw_param),
                           latency_ms=args.latency_ms, energy_mj=args.energy_mj, area_mm2=args.area_mm2,
                           hardware_file=args.hardware_file)
    path = result.plan.save(args.out)
    print_minimized(result)
    console = wide_console()
    console.print(f"wrote {path}", markup=False)
    if args.json:
        console.print(f"wrote {write_json(args.json, {**result.to_dict(), 'plan': str(path)})}", markup=False)
    return 0


def _layers(layers: tuple[str, ...]) -> str:
    return layers[0] + (f" (+{len(layers) - 1})" if len(layers) > 1 else "")


def print_minimized(result: Any) -> None:
    """Removed changes (in the order removed), kept ones with what removing them misses, and the cost
    before and after."""
    console = wide_console()
    table = Table(title="changes: removed (the spec does not need them) and kept (needed)", title_justify="left")
    for column in ("", "technique", "layers", "change", "risk", "latency if removed ms", "needed because"):
        table.add_column(column, justify="right" if column in ("risk", "latency if removed ms") else "left")
    for status, changes in (("removed", result.removed), ("kept", result.kept)):
        for c in changes:
            delta = "" if c.saved_ms is None else f"{c.saved_ms:+.5f}"
            table.add_row(status, c.technique, escape(_layers(c.layers)), escape(c.label), f"{c.risk:,.0f}", delta,
                          escape(c.needed))
    console.print(table)
    before, after = result.before, result.after
    extra = "".join(f", {name.split('_')[0]} {getattr(before, name):.6g} -> {getattr(after, name):.6g}"
                    for name in ("energy_mj", "area_mm2") if getattr(before, name) is not None)
    console.print(f"removed {len(result.removed)} of {len(result.removed) + len(result.kept)} changes; latency "
                  f"{before.latency_ms:.6g} -> {after.latency_ms:.6g} ms{extra}; design "
                  f"{escape(design_label(before.design))} -> {escape(design_label(after.design))} "
                  f"({result.passes} passes, {result.checks} re-costings, {result.seconds:.2f} s)")
