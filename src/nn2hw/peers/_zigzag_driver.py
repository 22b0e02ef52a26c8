"""Run ZigZag on workload.yaml / accelerator.yaml / mapping.yaml in a folder; write per-layer JSON.

Executed by nn2hw with ZigZag's own Python (``python _zigzag_driver.py FOLDER OPT``, OPT one of
energy, latency, EDP); it imports only the standard library and zigzag.
"""

import io
import json
import logging
import sys
from contextlib import redirect_stdout
from pathlib import Path


def accesses(cme) -> dict:
    out = {}
    hierarchy = cme.accelerator.memory_hierarchy
    for layer_op, per_level in cme.memory_word_access.items():
        mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
        levels = hierarchy.get_memory_levels(mem_op=mem_op)
        for count, level in zip(per_level, levels):
            name = f"{layer_op}@{level.name}"
            out[name] = {str(k.value if hasattr(k, "value") else k): float(v) for k, v in count.data.items()}
    return out


def energies(cme) -> dict:
    out = {}
    hierarchy = cme.accelerator.memory_hierarchy
    for layer_op, per_level in cme.mem_energy_breakdown.items():
        mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
        levels = hierarchy.get_memory_levels(mem_op=mem_op)
        for value, level in zip(per_level, levels):
            out[f"{layer_op}@{level.name}"] = float(value)
    return out


def main(folder: str, opt: str) -> None:
    from zigzag.api import get_hardware_performance_zigzag  # the peer's own package

    work = Path(folder)
    logging.disable(logging.WARNING)
    with redirect_stdout(io.StringIO()):
        _, _, cmes = get_hardware_performance_zigzag(
            str(work / "workload.yaml"), str(work / "accelerator.yaml"), str(work / "mapping.yaml"),
            opt=opt, dump_folder=str(work / "out"), loma_show_progress_bar=False)
    layers = []
    for cme, _ in cmes[0][1]:
        layers.append({
            "name": cme.layer.name, "energy_total": float(cme.energy_total), "mac_energy": float(cme.mac_energy),
            "mem_energy": float(cme.mem_energy), "energy_by_memory": energies(cme), "accesses": accesses(cme),
            "latency_total0": float(cme.latency_total0), "latency_total2": float(cme.latency_total2),
            "ideal_cycle": float(cme.ideal_cycle), "ideal_temporal_cycle": float(cme.ideal_temporal_cycle),
            "spatial_mapping": str(cme.spatial_mapping), "temporal_mapping": str(cme.temporal_mapping),
        })
    (work / "driver_output.json").write_text(json.dumps({"layers": layers}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "energy")
