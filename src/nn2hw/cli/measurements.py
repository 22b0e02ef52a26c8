"""``nn2hw measurements``: list the measurement store and forget measurements so they are timed again.

    nn2hw measurements list [NETWORK... | --noisier-than F] [--store FILE] [--json FILE]
    nn2hw measurements forget NETWORK... | --noisier-than F | --all [--store FILE]

The store (``NN2HW_CACHE``/measurements.sqlite unless ``--store``) keeps every timed network so a
search never times it twice; a measurement taken while another job ran keeps its wide spread, and a
later search refuses to verify a spec against it. ``forget`` deletes the chosen rows: NETWORK is a
key or a prefix of one (as ``list`` and the refusal print them), ``--noisier-than 0.05`` every
measurement whose IQR exceeds 5 % of its median; ``list`` takes the same choices to show what
``forget`` would delete. A thin shell over ``nn2hw.measure.MeasurementStore``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from rich.table import Table

from nn2hw.cli._common import console, require_output_files, wide_console, write_json
from nn2hw.cli._options import add_json
from nn2hw.errors import ConfigError
from nn2hw.measure.store import MeasurementStore, StoredMeasurement

MIN_PREFIX = 6
"""Shortest network-key prefix ``forget`` accepts (a shorter one would match by accident)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw measurements`` with ``list`` and ``forget``."""
    parser = subparsers.add_parser(
        "measurements", help="the store of measured latencies: list it, forget noisy measurements",
        description="Every network the measured templates time is kept in a store and never timed twice. "
                    "`list` shows it; `forget` deletes measurements so the next run times them again.")
    commands = parser.add_subparsers(dest="measurements_command", metavar="SUBCOMMAND", required=True)
    listing = commands.add_parser("list", help="the stored measurements, oldest first",
                                  description="The stored measurements (all, or those chosen as for `forget`): "
                                              "network key, median, IQR, runs, threads, runtime and when taken.")
    _add_choices(listing)
    _add_store(listing)
    add_json(listing, "every stored measurement")
    listing.set_defaults(handler=_list)

    forget = commands.add_parser("forget", help="delete measurements so they are timed again",
                                 description="Delete stored measurements: by network key (or a prefix of at least "
                                             f"{MIN_PREFIX} characters), by noise, or all.")
    _add_choices(forget)
    forget.add_argument("--all", action="store_true", help="every stored measurement")
    _add_store(forget)
    forget.set_defaults(handler=_forget)


def _add_choices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("networks", nargs="*", metavar="NETWORK", help="network key or prefix (from `list`)")
    parser.add_argument("--noisier-than", type=float, metavar="F",
                        help="every measurement whose IQR exceeds F times its median (e.g. 0.05)")


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="FILE",
                        help="measurement store (default: measurements.sqlite under NN2HW_CACHE)")


def _open(path: str | None) -> MeasurementStore:
    from pathlib import Path

    from nn2hw.measure.store import default_store

    if path is None:
        return default_store()
    if not Path(path).is_file():
        raise ConfigError(f"There is no measurement store at {path}.",
                          "Give the file a measured template wrote (measurements.sqlite under NN2HW_CACHE), or leave "
                          "--store out for the default one.")
    return MeasurementStore(path)


def _list(args: argparse.Namespace) -> int:
    require_output_files({"--json": args.json})
    everything = not args.networks and args.noisier_than is None
    chosen = _selection(args.networks, args.noisier_than, everything)
    store = _open(args.store)
    entries = _matching(store, args.networks)
    shown = [e for e in entries if chosen(e)]
    wide_console().print(_table(shown, f"{len(shown)} of {len(entries)} measurements in {store.path}"))
    if args.json:
        console.print(f"wrote {write_json(args.json, [e.to_dict() for e in shown])}", markup=False)
    return 0


def _table(entries: Sequence[StoredMeasurement], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("network", "median ms", "IQR ms", "IQR/median", "runs", "threads", "runtime", "taken"):
        table.add_column(column, justify="left" if column in ("network", "runtime", "taken") else "right")
    for e in entries:
        m = e.measurement
        table.add_row(e.network[:16], f"{m.median_ms:.4g}", f"{m.iqr_ms:.3g}", f"{e.relative_iqr:.1%}", str(m.runs),
                      str(m.threads), f"{m.runtime} {m.runtime_version}",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created_at_s)))
    return table


def _forget(args: argparse.Namespace) -> int:
    chosen = _selection(args.networks, args.noisier_than, args.all)
    store = _open(args.store)
    entries = _matching(store, args.networks)
    gone = store.forget(chosen)
    wide_console().print(_table(gone, f"forgot {len(gone)} of {len(entries)} measurements in {store.path} (timed again "
                               "when next needed)"))
    return 0


def _matching(store: MeasurementStore, networks: Sequence[str]) -> list[StoredMeasurement]:
    """The store's entries, after checking that each given key prefix matches one (a typo is an error)."""
    entries = store.entries()
    unmatched = [key for key in networks if not any(e.network.startswith(key) for e in entries)]
    if unmatched:
        raise ConfigError(f"No stored measurement has a network key starting with {', '.join(unmatched)}.",
                          "Copy the keys from `nn2hw measurements list` (and its --store, if another store was "
                          "meant).")
    return entries


def _selection(networks: Sequence[str], noisier_than: float | None,
               everything: bool) -> Callable[[StoredMeasurement], bool]:
    """Which measurements ``list`` shows and ``forget`` deletes: exactly one kind of choice, checked
    before the store is opened."""
    given = [bool(networks), noisier_than is not None, everything]
    if sum(given) != 1:
        raise ConfigError("Choose measurements one way: network keys, --noisier-than, or (forget) --all.",
                          "E.g. `nn2hw measurements forget --noisier-than 0.05`, or keys from `nn2hw measurements "
                          "list`.")
    short = [key for key in networks if len(key) < MIN_PREFIX]
    if short:
        raise ConfigError(f"Network key prefix {', '.join(short)} is shorter than {MIN_PREFIX} characters.",
                          "Give more of the key, as `nn2hw measurements list` prints it.")
    if noisier_than is not None and not noisier_than > 0:
        raise ConfigError(f"--noisier-than {noisier_than:g} must be a positive fraction of the median.",
                          "E.g. --noisier-than 0.05 forgets measurements whose IQR exceeds 5 % of their median.")
    if everything:
        return lambda entry: True
    if noisier_than is not None:
        bound = noisier_than
        return lambda entry: entry.relative_iqr > bound
    return lambda entry: any(entry.network.startswith(key) for key in networks)
