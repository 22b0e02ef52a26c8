"""SCALE-Sim adapter: a ``Workload`` + ``SystolicDesign`` -> SCALE-Sim inputs -> nn2hw records.

SCALE-Sim (scalesim 3.0.0) simulates a systolic array cycle by cycle. The adapter writes

- ``topology.csv``: one row per conv/linear layer of ONE group (SCALE-Sim has no groups and no
  padding): ifmap H+2P, W+2P, filter R, S, channels C/groups, filters K/groups, stride; a linear
  layer with N rows is an N x 1 map with 1 x 1 filters. Cycles and accesses of a grouped layer are
  its groups' sum (identical groups run one after another);
- ``config.cfg``: the array size, dataflow and SRAM sizes of the design, ``InterfaceBandwidth =
  CALC`` (SCALE-Sim sizes DRAM bandwidth so that nothing stalls: its cycles are compute cycles);
- ``layout.csv``: the default data layout (SCALE-Sim requires the file even when unused);

runs it in its own venv and reads COMPUTE_REPORT / DETAILED_ACCESS_REPORT. SCALE-Sim's "Total
Cycles" is the 0-based index of the last busy cycle, so compute cycles = Total Cycles + 1.
SCALE-Sim applies a stride to both axes and has no dilation or batch for convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

from nn2hw.errors import ConfigError
from nn2hw.hardware.asic.arrays import LayerTable
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.records import LayerCost, NetworkCost
from nn2hw.peers._runner import PeerRun, run_driver
from nn2hw.peers.base import BACKENDS, PeerBackend
from nn2hw.workload import Workload

LAYOUT_FIELDS = 20


def topology_csv(table: LayerTable) -> str:
    """SCALE-Sim's conv topology: one row per layer (one group of it), padding folded into H, W."""
    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
    for i, name in enumerate(table.names):
        if table.stride_h[i] != table.stride_w[i]:
            raise ConfigError(f"Layer {name!r} has strides {table.stride_h[i]}x{table.stride_w[i]}; SCALE-Sim "
                              f"applies one stride to both axes.", "Cross-check layers with square strides only.")
        if table.is_linear[i]:
            h, w = int(table.N[i]), 1
        else:
            if table.N[i] != 1:
                raise ConfigError(f"Layer {name!r} has batch {table.N[i]}; SCALE-Sim's conv topology has no batch.",
                                  "Cross-check with batch 1.")
            h, w = int(table.Hp[i]), int(table.Wp[i])
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)
        lines.append(f"{safe}, {h}, {w}, {table.R[i]}, {table.S[i]}, {table.C[i]}, {table.K[i]}, {table.stride_h[i]},")
    return "\n".join(lines) + "\n"


def layout_csv(table: LayerTable) -> str:
    header = "Layer name," + ",".join(f"field{i}" for i in range(LAYOUT_FIELDS)) + ",\n"
    row = "1, 1, 1, 1, 1, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3,"
    return header + "".join(f"layer{i}, {row}\n" for i in range(len(table)))


def config_cfg(design: SystolicDesign) -> str:
    return f"""[general]
run_name = nn2hw

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {design.rows}
ArrayWidth = {design.cols}
ifmapsramszkB = {design.ifmap_kib}
filtersramszkB = {design.filter_kib}
ofmapsramszkB = {design.ofmap_kib}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {design.dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32
Bandwidth = 10

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
"""


@dataclass(frozen=True)
class ScaleSimLayer:
    """SCALE-Sim's numbers for one layer (all groups): compute cycles (Total Cycles + 1), its raw
    Total Cycles and stall cycles, and its SRAM/DRAM access counts (words of its 1-byte word)."""

    name: str
    macs: int
    compute_cycles: float
    total_cycles_reported: float
    stall_cycles: float
    sram_reads_ifmap: float
    sram_reads_filter: float
    sram_writes_ofmap: float
    dram_reads_ifmap: float
    dram_reads_filter: float
    dram_writes_ofmap: float


@dataclass(frozen=True)
class ScaleSimResult:
    layers: tuple[ScaleSimLayer, ...]
    design: SystolicDesign
    seconds: float
    cached: bool
    workdir: str

    @property
    def compute_cycles(self) -> float:
        return sum(layer.compute_cycles for layer in self.layers)

    def to_network_cost(self, workload_name: str = "", clock_mhz: float = 1000.0) -> NetworkCost:
        """The result as nn2hw records (device 'scalesim'; no energy: SCALE-Sim counts accesses only)."""
        per_ms = 1.0 / (clock_mhz * 1e3)
        layers = tuple(LayerCost(name=x.name, op="conv", macs=x.macs, cycles=x.compute_cycles,
                                 latency_ms=x.compute_cycles * per_ms, bottleneck="compute",
                                 breakdown_cycles={"compute_cycles": x.compute_cycles, "stall_cycles": x.stall_cycles},
                                 engine="scalesim") for x in self.layers)
        return NetworkCost(template="systolic", device="scalesim", design=self.design.to_dict(), clock_mhz=clock_mhz,
                           layers=layers, notes=(f"SCALE-Sim 3.0.0 run of {workload_name or 'the workload'} "
                                                 f"({self.seconds:.1f} s{', cached' if self.cached else ''})",))


def run(workload: Workload, design: SystolicDesign, *, timeout_s: float = 1800,
        use_cache: bool = True) -> ScaleSimResult:
    """Run SCALE-Sim on the conv/linear layers of ``workload`` for ``design`` (compute cycles, no stalls)."""
    table = LayerTable.from_workload(workload)
    inputs = {"topology.csv": topology_csv(table), "layout.csv": layout_csv(table), "config.cfg": config_cfg(design)}
    peer: PeerRun = run_driver("scalesim", "_scalesim_driver.py", inputs, timeout_s=timeout_s, use_cache=use_cache)
    compute = peer.data["COMPUTE_REPORT"]
    access = peer.data["DETAILED_ACCESS_REPORT"]
    layers = []
    for i, name in enumerate(table.names):
        g = float(table.G[i])
        c, a = compute[i], access[i]
        layers.append(ScaleSimLayer(
            name=name, macs=int(table.macs[i]), compute_cycles=g * (c["Total Cycles"] + 1),
            total_cycles_reported=g * c["Total Cycles"], stall_cycles=g * c["Stall Cycles"],
            sram_reads_ifmap=g * a["SRAM IFMAP Reads"],
            sram_reads_filter=g * a["SRAM Filter Reads"], sram_writes_ofmap=g * a["SRAM OFMAP Writes"],
            dram_reads_ifmap=g * a["DRAM IFMAP Reads"], dram_reads_filter=g * a["DRAM Filter Reads"],
            dram_writes_ofmap=g * a["DRAM OFMAP Writes"]))
    return ScaleSimResult(tuple(layers), design, peer.seconds, peer.cached, str(peer.workdir))


def _cost(workload: Workload, design: SystolicDesign, tech: Technology, clock_mhz: float,
          timeout_s: float) -> NetworkCost:
    return run(workload, design, timeout_s=timeout_s).to_network_cost(workload.name, clock_mhz)


BACKENDS.register("scalesim", PeerBackend(
    "scalesim", "SCALE-Sim 3.0.0: compute cycles per layer of a systolic design (no energy)",
    ("scalesim==3.0.0", "numpy<2.4"), ("systolic",), _cost))
