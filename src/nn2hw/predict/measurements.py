"""Measurement CSVs: whole-network latencies a user measured on a device, one network per row.

Columns: ``network`` (a zoo model name, an ONNX file or a workload JSON file; relative paths are
read relative to the CSV's folder), optional ``dataset`` (the zoo model's variant), optional
``input_shape`` (``1x1x28x28``) and ``latency_ms``. Turning a ``network`` cell into a workload needs
the zoo, a higher layer, so ``read_measurements`` takes a ``resolve`` callable (the CLI builds it on
``nn2hw.api.load_workload``). Bad cells are errors naming the line; the same network listed twice
with different latencies is an error listing both (never silently averaged); an identical repeat
is kept once.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nn2hw._checks import as_shape
from nn2hw.errors import ConfigError, Nn2hwError
from nn2hw.workload import Workload

COLUMNS = ("network", "dataset", "input_shape", "latency_ms")
REQUIRED = ("network", "latency_ms")
PATH_SUFFIXES = (".onnx", ".json")
"""Cells ending so are files, read relative to the CSV's folder when not absolute."""

Resolver = Callable[[str, str | None, tuple[int, ...] | None], Workload]
"""``resolve(network, dataset, input_shape) -> Workload``."""


@dataclass(frozen=True)
class Measurement:
    """One row: what was measured, on which input, and its latency; ``line`` in the file (0 when written)."""

    network: str
    latency_ms: float
    dataset: str | None = None
    input_shape: tuple[int, ...] | None = None
    line: int = 0

    @property
    def key(self) -> tuple[str, str | None, tuple[int, ...] | None]:
        """What identifies the measured network: the same key twice is the same network."""
        return self.network, self.dataset, self.input_shape


def format_shape(shape: Sequence[int] | None) -> str:
    """(1, 1, 28, 28) -> '1x1x28x28' ('' for none)."""
    return "" if shape is None else "x".join(str(int(d)) for d in shape)


def parse_shape(text: str, where: str) -> tuple[int, ...] | None:
    """'1x1x28x28' -> (1, 1, 28, 28); '' -> None; a ConfigError naming ``where`` otherwise."""
    return as_shape(text, f"{where}: input_shape") if text.strip() else None


def parse_latency(text: str, where: str) -> float:
    """The cell as positive finite milliseconds; a ConfigError naming ``where`` otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: latency_ms {text!r} is not a number.",
                          "Write the measured latency in milliseconds, e.g. 12.5.") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: latency_ms {text!r} is not a positive finite number.",
                          "Write the measured latency in milliseconds (> 0); drop rows that failed to measure.")
    return value


def read_rows(path: str | Path) -> tuple[Measurement, ...]:
    """The CSV's measurements, checked (columns, numbers, conflicting duplicates), identical repeats once."""
    source = Path(path)
    try:
        with source.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or ()]
            _check_header(source, header)
            rows = [_row(source, reader.line_num, dict(raw)) for raw in reader]
    except OSError as exc:
        raise ConfigError(f"Cannot read measurement file {source}: {exc.strerror}.",
                          "Give the path of a readable CSV file.") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"Measurement file {source} is not a readable CSV ({exc}).",
                          f"Write a comma-separated file with a header row of {list(COLUMNS)}.") from None
    if not rows:
        raise ConfigError(f"Measurement file {source} has no measurements.",
                          "Add one row per measured network below the header.")
    return _deduplicated(source, rows)


def _check_header(source: Path, header: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown:
        said = "; ".join(part for part in (f"missing columns {missing}" if missing else "",
                                           f"unknown columns {unknown}" if unknown else "") if part)
        raise ConfigError(f"Measurement file {source}: {said} (header: {header}).",
                          f"Use the columns {list(COLUMNS)}; {list(REQUIRED)} are required.")


def _row(source: Path, line: int, raw: dict[str | None, str | list[str] | None]) -> Measurement:
    where = f"{source} line {line}"
    if None in raw:
        raise ConfigError(f"{where} has more cells than the header has columns.",
                          "Quote cells that contain commas, or remove the extra cells.")
    cells = {str(k).strip(): str(v or "") for k, v in raw.items()}
    network = cells.get("network", "").strip()
    if not network:
        raise ConfigError(f"{where}: the network cell is empty.",
                          "Name a zoo model, an ONNX file or a workload JSON file.")
    dataset = cells.get("dataset", "").strip() or None
    return Measurement(network, parse_latency(cells.get("latency_ms", "").strip(), where), dataset,
                       parse_shape(cells.get("input_shape", ""), where), line)


def _deduplicated(source: Path, rows: list[Measurement]) -> tuple[Measurement, ...]:
    first: dict[tuple[str, str | None, tuple[int, ...] | None], Measurement] = {}
    conflicts: list[str] = []
    for row in rows:
        seen = first.setdefault(row.key, row)
        if seen is not row and seen.latency_ms != row.latency_ms:
            conflicts.append(f"{_label(row)}: {seen.latency_ms:g} ms (line {seen.line}) vs {row.latency_ms:g} ms "
                             f"(line {row.line})")
    if conflicts:
        raise ConfigError(f"Measurement file {source} lists networks twice with different latencies: "
                          + "; ".join(conflicts) + ".",
                          "Keep one latency per network (e.g. the median of your runs); nn2hw does not average "
                          "them for you.")
    return tuple(first.values())


def _label(row: Measurement) -> str:
    extras = [part for part in (row.dataset, format_shape(row.input_shape)) if part]
    return f"{row.network} ({', '.join(extras)})" if extras else row.network


def network_path(source: Path, network: str) -> str:
    """A file cell made relative to the CSV's folder (when it is not absolute); names pass unchanged."""
    if not network.lower().endswith(PATH_SUFFIXES) or Path(network).is_absolute():
        return network
    return str(source.parent / network)


def read_measurements(path: str | Path, resolve: Resolver) -> tuple[tuple[Workload, ...], tuple[float, ...]]:
    """The CSV's networks as workloads (via ``resolve``) and their latencies, pairwise."""
    source = Path(path)
    rows = read_rows(source)
    workloads = []
    for row in rows:
        try:
            workloads.append(resolve(network_path(source, row.network), row.dataset, row.input_shape))
        except Nn2hwError as exc:
            raise type(exc)(f"{source} line {row.line} ({_label(row)}): {exc.cause}", exc.fix) from None
    return tuple(workloads), tuple(row.latency_ms for row in rows)


def write_measurements(path: str | Path, rows: Iterable[Measurement]) -> Path:
    """Write measurements in the format ``read_rows`` reads (creating parent folders); returns the path."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([row.network, row.dataset or "", format_shape(row.input_shape), repr(row.latency_ms)])
    except OSError as exc:
        raise ConfigError(f"Cannot write measurement file {target}: {exc.strerror}.", "Pick a writable path.") from None
    return target
