"""Heterogeneous chips: several sub-accelerators (NASAIC) running several DNNs, or the layers of
one DNN (HERALD), under global PE, DRAM-bandwidth and area budgets.

What is modelled, precisely:

- A chip is a set of sub-accelerators, each a design of one dataflow template (systolic,
  nvdla, shidiannao, eyeriss) with its own PEs, buffers and DRAM bandwidth, in one technology
  and at one clock. PEs, DRAM bandwidth and area of the chip are the sums over its subs.
- Several DNNs (``Mapping[str, Workload]``): each DNN runs entirely on one sub; DNNs on
  different subs run concurrently, DNNs sharing a sub run one after another. System latency =
  the slowest sub's busy time (the sum of the latencies of the DNNs it runs); energy = the sum
  over DNNs of their energy on their sub; area = the sum over subs.
- One DNN (HERALD-style): each layer runs on one sub; one input passes the layers in order, so
  the latency is the sum of the layer latencies on their subs (dependencies serialize them);
  ``pipeline_interval`` = the busiest sub's time is the steady-state interval when consecutive
  inputs are pipelined across the subs. Each layer goes to the sub that runs it fastest (ties:
  lower energy), and every sub must get at least one layer.
- Not modelled: contention between subs for the shared DRAM (each has its own bandwidth),
  inter-sub transfers of activations, leakage and idle energy.

The search (``explore``) enumerates, per template, a grid of sub designs (PE array shapes,
buffers, DRAM bandwidths), costs all layers of all DNNs on every candidate at once (vectorized),
prunes candidates dominated on (PEs, bandwidth, area, per-DNN latency and energy), then
enumerates every chip of ``n_subs`` candidates and every assignment with NumPy, and keeps the
chips that meet the budgets and specs. Deterministic: candidates and assignments are in a fixed
order and ties go to the first.
"""

from nn2hw.hardware.asic.hetero.chip import (
    HeteroDesign,
    SubAccelerator,
    SystemCost,
    SystemExploration,
    sub_template,
    sub_templates,
)
from nn2hw.hardware.asic.hetero.cost import cost_system, system_record
from nn2hw.hardware.asic.hetero.search import explore
from nn2hw.hardware.asic.hetero.template import HeteroTemplate

__all__ = ["HeteroDesign", "HeteroTemplate", "SubAccelerator", "SystemCost", "SystemExploration", "cost_system",
           "explore", "sub_template", "sub_templates", "system_record"]
