"""iDetect: which of output store (O), input load (I), weight load (W) or compute (C) limits a layer.

The rule is HotNAS's (reference notes 2.4), checked in this order: **O** when storing the output
tile takes at least as long as the whole input-channel loop (Lat2 == tO); else **I** when the
input load is the longest part of a step (Lat1 == tI); else **W** (Lat1 == tW); else **C**. The
FPGA template's per-component totals share their trip-count factors (I, W and C are per-step
times x ceil(N/Tn) x tiles, O is per-tile time x tiles), so the rule applied to the totals is the
rule applied to the steps.
"""

from __future__ import annotations

from collections.abc import Mapping

BOTTLENECKS = {"O": "storing output", "I": "loading input", "W": "loading weights", "C": "computing"}
"""The FPGA template's bottleneck vocabulary: letter -> meaning."""
COMPONENTS = ("input", "weight", "output", "compute")
"""Keys of ``LayerCost.breakdown_cycles`` the rule reads (total cycles of each activity)."""


def classify(breakdown: Mapping[str, float]) -> str:
    """The bottleneck letter of one layer from its input/weight/output/compute totals."""
    t_in, t_weight, t_out, t_comp = (float(breakdown[k]) for k in COMPONENTS)
    step = max(t_in, t_weight, t_comp)
    if t_out >= step:
        return "O"
    if t_in == step:
        return "I"
    if t_weight == step:
        return "W"
    return "C"
