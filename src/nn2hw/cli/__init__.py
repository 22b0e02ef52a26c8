"""The ``nn2hw`` command line: a thin shell over the Python API.

Each command lives in its own module ``nn2hw.cli.<command>`` exposing ``register(subparsers)``;
the module's handler calls the API and prints. Library errors (``Nn2hwError``) become one
paragraph on stderr and exit code 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Sequence

from nn2hw import __version__
from nn2hw.errors import Nn2hwError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nn2hw",
        description="Co-search a pretrained network, its compression and its hardware design.",
    )
    parser.add_argument("--version", action="version", version=f"nn2hw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Plugin problems as one paragraph on stderr, their text printed as is (other warnings as Python
    prints them)."""
    from nn2hw.registry import PluginWarning

    if issubclass(category, PluginWarning):
        from rich.markup import escape

        from nn2hw.cli._common import err_console

        err_console.print(f"[bold yellow]warning:[/] {escape(str(message))}", soft_wrap=True, highlight=False)
    else:
        # typeshed's showwarning takes a Warning | str message, which a hook's own signature cannot narrow
        _PYTHON_SHOWWARNING(message, category, *args, **kwargs)  # type: ignore[arg-type]


_PYTHON_SHOWWARNING = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nn2hw`` script; returns the process exit code."""
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Nn2hwError as exc:
        from nn2hw.cli._common import print_error

        print_error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nn2hw: interrupted; completed work is saved.", file=sys.stderr)
        return EXIT_INTERRUPTED
