"""ZigZag adapter: a ``Workload`` + ``SystolicDesign`` + technology -> ZigZag inputs -> nn2hw records.

ZigZag (zigzag-dse 3.9.1) searches the temporal mapping of each layer on an accelerator
description and reports energy per memory level and latency. The adapter writes the
*equivalent* description of an nn2hw systolic design, so that energies compare like for like:

- operational array ``rows`` x ``cols`` (D1 x D2), unit energy = the technology's MAC energy;
- a one-word register per PE for the stationary operand only (ws: W, os: O, is: I), at the
  technology's register energy; the moving operands are read from their buffer and broadcast
  along the array (served dimensions D1, D2), as in nn2hw's model;
- three buffers (ifmap I1, filter I2, ofmap O) of the design's sizes at the technology's
  per-word buffer energy for that size, and DRAM at its per-word energy and the design's
  bandwidth. Every port has a one-word minimum width, so an access costs per word moved;
- the spatial mapping of the dataflow: ws D1 <- C,FY,FX (the im2col window) and D2 <- K; os
  D1 <- OX,OY (pixels) and D2 <- K; is D1 <- C,FY,FX and D2 <- OX,OY, with the factors that
  need the fewest temporal iterations (as im2col folding does; see ``_unroll``).

ZigZag then searches loop orders (``opt='energy'`` by default). It models no interconnect
energy; neither does nn2hw's systolic template.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from nn2hw.errors import ConfigError
from nn2hw.hardware.asic.arrays import LayerTable
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.hardware.asic.technology import Technology, get_technology
from nn2hw.hardware.records import LayerCost, NetworkCost
from nn2hw.peers._runner import run_driver
from nn2hw.peers.base import BACKENDS, PeerBackend
from nn2hw.workload import Workload

OPTS = ("energy", "latency", "EDP")
STATIONARY = {"ws": "I2", "os": "O", "is": "I1"}


def _port(name: str, kind: str, word: int, width: int, alloc: list[str]) -> dict[str, Any]:
    return {"name": name, "type": kind, "bandwidth_min": word, "bandwidth_max": max(word, width), "allocation": alloc}


def _memory(size_bits: int, pj_per_word: float, word: int, width: int, operands: list[str], served: list[str],
            shared_port: bool = False) -> dict[str, Any]:
    """A memory whose accesses cost ``pj_per_word`` per ``word`` bits moved. ZigZag charges r/w_cost per
    access of the full port width and counts accesses as words x (min width / max width), so the
    cost per access is the per-word energy times the words in the full width."""
    reads = [f"{op}, {d}" for op in operands for d in (("tl", "th") if op == "O" else ("tl",))]
    writes = [f"{op}, {d}" for op in operands for d in (("fh", "fl") if op == "O" else ("fh",))]
    if shared_port:
        ports = [_port("rw_port_1", "read_write", word, width, reads + writes)]
    elif operands == ["O"] and not served:  # a PE's accumulator register: one port per direction
        ports = [_port("r_port_1", "read", word, width, ["O, tl"]), _port("r_port_2", "read", word, width, ["O, th"]),
                 _port("w_port_1", "write", word, width, ["O, fh"]), _port("w_port_2", "write", word, width, ["O, fl"])]
    else:
        ports = [_port("r_port_1", "read", word, width, reads), _port("w_port_1", "write", word, width, writes)]
    per_access = float(pj_per_word) * max(word, width) / word
    return {"size": int(size_bits), "r_cost": per_access, "w_cost": per_access, "area": 0.0,
            "latency": 1, "operands": operands, "ports": ports, "served_dimensions": served}


def accelerator(design: SystolicDesign, tech: Technology) -> dict[str, Any]:
    """ZigZag's accelerator description equivalent to ``design`` in ``tech``."""
    wb = tech.word_bits
    kib_bits = 8192
    stationary = STATIONARY[design.dataflow]
    memories = {"reg": _memory(wb, tech.rf_pj, wb, wb, [stationary], [])}
    for name, op, kib, width in (("ifmap_sram", "I1", design.ifmap_kib, design.rows),
                                 ("filter_sram", "I2", design.filter_kib, design.rows * design.cols),
                                 ("ofmap_sram", "O", design.ofmap_kib, design.cols)):
        memories[name] = _memory(kib * kib_bits, float(tech.sram_word_pj(kib)), wb, wb * width, [op], ["D1", "D2"])
    memories["dram"] = _memory(10**12, tech.dram_pj, wb, int(wb * max(1.0, design.dram_bw)), ["I1", "I2", "O"],
                               ["D1", "D2"], shared_port=True)
    return {"name": f"nn2hw_systolic_{design.dataflow}_{design.rows}x{design.cols}", "memories": memories,
            "operational_array": {"unit_energy": tech.mac_pj, "unit_area": 1.0, "dimensions": ["D1", "D2"],
                                  "sizes": [design.rows, design.cols]}}


