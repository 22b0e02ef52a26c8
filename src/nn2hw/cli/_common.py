"""Helpers shared by the CLI commands: console, error printing, JSON output, KEY=VALUE parsing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from nn2hw._json import jsonable
from nn2hw.errors import ConfigError, Nn2hwError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


PIPE_WIDTH = 140
"""Output width when stdout is not a terminal (files, pipes): wide enough for per-layer tables."""


def wide_console() -> Console:
    """The terminal console, or a fixed-width one when output goes to a file or pipe."""
    return console if console.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def print_error(exc: Nn2hwError, label: str = "error") -> None:
    """One paragraph on stderr: '<label>: <cause> fix: <fix>' (their text printed as is, brackets too)."""
    err_console.print(f"[bold red]{label}:[/] {escape(exc.cause)}", soft_wrap=True)
    if exc.fix:
        err_console.print(f"[bold]fix:[/] {escape(exc.fix)}", soft_wrap=True)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (``jsonable`` for records, NumPy scalars, paths), creating parent
    folders; returns the path."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, default=jsonable) + "\n")
    except OSError as exc:
        raise ConfigError(f"Cannot write {target}: {exc.strerror}.", "Pick a writable path.") from None
    return target


def require_output_files(files: Mapping[str, str | Path | None]) -> None:
    """Before any work: each output file given (option -> path; None: not asked for) can be
    written, so a long run never fails at its last step (``nn2hw.api.require_writable``)."""
    from nn2hw.api import require_writable

    for option, path in files.items():
        if path is not None:
            require_writable(path, option, folder=False)


def parse_key_values(pairs: Iterable[str] | None, option: str = "--hw-param") -> dict[str, str]:
    """['rows=32', 'dataflow=ws'] -> {'rows': '32', 'dataflow': 'ws'}, with a clear error otherwise."""
    result: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option} {pair!r} is not KEY=VALUE.", f"Write e.g. {option} rows=32.")
        result[key.strip()] = value.strip()
    return result

