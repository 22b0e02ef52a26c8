"""``nn2hw list``: what is registered (built in or from plugins), and one entry in detail.

    nn2hw list                       # every family: its entries, where each comes from
    nn2hw list templates             # names and descriptions
    nn2hw list templates systolic    # devices, presets, options, bottlenecks, op kinds
    nn2hw list transforms quantize   # plan fields, space options

A plugin that could not be registered is reported with its package, the cause and the fix, and
the command exits 2. A thin shell over the registries.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from nn2hw.cli._common import print_error, wide_console
from nn2hw.registry import Registry

FAMILIES = ("templates", "transforms", "strategies", "models", "datasets", "backends")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw list``."""
    parser = subparsers.add_parser(
        "list", help="list the registered templates, transforms, strategies, models, datasets and peer backends",
        description="List what nn2hw can use, built in or added by plugin packages (entry points), and describe one "
                    "entry. Exits 2 when a plugin could not be registered.")
    parser.add_argument("family", nargs="?", choices=FAMILIES, help="one family (default: all)")
    parser.add_argument("name", nargs="?", metavar="NAME", help="describe this entry of the family")
    parser.set_defaults(handler=_run)


def registry(family: str) -> Any:
    """The registry of ``family`` (imported only when asked for)."""
    found: Registry[Any]
    if family == "templates":
        from nn2hw.hardware.base import TEMPLATES as found
    elif family == "transforms":
        from nn2hw.compress.base import TRANSFORMS as found
    elif family == "strategies":
        from nn2hw.search.strategies.base import STRATEGIES as found
    elif family == "models":
        from nn2hw.zoo.catalog import MODELS as found
    elif family == "datasets":
        from nn2hw.data.base import DATASETS as found
    else:
        from nn2hw.peers.base import BACKENDS as found
    return found


def _summary(entry: Any) -> str:
    """The entry's description, else the first paragraph of its class docstring."""
    text = getattr(entry, "description", None) or (type(entry).__doc__ or "").split("\n\n")[0]
    return " ".join(str(text).split())[:110]


def _run(args: argparse.Namespace) -> int:
    console = wide_console()
    if args.name:
        if not args.family:
            from nn2hw.errors import ConfigError

            raise ConfigError(f"{args.name!r} needs its family.", f"Write e.g. nn2hw list templates {args.name}.")
        entry = registry(args.family).get(args.name)
        for line in describe(args.family, args.name, entry):
            console.print(line, soft_wrap=True, markup=False)
        return 0
    problems = []
    for family in (args.family,) if args.family else FAMILIES:
        found = registry(family)
        console.print(f"[bold]{family}[/]")
        for name, entry in found.items():
            origin = found.origin(name)
            source = "" if origin == "nn2hw" else f"  [dim](from {escape(origin)})[/]"
            console.print(f"  {escape(f'{name:<22} {_summary(entry)}')}{source}", soft_wrap=True)
        problems += found.problems()
    for problem in problems:
        print_error(problem.error(), label="plugin error")
    return 2 if problems else 0


def describe(family: str, name: str, entry: Any) -> list[str]:
    """Lines describing one registered entry."""
    lines = [f"{name}: {_summary(entry)}"]
    if family == "templates":
        lines += [f"devices: {', '.join(entry.devices()) or 'none listed (a device is named when used, e.g. a file)'}",
                  f"design presets: {', '.join(entry.presets()) or 'none'}",
                  f"design parameters: {', '.join(entry.design_fields()) or 'none'}",
                  "options (--hw-param NAME=VALUE):", *(f"  {o.name}: {o.help}" for o in entry.options),
                  f"spec metrics modelled: {', '.join(entry.metrics)}; several networks at once: "
                  f"{'yes' if entry.multi_network else 'no'}",
                  "bottlenecks (label: meaning -> transforms that relieve it):",
                  *(f"  {label}: {meaning} -> {', '.join(entry.remedies.get(label, ())) or 'none'}"
                    for label, meaning in entry.bottlenecks.items()),
                  "op kinds (how each runs):",
                  *(f"  {kind.value}: {mode.value}" for kind, mode in entry.execution.items())]
    elif family == "transforms":
        lines += [f"plan fields: {', '.join(entry.fields())}", f"applied in order {entry.order}",
                  f"space-file options ({entry.option_name}): {entry.option_help}; default "
                  f"{list(entry.default_options) or 'per layer'}"]
    elif family == "strategies":
        lines += [f"objectives: {entry.objectives}"]
    elif family == "models":
        lines += [f"datasets: {', '.join(entry.datasets)}", f"family: {entry.family}"]
    elif family == "datasets":
        lines += [f"splits: {', '.join(entry.splits)}", f"search validation split: {_validation(entry)}",
                  f"image shape: {tuple(entry.image_shape)}"]
    else:
        lines += [f"packages (its own venv): {' '.join(entry.packages)}", f"costs: {', '.join(entry.templates)}"]
    return lines


def _validation(source: Any) -> str:
    """Where a search's validation split comes from: the dataset's own, or carved from its training split."""
    from nn2hw.data.base import default_holdout

    if "validation" in source.splits:
        return "its own validation split"
    holdout = default_holdout(source)
    if holdout is None or "train" not in source.splits:
        return "none (search with --select-on-test)"
    return f"{holdout.size} training images set aside (seed {holdout.seed}; --validation-size changes it)"
