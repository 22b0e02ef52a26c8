"""HW-NAS-Bench's costs: the FBNet lookup sums and, from the benchmark's pickle, its NAS-Bench-201 entries.

HW-NAS-Bench (Li et al., ICLR 2021) prices an FBNet architecture as the sum of per-operator
entries (stem, 22 blocks, header, pool, classifier; ``fbnet_table_keys``) in one table per
device metric, and ``average_hw_metric`` as the product of the eight sums. The tables are the
pickle's ``'fbnet'`` entry dumped to JSON (``hw-nas-bench/fbnet_only/fbnet_cached_metrics.json``
under ``NN2HW_DATA``; see its SOURCE.md) or, for a user who has it, the pickle itself. Latencies
are in ms, energies in mJ. The sums are accumulated in the API's order, one float at a time, so
they equal its outputs bit for bit.

The pickle (``HW-NAS-Bench-v1_0.pickle``, ``load_hwnasbench``) also holds one value per metric for
each of NAS-Bench-201's 15,625 cells on each of its three datasets, by NAS-Bench-201's own index,
with the cell's string in a ``config`` list beside them (``query_nb201``, ``nb201_index``). It is
read with an unpickler that builds only containers, numbers, strings and NumPy arrays, so a file
that is not the benchmark's cannot run code on load.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from nn2hw.bench.fbnet import fbnet_layout, fbnet_table_keys
from nn2hw.errors import ConfigError, DatasetError
from nn2hw.paths import DATA_ENV, search_dirs
from nn2hw.workload.spaces.nb201 import NB201_DATASETS, NB201_SIZE, format_nb201, nb201_dataset

FBNET_METRICS = ("edgegpu_latency", "edgegpu_energy", "raspi4_latency", "pixel3_latency", "eyeriss_latency",
                 "eyeriss_energy", "fpga_latency", "fpga_energy")
"""The FBNet tables' metrics, in the API's order (which is also the order of the product)."""
AVERAGE_METRIC = "average_hw_metric"
HWNASBENCH_FBNET_DATASETS = ("cifar100", "ImageNet")
"""The input settings HW-NAS-Bench's API prices in the FBNet space."""
TABLE_PARTS = ("hw-nas-bench", "fbnet_only", "fbnet_cached_metrics.json")
NB201_METRICS = ("edgegpu_latency", "edgegpu_energy", "raspi4_latency", "edgetpu_latency", "pixel3_latency",
                 "eyeriss_latency", "eyeriss_energy", "eyeriss_arithmetic_intensity", "fpga_latency", "fpga_energy")
"""The NAS-Bench-201 entries' metrics, in the API's order."""
NB201_AVERAGED = tuple(m for m in NB201_METRICS if m != "eyeriss_arithmetic_intensity")
"""The metrics whose product is a NAS-Bench-201 cell's ``average_hw_metric`` (all but the intensity)."""
PICKLE_PARTS = ("hw-nas-bench", "HW-NAS-Bench-v1_0.pickle")
PICKLE_SOURCE = "https://github.com/GATECH-EIC/HW-NAS-Bench (in the repository's root)"
_PICKLE_GLOBALS = frozenset({("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
                             ("_codecs", "encode"),  # protocol 2's bytes
                             *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                               for n in ("_reconstruct", "scalar"))})
"""What a data-only pickle may name: containers, bytes and NumPy arrays and scalars, nothing that runs code."""

Tables = Mapping[str, Mapping[str, float]]


def _data_file(parts: tuple[str, ...], what: str, fix: str) -> Path:
    """The first file ``parts`` under the data root, then the cache; a ``DatasetError`` naming where it
    looked if none exists."""
    candidates = [folder / parts[-1] for folder in search_dirs(*parts[:-1])]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        looked = ", ".join(str(p) for p in candidates) or "nowhere (no data root set)"
        raise DatasetError(f"{what} not found (looked in: {looked}).", fix)
    return found


def fbnet_table_path() -> Path:
    """The first FBNet table file under the data root, then the cache; a ``DatasetError`` if none exists."""
    return _data_file(TABLE_PARTS, "The HW-NAS-Bench FBNet tables were",
                      f"Set {DATA_ENV} to a folder holding {'/'.join(TABLE_PARTS)} (the project's ../shared/data "
                      "has it), or pass the file's path.")


def load_fbnet_tables(path: str | Path | None = None) -> Tables:
    """The eight FBNet lookup tables (metric -> operator key -> value), read-only and read once per file."""
    return _load(str(Path(path).expanduser().resolve() if path is not None else fbnet_table_path()))


