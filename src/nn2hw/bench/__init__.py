"""Built-in benchmark spaces and HW-NAS-Bench's costs for them (no torch).

``fbnet``: the FBNet space (22 blocks x 9 candidate blocks) as nn2hw workloads and HW-NAS-Bench
table keys; ``hwnasbench``: HW-NAS-Bench's FBNet lookup-sum costs (``query_fbnet``).
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
from nn2hw.bench.hwnasbench import FBNET_METRICS, load_fbnet_tables, query_fbnet

__all__ = ["FBNET_DEPTH", "FBNET_LAYOUTS", "FBNET_METRICS", "FBNET_OPS", "FbnetOp", "fbnet_blocks",
           "fbnet_table_keys", "fbnet_workload", "load_fbnet_tables", "query_fbnet", "random_arch"]
