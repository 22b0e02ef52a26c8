"""Built-in benchmark spaces and HW-NAS-Bench's costs for them (no torch).

``fbnet``: the FBNet space (22 blocks x 9 candidate blocks) as nn2hw workloads and HW-NAS-Bench
table keys; ``hwnasbench``: HW-NAS-Bench's FBNet lookup-sum costs (``query_fbnet``) and, from the
benchmark's pickle, its NAS-Bench-201 entries by index (``load_hwnasbench``, ``query_nb201``).
"""

from __future__ import annotations

from nn2hw.bench.fbnet import (
    FBNET_DEPTH,
    FBNET_LAYOUTS,
    FBNET_OPS,
    FbnetOp,
    fbnet_blocks,
    fbnet_table_keys,
    fbnet_workload,
    random_arch,
)
from nn2hw.bench.hwnasbench import (
    FBNET_METRICS,
    NB201_METRICS,
    HwNasBench,
    load_fbnet_tables,
    load_hwnasbench,
    nb201_arch,
    nb201_index,
    query_fbnet,
    query_nb201,
)

__all__ = ["FBNET_DEPTH", "FBNET_LAYOUTS", "FBNET_METRICS", "FBNET_OPS", "NB201_METRICS", "FbnetOp", "HwNasBench",
           "fbnet_blocks", "fbnet_table_keys", "fbnet_workload", "load_fbnet_tables", "load_hwnasbench", "nb201_arch",
           "nb201_index", "query_fbnet", "query_nb201", "random_arch"]