def _unroll(dims: list[tuple[str, int]], size: int) -> list[str]:
    """Spatial factors of ``dims`` (each at most its loop size, product at most ``size``) that need
    the fewest temporal iterations (product of ceil(loop / factor)), as im2col folding does; ties
    prefer a fuller array, then larger factors on earlier dims. ZigZag splits a factor that does not
    divide its loop evenly over the iterations ("uneven" mapping)."""
    best: tuple[float, int, tuple[int, ...]] | None = None
    for combo in itertools.product(*(range(1, min(n, size) + 1) for _, n in dims)):
        product = math.prod(combo)
        if product > size:
            continue
        iterations = math.prod(-(-n // f) for (_, n), f in zip(dims, combo))
        key = (iterations, -product, tuple(-f for f in combo))
        if best is None or key < best:
            best = key
    factors = [-f for f in best[2]] if best else [1] * len(dims)
    out = [f"{name}, {f}" for (name, _), f in zip(dims, factors) if f > 1]
    return out or [f"{dims[0][0]}, 1"]


def mapping(table: LayerTable, design: SystolicDesign) -> list[dict[str, Any]]:
    """One ZigZag mapping entry per layer (named as the layer) with the dataflow's spatial unrolling."""
    entries = []
    links = {"O": "O", "W": "I2", "I": "I1"}
    for i, name in enumerate(table.names):
        window = [("C", int(table.C[i])), ("FX", int(table.S[i])), ("FY", int(table.R[i]))]
        pixels = [("OX", int(table.F[i])), ("OY", int(table.E[i])), ("B", int(table.N[i]))]
        filters = [("K", int(table.K[i]))]
        d1, d2 = {"ws": (window, filters), "os": (pixels, filters), "is": (window, pixels)}[design.dataflow]
        entries.append({"name": _zz_name(name), "spatial_mapping": {"D1": _unroll(d1, design.rows),
                                                                    "D2": _unroll(d2, design.cols)},
                        "memory_operand_links": links})
    entries.append({"name": "default", "spatial_mapping": {"D1": [f"C, {design.rows}"], "D2": [f"K, {design.cols}"]},
                    "memory_operand_links": links})
    return entries


def _zz_name(name: str) -> str:
    return "L_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def workload_layers(table: LayerTable) -> list[dict[str, Any]]:
    """ZigZag's layer list: each conv/linear layer as a (grouped) convolution, no padding (its input
    is the extent the convolution reads, as in nn2hw's model)."""
    layers = []
    for i, name in enumerate(table.names):
        grouped = table.G[i] > 1
        g = "[g]" if grouped else ""
        dims = (["B"] + (["G"] if grouped else []) + ["K", "C", "OY", "OX", "FY", "FX"])
        sizes = ([int(table.N[i])] + ([int(table.G[i])] if grouped else [])
                 + [int(v[i]) for v in (table.K, table.C, table.E, table.F, table.R, table.S)])
        layers.append({
            "id": i, "name": _zz_name(name), "operator_type": "Conv",
            "equation": f"O[b]{g}[k][oy][ox]+=W{g}[k][c][fy][fx]*I[b]{g}[c][iy][ix]",
            "dimension_relations": [f"ix={int(table.stride_w[i])}*ox+1*fx", f"iy={int(table.stride_h[i])}*oy+1*fy"],
            "loop_dims": dims, "loop_sizes": sizes,
            "operand_precision": {"W": int(table.w_bits[i]), "I": int(table.in_bits[i]), "O": int(table.out_bits[i]),
                                  "O_final": int(table.out_bits[i])},
            "operand_source": {"I": i, "W": i},
        })
    return layers


@dataclass(frozen=True)
class ZigZagLayer:
    """ZigZag's result for one layer: energy per nn2hw level (pJ), latency (cycles, with its
    on/off-loading and stalls) and ideal cycles, plus its raw per-memory numbers."""

    name: str
    macs: int
    energy_pj: dict[str, float]
    latency_cycles: float
    ideal_cycles: float
    spatial_mapping: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass(frozen=True)
class ZigZagResult:
    layers: tuple[ZigZagLayer, ...]
    design: SystolicDesign
    technology: str
    seconds: float
    cached: bool
    workdir: str

    @property
    def energy_mj(self) -> float:
        return sum(layer.energy_total_pj for layer in self.layers) * 1e-9

    def energy_breakdown_mj(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for layer in self.layers:
            for k, v in layer.energy_pj.items():
                out[k] = out.get(k, 0.0) + v * 1e-9
        return out

    def to_network_cost(self, clock_mhz: float = 1000.0) -> NetworkCost:
        """The result as nn2hw records (device 'zigzag'; cycles = ZigZag's latency_total2)."""
        per_ms = 1.0 / (clock_mhz * 1e3)
        layers = tuple(LayerCost(name=x.name, op="conv", macs=x.macs, cycles=x.latency_cycles,
                                 latency_ms=x.latency_cycles * per_ms, bottleneck="compute",
                                 breakdown_cycles={"compute_cycles": x.ideal_cycles},
                                 energy_mj=x.energy_total_pj * 1e-9,
                                 engine="zigzag") for x in self.layers)
        return NetworkCost(template="systolic", device="zigzag", design=self.design.to_dict(), clock_mhz=clock_mhz,
                           layers=layers,
                           notes=(f"ZigZag 3.9.1 ({self.seconds:.1f} s{', cached' if self.cached else ''})",))


def _level(memory: str) -> str:
    return "rf" if memory == "reg" else "dram" if memory == "dram" else "sram"


def run(workload: Workload, design: SystolicDesign, technology: str | Technology | None = None, *, opt: str = "energy",
        timeout_s: float = 1800, use_cache: bool = True) -> ZigZagResult:
    """Run ZigZag on ``workload`` for the description equivalent to ``design`` in ``technology``."""
    if opt not in OPTS:
        raise ConfigError(f"ZigZag opt must be one of {', '.join(OPTS)}, got {opt!r}.", "Use opt='energy'.")
    tech = get_technology(technology)
    table = LayerTable.from_workload(workload)
    dump = lambda data: yaml.safe_dump(data, sort_keys=False)  # noqa: E731  ZigZag reads memories in file order
    inputs = {"workload.yaml": dump(workload_layers(table)), "accelerator.yaml": dump(accelerator(design, tech)),
              "mapping.yaml": dump(mapping(table, design))}
    peer = run_driver("zigzag", "_zigzag_driver.py", inputs, [opt], timeout_s=timeout_s, use_cache=use_cache)
    by_name = {x["name"]: x for x in peer.data["layers"]}
    layers = []
    for i, name in enumerate(table.names):
        raw = by_name[_zz_name(name)]
        energy = {"mac": raw["mac_energy"], "rf": 0.0, "sram": 0.0, "dram": 0.0}
        for key, value in raw["energy_by_memory"].items():
            energy[_level(key.split("@", 1)[1])] += value
        layers.append(ZigZagLayer(name=name, macs=int(table.macs[i]), energy_pj=energy,
                                  latency_cycles=raw["latency_total2"],
                                  ideal_cycles=raw["ideal_cycle"], spatial_mapping=raw["spatial_mapping"], raw=raw))
    return ZigZagResult(tuple(layers), design, tech.name, peer.seconds, peer.cached, str(peer.workdir))


def _cost(workload: Workload, design: SystolicDesign, tech: Technology, clock_mhz: float,
          timeout_s: float) -> NetworkCost:
    return run(workload, design, tech, timeout_s=timeout_s).to_network_cost(clock_mhz)


BACKENDS.register("zigzag", PeerBackend(
    "zigzag", "ZigZag 3.9.1: latency and energy per layer of the equivalent systolic description",
    ("zigzag-dse==3.9.1", "six"), ("systolic",), _cost))