@lru_cache(maxsize=4)
def _load(path: str) -> Tables:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"The HW-NAS-Bench FBNet table file {path} cannot be read: {exc}.",
                           "Point to the JSON dump of the pickle's 'fbnet' entry (fbnet_cached_metrics.json).") \
            from None
    return _fbnet_tables(data, f"The HW-NAS-Bench FBNet table file {path}",
                         f"Use a file mapping each of {list(FBNET_METRICS)} to an operator table.")


def _fbnet_tables(data: object, what: str, fix: str) -> Tables:
    """The eight FBNet tables of ``data`` (metric -> operator table), read-only; a ``DatasetError``
    naming the tables ``what`` lacks."""
    tables = data if isinstance(data, dict) else {}
    missing = [m for m in FBNET_METRICS if not isinstance(tables.get(m), dict)]
    if missing:
        raise DatasetError(f"{what} lacks the FBNet tables {missing}.", fix)
    return MappingProxyType({m: MappingProxyType({str(k): float(v) for k, v in tables[m].items()})
                             for m in FBNET_METRICS})


def query_fbnet(arch: Sequence[int], dataset: str = "cifar100", tables: Tables | None = None) -> dict[str, float]:
    """HW-NAS-Bench's cost of FBNet architecture ``arch`` on ``dataset`` (``cifar100`` or ``ImageNet``).

    Returns the API's keys: the eight metrics (ms, mJ) as lookup sums and ``average_hw_metric``,
    their product. ``tables`` defaults to ``load_fbnet_tables()``. A key the tables lack is a
    ``ConfigError`` naming it.
    """
    layout = fbnet_layout(dataset)
    if layout.dataset not in HWNASBENCH_FBNET_DATASETS:
        raise ConfigError(f"HW-NAS-Bench prices the FBNet space on {list(HWNASBENCH_FBNET_DATASETS)}, "
                          f"not on {dataset!r}.",
                          "Query cifar100 (32x32 inputs) or ImageNet (224x224 inputs).")
    keys = fbnet_table_keys(arch, layout.dataset)
    tables = load_fbnet_tables() if tables is None else tables
    results = {metric: _lookup_sum(tables, metric, keys) for metric in FBNET_METRICS}
    results[AVERAGE_METRIC] = math.prod(results[metric] for metric in FBNET_METRICS)  # left to right, as the API
    return results


def _lookup_sum(tables: Tables, metric: str, keys: list[str]) -> float:
    """The metric's entries for ``keys`` added left to right from 0.0, as the API adds them."""
    table = tables.get(metric)
    if table is None:
        raise ConfigError(f"The HW-NAS-Bench FBNet tables have no {metric!r} table.",
                          f"Load tables holding all of {list(FBNET_METRICS)} (load_fbnet_tables).")
    total = 0.0
    for key in keys:
        if key not in table:
            raise ConfigError(f"The HW-NAS-Bench {metric} table has no entry {key!r}.",
                              "Use the complete FBNet tables (fbnet_cached_metrics.json, 225 entries per metric); "
                              "the space's layout and the table disagree otherwise.")
        total += table[key]
    return total


@dataclass(frozen=True)
class HwNasBench:
    """HW-NAS-Bench's pickle, read: per NAS-Bench-201 dataset each metric's 15,625 values and the
    cells' strings (both by NAS-Bench-201's index), and the FBNet lookup tables."""

    path: str
    nb201: Mapping[str, Mapping[str, np.ndarray]]
    nb201_archs: tuple[str, ...]
    nb201_indices: Mapping[str, int]
    fbnet: Tables


class _Refused(pickle.UnpicklingError):
    """A pickle named a global that data does not need (its ``module.name``)."""


class _DataOnly(pickle.Unpickler):
    """An unpickler that refuses every global but containers and NumPy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def hwnasbench_path() -> Path:
    """The first ``hw-nas-bench/HW-NAS-Bench-v1_0.pickle`` under the data root, then the cache; a
    ``DatasetError`` saying where to get it if none exists."""
    return _data_file(PICKLE_PARTS, "HW-NAS-Bench's pickle was",
                      f"Download {PICKLE_PARTS[-1]} from {PICKLE_SOURCE} into ${DATA_ENV}/{PICKLE_PARTS[0]}/, or pass "
                      "its path (--pickle FILE).")


def load_hwnasbench(path: str | Path | None = None) -> HwNasBench:
    """HW-NAS-Bench's pickle at ``path`` (default: ``hwnasbench_path()``), checked and read once per file."""
    return _load_pickle(str(Path(path).expanduser().resolve() if path is not None else hwnasbench_path()))


