"""Regenerate the peer golden files of the ASIC tests (needs the peer venvs; slow).

    .venv/bin/python tests/hardware/asic/golden/make_goldens.py scalesim resnet20
    .venv/bin/python tests/hardware/asic/golden/make_goldens.py zigzag resnet18

Writes ``scalesim_<net>.json`` / ``zigzag_<net>.json`` next to this file with the command, the
peer versions, the design and the exact peer inputs, and per layer its shape and the peer's
numbers. Peer runs are cached under $NN2HW_CACHE/peers (see nn2hw.peers), so rewriting a file
from earlier runs is instant.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from tests.hardware.asic.nets import resnet18, resnet20  # noqa: E402

from nn2hw.hardware.asic.arrays import LayerTable  # noqa: E402
from nn2hw.hardware.asic.systolic import SystolicDesign  # noqa: E402
from nn2hw.peers import peer_version  # noqa: E402

NETS = {"resnet20": resnet20, "resnet18": resnet18}
DATAFLOWS = ("ws", "os", "is")
SCALESIM_DESIGN = {"rows": 32, "cols": 32, "ifmap_kib": 64, "filter_kib": 64, "ofmap_kib": 64}
ZIGZAG_DESIGNS = {"resnet20": {"rows": 32, "cols": 32, "ifmap_kib": 64, "filter_kib": 64, "ofmap_kib": 64},
                  "resnet18": {"rows": 32, "cols": 32, "ifmap_kib": 512, "filter_kib": 512, "ofmap_kib": 1024}}
"""ZigZag compares energy, so each network gets buffers that hold its partial sums (see the doc)."""


def layer_record(layer) -> dict:
    record = layer.to_dict()
    record.pop("inputs")
    return record


def scalesim_golden(net: str) -> dict:
    from nn2hw.peers import scalesim

    workload = NETS[net]()
    table = LayerTable.from_workload(workload)
    layers = [{"layer": layer_record(x), "dataflows": {}} for x in workload.compute_layers]
    inputs = {}
    seconds = {}
    for flow in DATAFLOWS:
        design = SystolicDesign(dataflow=flow, **SCALESIM_DESIGN)
        result = scalesim.run(workload, design, timeout_s=3600)
        seconds[flow] = round(result.seconds, 1)
        inputs[flow] = {"config.cfg": scalesim.config_cfg(design)}
        for entry, peer in zip(layers, result.layers):
            entry["dataflows"][flow] = {"total_cycles": peer.total_cycles_reported,
                                        "compute_cycles": peer.compute_cycles,
                                        "stall_cycles": peer.stall_cycles, "dram_reads_ifmap": peer.dram_reads_ifmap,
                                        "dram_reads_filter": peer.dram_reads_filter,
                                        "dram_writes_ofmap": peer.dram_writes_ofmap}
    return {
        "about": f"SCALE-Sim per-layer cycles of {net} on a 32x32 array, CALC (no-stall) bandwidth mode.",
        "peer": f"scalesim {peer_version('scalesim')} (PyPI) with numpy<2.4, CPython {platform.python_version()}",
        "command": f".venv/bin/python tests/hardware/asic/golden/make_goldens.py scalesim {net}  (runs "
                   f"nn2hw.peers.scalesim.run: python -I _scalesim_driver.py, i.e. scalesim.scale_sim.scalesim("
                   f"save_disk_space=True).run_scale)",
        "design": SCALESIM_DESIGN, "peer_seconds": seconds, "topology.csv": scalesim.topology_csv(table),
        "inputs": inputs, "network": net,
        "note": "compute_cycles = SCALE-Sim 'Total Cycles' + 1 (it reports the 0-based index of the last cycle)",
        "layers": layers,
    }


def zigzag_golden(net: str) -> dict:
    import yaml

    from nn2hw.hardware.asic.technology import get_technology
    from nn2hw.peers import zigzag

    workload = NETS[net]()
    table = LayerTable.from_workload(workload)
    tech = get_technology("45nm")
    layers = [{"layer": layer_record(x), "dataflows": {}} for x in workload.compute_layers]
    inputs, seconds = {}, {}
    for flow in DATAFLOWS:
        design = SystolicDesign(dataflow=flow, **ZIGZAG_DESIGNS[net])
        result = zigzag.run(workload, design, tech, opt="energy", timeout_s=7200)
        seconds[flow] = round(result.seconds, 1)
        inputs[flow] = {"accelerator.yaml": yaml.safe_dump(zigzag.accelerator(design, tech), sort_keys=False),
                        "mapping.yaml": yaml.safe_dump(zigzag.mapping(table, design), sort_keys=False)}
        for entry, peer in zip(layers, result.layers):
            entry["dataflows"][flow] = {"energy_pj": peer.energy_pj, "latency_cycles": peer.latency_cycles,
                                        "ideal_cycles": peer.ideal_cycles, "spatial_mapping": peer.spatial_mapping}
    return {
        "about": f"ZigZag per-layer energy (pJ, by level) of {net} on the description equivalent to nn2hw's 32x32 "
                 f"systolic array in the 45nm technology, temporal mapping searched for minimum energy.",
        "peer": f"zigzag-dse {peer_version('zigzag')} (PyPI) with six, CPython {platform.python_version()}",
        "command": f".venv/bin/python tests/hardware/asic/golden/make_goldens.py zigzag {net}  (runs "
                   f"nn2hw.peers.zigzag.run: python -I _zigzag_driver.py, i.e. zigzag.api."
                   f"get_hardware_performance_zigzag(opt='energy'))",
        "design": ZIGZAG_DESIGNS[net], "technology": "45nm", "peer_seconds": seconds, "network": net,
        "workload.yaml": yaml.safe_dump(zigzag.workload_layers(table), sort_keys=False), "inputs": inputs,
        "layers": layers,
    }


def main() -> None:
    peer, net = sys.argv[1], sys.argv[2]
    data = scalesim_golden(net) if peer == "scalesim" else zigzag_golden(net)
    out = Path(__file__).with_name(f"{peer}_{net}.json")
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
