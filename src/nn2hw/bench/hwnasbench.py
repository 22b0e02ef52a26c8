"""HW-NAS-Bench's FBNet costs: the benchmark's own lookup sum over its per-operator tables.

HW-NAS-Bench (Li et al., ICLR 2021) prices an FBNet architecture as the sum of per-operator
entries (stem, 22 blocks, header, pool, classifier; ``fbnet_table_keys``) in one table per
device metric, and ``average_hw_metric`` as the product of the eight sums. The tables are the
pickle's ``'fbnet'`` entry dumped to JSON (``hw-nas-bench/fbnet_only/fbnet_cached_metrics.json``
under ``NN2HW_DATA``; see its SOURCE.md). Latencies are in ms, energies in mJ. The sums are
accumulated in the API's order, one float at a time, so they equal its outputs bit for bit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from nn2hw.bench.fbnet import fbnet_layout, fbnet_table_keys
from nn2hw.errors import ConfigError, DatasetError
from nn2hw.paths import DATA_ENV, search_dirs

FBNET_METRICS = ("edgegpu_latency", "edgegpu_energy", "raspi4_latency", "pixel3_latency", "eyeriss_latency",
                 "eyeriss_energy", "fpga_latency", "fpga_energy")
"""The FBNet tables' metrics, in the API's order (which is also the order of the product)."""
AVERAGE_METRIC = "average_hw_metric"
HWNASBENCH_FBNET_DATASETS = ("cifar100", "ImageNet")
"""The input settings HW-NAS-Bench's API prices in the FBNet space."""
TABLE_PARTS = ("hw-nas-bench", "fbnet_only", "fbnet_cached_metrics.json")

Tables = Mapping[str, Mapping[str, float]]


def fbnet_table_path() -> Path:
    """The first FBNet table file under the data root, then the cache; a ``DatasetError`` if none exists."""
    candidates = [folder / TABLE_PARTS[-1] for folder in search_dirs(*TABLE_PARTS[:-1])]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        looked = ", ".join(str(p) for p in candidates) or "nowhere (no data root set)"
        raise DatasetError(f"The HW-NAS-Bench FBNet tables were not found (looked in: {looked}).",
                           f"Set {DATA_ENV} to a folder holding {'/'.join(TABLE_PARTS)} (the project's "
                           "../shared/data has it), or pass the file's path.")
    return found


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
    missing = [m for m in FBNET_METRICS if not isinstance(data, dict) or not isinstance(data.get(m), dict)]
    if missing:
        raise DatasetError(f"The HW-NAS-Bench FBNet table file {path} lacks the tables {missing}.",
                           f"Use a file mapping each of {list(FBNET_METRICS)} to an operator table.")
    return MappingProxyType({m: MappingProxyType({str(k): float(v) for k, v in data[m].items()})
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