@lru_cache(maxsize=2)
def _load_pickle(path: str) -> HwNasBench:
    fix = f"Use the benchmark's own file, {PICKLE_PARTS[-1]} from {PICKLE_SOURCE}."
    try:
        with open(path, "rb") as handle:
            data = _DataOnly(handle).load()
    except _Refused as exc:
        raise DatasetError(f"{path} is not HW-NAS-Bench's pickle: it names {exc}, which the benchmark's data "
                           "does not; refused, since loading it could run code.", fix) from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError) as exc:
        raise DatasetError(f"HW-NAS-Bench's pickle {path} cannot be read: {exc}.", fix) from None
    space = data.get("nasbench201") if isinstance(data, dict) else None
    nb201 = {name: _nb201_entries(path, space, name, fix) for name in NB201_DATASETS}
    archs = tuple(str(config.get("arch_str", "")) if isinstance(config, dict) else ""
                  for config in space["cifar10"]["config"])  # type: ignore[index]  # checked by _nb201_entries
    tables = _fbnet_tables(data.get("fbnet"), f"HW-NAS-Bench's pickle {path}", fix)
    return HwNasBench(path, MappingProxyType(nb201), archs,
                      MappingProxyType({arch: index for index, arch in enumerate(archs)}), tables)


def _nb201_entries(path: str, space: object, dataset: str, fix: str) -> Mapping[str, np.ndarray]:
    """One dataset's metrics as read-only float arrays of NB201_SIZE values; a ``DatasetError`` naming
    what is missing or of the wrong length."""
    entry = space.get(dataset) if isinstance(space, dict) else None
    if not isinstance(entry, dict):
        raise DatasetError(f"HW-NAS-Bench's pickle {path} has no NAS-Bench-201 entry for {dataset!r}.", fix)
    columns = {}
    for metric in (*NB201_METRICS, "config"):
        values = entry.get(metric)
        if values is None or len(values) != NB201_SIZE:
            found = "absent" if values is None else f"{len(values)} values"
            raise DatasetError(f"HW-NAS-Bench's pickle {path}: NAS-Bench-201 {dataset} {metric!r} should hold "
                               f"{NB201_SIZE} values, one per cell ({found}).", fix)
        if metric != "config":
            column = np.asarray(values, dtype=np.float64)
            column.flags.writeable = False
            columns[metric] = column
    return MappingProxyType(columns)


def query_nb201(index: int, dataset: str = "cifar10", bench: HwNasBench | None = None) -> dict[str, float]:
    """HW-NAS-Bench's costs of NAS-Bench-201 cell ``index`` (NAS-Bench-201's own numbering) on ``dataset``
    (``cifar10``, ``cifar100`` or ``ImageNet16-120``), with the API's keys: the ten metrics (ms, mJ;
    the arithmetic intensity as the file holds it, its unit unstated by the API) and
    ``average_hw_metric``, the product of all but the intensity. ``bench`` defaults to
    ``load_hwnasbench()``."""
    _check_index(index)
    name = nb201_dataset(dataset).name
    entry = (load_hwnasbench() if bench is None else bench).nb201[name]
    results = {metric: float(entry[metric][index]) for metric in NB201_METRICS}
    results[AVERAGE_METRIC] = math.prod(results[metric] for metric in NB201_AVERAGED)  # left to right, as the API
    return results


def nb201_index(arch: str | Sequence[int], bench: HwNasBench | None = None) -> int:
    """NAS-Bench-201's index of ``arch`` (its cell string or six op indices), read from the pickle's configs."""
    canonical = format_nb201(arch)
    index = (load_hwnasbench() if bench is None else bench).nb201_indices.get(canonical)
    if index is None:
        raise DatasetError(f"HW-NAS-Bench's pickle has no NAS-Bench-201 entry for the cell {canonical}.",
                           "Check the file is the complete benchmark (15,625 configs with their arch_str).")
    return index


def nb201_arch(index: int, bench: HwNasBench | None = None) -> str:
    """The cell string of NAS-Bench-201's cell ``index``, as the pickle's config records it."""
    _check_index(index)
    return (load_hwnasbench() if bench is None else bench).nb201_archs[int(index)]


def _check_index(index: object) -> None:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < NB201_SIZE:
        raise ConfigError(f"A NAS-Bench-201 index is an integer 0..{NB201_SIZE - 1}, got {index!r}.",
                          "Give NAS-Bench-201's index of the cell, or find it from the cell with nb201_index(arch).")
