"""``nn2hw zoo``: list the model zoo and show one model's variants and checkpoint sources.

    nn2hw zoo list [PATTERN]     table of models: datasets, input shape, parameters, MACs, weights
    nn2hw zoo info NAME          variants, preprocessing, checkpoint URLs and sha256 digests

Adding a sub-subcommand (e.g. ``nn2hw zoo train``): write a function that takes the ``zoo``
subparsers action, adds its parser and sets ``handler=``, and decorate it with
``@zoo_subcommand``. Put it in this module, or in a module ``nn2hw/cli/_zoo_<name>.py``, which
``register`` imports before building the parser (the underscore keeps the top-level command
scan from taking it for a command of its own)::

    from nn2hw.cli.zoo import zoo_subcommand

    @zoo_subcommand
    def register_train(zoo_commands):
        parser = zoo_commands.add_parser("train", help="train a zoo model")
        parser.add_argument("model")
        parser.set_defaults(handler=_train)

Parsing imports no torch; ``list`` and ``info`` compute parameter and MAC counts on demand
(cached under ``NN2HW_CACHE`` keyed by the code that produced them).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.markup import escape

from nn2hw.cli._common import console
from nn2hw.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import JustifyMethod

ZooCommand = Callable[[argparse._SubParsersAction], None]
ZOO_COMMANDS: list[ZooCommand] = []
"""Functions that each add one ``nn2hw zoo <sub>`` parser, in the order they appear in help."""


def zoo_subcommand(register_function: ZooCommand) -> ZooCommand:
    """Decorator: enrol a function that adds one ``nn2hw zoo`` sub-subcommand."""
    ZOO_COMMANDS.append(register_function)
    return register_function


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw zoo`` and every enrolled sub-subcommand."""
    parser = subparsers.add_parser("zoo", help="list the model zoo and its checkpoints",
                                   description="Models nn2hw can build, with their datasets and weights.")
    commands = parser.add_subparsers(dest="zoo_command", metavar="SUBCOMMAND", required=True)
    package = importlib.import_module("nn2hw.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_zoo_"):
            importlib.import_module(f"nn2hw.cli.{info.name}")
    for add in ZOO_COMMANDS:
        add(commands)


@zoo_subcommand
def _register_list(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("list", help="table of zoo models",
                                 description="List zoo models matching a shell-style PATTERN (default: all).")
    parser.add_argument("pattern", nargs="?", default="*", metavar="PATTERN", help="e.g. 'resnet*'")
    parser.set_defaults(handler=_list)


@zoo_subcommand
def _register_info(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("info", help="one model's variants and checkpoint sources",
                                 description="Show a zoo model's dataset variants, preprocessing and weights.")
    parser.add_argument("name", metavar="NAME")
    parser.set_defaults(handler=_info)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _count(value: int) -> str:
    """12_345_678 -> '12.35 M' (parameters, MACs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def _found(source) -> str:
    """Where a source's file already is ('packaged', 'NN2HW_DATA', 'pip package', 'cache'), or '' (nothing is
    hashed)."""
    from nn2hw.zoo.checkpoints import where_found

    return where_found(source)


def _weights(variant) -> str:
    """Where this variant's weights would come from: found locally, a download, or none yet."""
    if not variant.sources:
        return "none"
    return next((where for where in map(_found, variant.sources) if where), "download")


def _list(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table

    from nn2hw import zoo

    names = zoo.list_models(args.pattern)
    if not names:
        raise ConfigError(f"No zoo model matches {args.pattern!r}.",
                          f"Run `nn2hw zoo list` to see all: {', '.join(zoo.list_models())}.")
    table = Table(title=f"nn2hw model zoo ({len(names)} models)", box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False, collapse_padding=True)
    columns: tuple[tuple[str, JustifyMethod], ...] = (("model", "left"), ("dataset", "left"), ("input", "left"),
                                                      ("params", "right"), ("MACs", "right"), ("weights", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)
    for name in names:
        for index, variant in enumerate(zoo.entry(name).variants):
            size = zoo.stats(name, variant.dataset, cache=True)
            table.add_row(name if index == 0 else "", variant.dataset, _shape(variant.input_shape),
                          _count(size.params), _count(size.macs), _weights(variant))
    console.print(table)
    console.print("weights: NN2HW_DATA, packaged, pip package or cache = found locally; download = fetched and "
                  "checked on first use; none = train it first (`nn2hw zoo train`). `nn2hw zoo info NAME` shows the "
                  "sources.")
    return 0


def _info(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nn2hw import zoo

    model = zoo.entry(args.name)
    console.print(f"[bold]{escape(model.name)}[/] ({escape(model.family)}): {escape(model.description)}")
    options = ", ".join(f"{k}={v!r}" for k, v in model.options)
    console.print(f"built by {model.factory}" + (f" with {options}" if options else ""), markup=False)
    if model.notes:
        console.print(model.notes, markup=False)
    if model.recovery is not None:
        r = model.recovery
        console.print(f"recovers with: {r.optimizer} at lr {r.lr:g} (the search's default for it; {r.evidence})",
                      markup=False)
    for reference in model.references:
        console.print(f"reference: {reference}", markup=False)
    for variant in model.variants:
        size = zoo.stats(model.name, variant.dataset, cache=True)
        console.print()
        console.print(f"[bold]{variant.dataset}[/]{' (default)' if variant is model.variants[0] else ''}: "
                      f"input {_shape(variant.input_shape)}{' token ids' if variant.tokens else ''}, "
                      f"{f'{variant.num_classes} classes' if variant.num_classes else 'an embedding'}, "
                      f"{size.params:,} parameters, {size.macs:,} MACs per {'sequence' if variant.tokens else 'image'}")
        normalization = "" if variant.tokens else f"mean {variant.mean}, std {variant.std}; "
        console.print(f"  {normalization}{variant.preprocessing}", markup=False)
        if not variant.sources and variant.tokens:
            console.print("  no fine-tuned weights packaged yet: pass yours with --checkpoint FILE")
            continue
        if not variant.sources:  # nn2hw trains Fashion-MNIST variants only (as zoo.build's error says)
            hint = f"`nn2hw zoo train {model.name} --dataset {variant.dataset}`" \
                if variant.dataset == "fashion-mnist" else "pass yours with --checkpoint FILE"
            console.print(f"  no pretrained weights yet: {hint}")
            continue
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")  # URLs and digests are shown whole
        for source in variant.sources:
            digest = source.sha256 or f"{source.expected_hash}… (prefix from the file name only)"
            rows = [("file", source.file_name), ("url", source.url or "-"), ("sha256", digest),
                    ("checksum", source.checksum_note), ("local", source.local_path or "-"),
                    ("packaged", source.packaged or "-"), ("loading", source.transform),
                    ("found", _found(source) or "not locally; downloaded on first use")]
            for key, value in rows:
                table.add_row(f" {key}", escape(value))
        console.print(table)
    return 0
