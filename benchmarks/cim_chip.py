"""How close nn2hw's crossbar cost model comes to published whole-chip figures (issue 12 part 4).

nn2hw's ``cim`` template is configured like ISAAC-CE (Shafiee et al., ISCA 2016: 168 tiles of 12
IMAs x 8 crossbars of 128 x 128 2-bit ReRAM cells, one 8-bit 1.2 GS/s ADC per crossbar, 1-bit DACs,
16-bit weights and inputs, weights biased by 2^15 with a 129th unit column, here ``signed=offset``
with ``cols=129``) and fed one 16-bit linear layer that fills every crossbar of the chip, so every
array is read and every column converted in every step: the chip at its peak. Its area, power and
throughput are set against ISAAC's Table I and Table IV (the corrected version of October 2016).
nn2hw does not model ISAAC's off-chip HyperTransport links (22.88 mm^2, a constant 10.4 W), so the
chip rows add ISAAC's own HT figures to nn2hw's tiles; the 168-tile rows compare like with like.

Second published figure: NACIM's "up to 16.3 TOPS/W" (IEEE TC 2021, abstract). Its design point
(device, crossbar, ADC and weight bits, network) was not found in any source reachable here, so it
is checked only for lying inside the span of nn2hw's peak efficiency over the template's default
grid on ReRAM at 4 and 8 bits, a plausibility check and no validation. PRIME (ISCA 2016) publishes
only relative figures in what was reachable (about 2360x the performance and 895x less energy than
an NPU) and PipeLayer nothing; neither is compared.

    python benchmarks/cim_chip.py                    # the tables (1 s) and ResNet-20 for context (may load torch)
    python benchmarks/cim_chip.py --json chip.json   # the same as JSON
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import Any

from nn2hw.hardware import get_template
from nn2hw.hardware.cim.template import CimLayerCost, CimNetworkCost, CimTemplate
from nn2hw.workload import Layer, OpKind, Workload

ISAAC_CE: Mapping[str, Any] = {"rows": 128, "cols": 129, "cell_bits": 2, "adc_bits": 8, "dac_bits": 1,
                               "adcs_per_array": 1, "signed": "offset", "tiles": 168}
"""ISAAC-CE as an nn2hw ``cim`` design: 128 rows, 128 weight columns plus the unit column."""
ARRAYS_PER_TILE = 96
"""12 IMAs x 8 crossbars (ISAAC Table I), the template's tile."""
PEAK_BATCH = 64
"""Rows the full-chip layer is applied to: enough steps that the layer's fixed costs vanish."""

TABLE_I = ("ISAAC Table I (corrected Oct 2016 version), transcribed verbatim in dyigitpolat/mimarsinan "
           "docs/research/physics/isaac_constants_research.md @5c65ecb4 s1.1 [V-3p]")
TABLE_IV = ("ISAAC Table IV, ISAAC-CE row (HyperTransport included), same file s1.7 [V-3p]")
HT_AREA_MM2 = 22.88
"""ISAAC Table I, 'Hyper Tr' row: 4 links at 1.6 GHz, 6.4 GB/s each; not modelled by nn2hw."""
HT_POWER_W = 10.4
"""Same row; the paper calls it a constant overhead (not per byte moved)."""
NACIM_TOPS_PER_W = 16.3
NACIM_SOURCE = ("NACIM (Jiang et al., IEEE TC 70, 2021) abstract, 'up to 16.3 TOPS/W' [V-abs]: "
                "../shared/reference/co-design-papers.md s5 (paperswithcode.com, citegraph.io)")
NACIM_BITS = (4, 8)
"""Weight and input bits the NACIM span is taken at (NACIM searched quantized networks; its bits: Gap)."""
NEUROSIM_DEFAULT: Mapping[str, Any] = {"rows": 128, "cols": 128, "cell_bits": 4, "adc_bits": 5, "dac_bits": 1,
                                       "adcs_per_array": 1, "tiles": 1}
"""DNN+NeuroSim's inference defaults (the tool NACIM costs with): 128 x 128 sub-arrays, 4-bit cells,
5-bit ADC, 8-bit weights and activations (../shared/reference/next-capabilities.md C2 [V-code]);
bit-serial 1-bit inputs and the signed scheme are nn2hw's choices."""
NEUROSIM_BITS = 8

UNMODELLED_TILE_MW: Mapping[str, float] = {"IR (input registers)": 12 * 1.24, "OR (output registers)": 12 * 0.23 + 1.68,
                                           "S+H": 12 * 0.01, "sigmoid": 0.52, "max-pool": 0.4}
"""ISAAC Table I units nn2hw has no cost for, per tile (mW): the 12 IMAs' input and output registers
(and the tile's output register), sample-and-holds, the sigmoid and max-pool units."""
ISAAC_TILE_MW: Mapping[str, float] = {"adc": 12 * 16.0, "dac": 12 * 4.0, "crossbar": 12 * 2.4,
                                      "shift_add": 12 * 0.2 + 0.05, "edram": 20.7, "bus": 7.0, "router": 42.0 / 4}
"""ISAAC Table I per tile (mW) for the parts nn2hw models, by nn2hw's energy part (router: 1/4 shared)."""


@dataclass(frozen=True)
class Figure:
    """A published figure, nn2hw's, and the band the ratio nn2hw / published is held to (test)."""

    name: str
    unit: str
    published: float
    nn2hw: float
    band: tuple[float, float]
    source: str

    @property
    def ratio(self) -> float:
        return self.nn2hw / self.published

    @property
    def within_band(self) -> bool:
        return self.band[0] <= self.ratio <= self.band[1]


@dataclass(frozen=True)
class ChipPeak:
    """A design's chip with every crossbar busy: area (mm^2), power (W) by energy part, throughput."""

    tiles: int
    area_mm2: float
    power_w: Mapping[str, float]
    ops_per_s: float

    @property
    def total_power_w(self) -> float:
        return sum(self.power_w.values())

    @property
    def tops_per_w(self) -> float:
        return self.ops_per_s / self.total_power_w * 1e-12


def full_chip_layer(design: Mapping[str, Any], weight_bits: int = 16, input_bits: int = 16) -> Workload:
    """One linear layer that takes every crossbar of ``design``'s chip: ``96 x tiles`` arrays (pairs
    counted twice), one column block per tile with as many ``weight_bits``-bit channels as its data
    columns hold (the model packs a channel's slices across blocks)."""
    data_cols = design["cols"] - (design["signed"] == "offset")
    slices = math.ceil(weight_bits / design["cell_bits"])
    pair = 2 if design["signed"] == "differential" else 1
    if data_cols < slices:
        raise ValueError(f"{design} has fewer data columns than a {weight_bits}-bit weight has slices")
    rows = design["rows"] * ARRAYS_PER_TILE // pair
    channels = data_cols * design["tiles"] // slices
    x = Layer("x", OpKind.INPUT, (), "input", in_channels=rows, out_channels=rows)
    fc = Layer("fc", OpKind.LINEAR, ("x",), "Linear", batch=PEAK_BATCH, in_channels=rows, out_channels=channels,
               input_bits=input_bits, weight_bits=weight_bits, output_bits=16)
    return Workload("full-chip", (x, fc), (PEAK_BATCH, rows))


def cim_template() -> CimTemplate:
    template, _ = get_template("cim:reram")
    assert isinstance(template, CimTemplate)
    return template


def cim_cost(template: CimTemplate, workload: Workload, design: Mapping[str, Any],
             device: str = "reram") -> CimNetworkCost:
    cost = template.cost(workload, dict(design), device)
    assert isinstance(cost, CimNetworkCost)
    return cost


def chip_peak(template: CimTemplate, design: Mapping[str, Any], device: str = "reram",
              weight_bits: int = 16, input_bits: int = 16) -> ChipPeak:
    """``design``'s chip running :func:`full_chip_layer`: power is the layer's energy over its time."""
    cost = cim_cost(template, full_chip_layer(design, weight_bits, input_bits), design, device)
    layer = cost.layers[0]
    assert isinstance(layer, CimLayerCost)
    if cost.network_arrays != cost.chip_arrays:
        raise AssertionError(f"the full-chip layer takes {cost.network_arrays} arrays of {cost.chip_arrays}")
    seconds = layer.latency_ms * 1e-3
    return ChipPeak(tiles=design["tiles"], area_mm2=sum(cost.area_breakdown_mm2.values()),
                    power_w={k: v * 1e-3 / seconds for k, v in layer.energy_breakdown_mj.items()},
                    ops_per_s=2 * layer.macs / seconds)


def isaac_figures(peak: ChipPeak) -> list[Figure]:
    """ISAAC-CE's published tile and chip figures against ``peak`` (nn2hw's ISAAC-like chip).
    Bands: the ratio documented in docs/cim.md, about +-3 %."""
    tiles = peak.tiles
    tops = peak.ops_per_s * 1e-12
    chip_area = peak.area_mm2 + HT_AREA_MM2
    chip_power = peak.total_power_w + HT_POWER_W
    published_tops = 478.95 * 85.4 * 1e-3
    return [
        Figure("tile area", "mm^2", 0.372, peak.area_mm2 / tiles, (0.89, 0.94), TABLE_I + ", '1 Tile Total'"),
        Figure("tile power, all crossbars busy", "mW", 330.0, peak.total_power_w / tiles * 1e3, (0.79, 0.84),
               TABLE_I + ", '1 Tile Total'"),
        Figure("168-tile area", "mm^2", 62.5, peak.area_mm2, (0.89, 0.94), TABLE_I + ", '168 Tile Total'"),
        Figure("168-tile peak power", "W", 55.4, peak.total_power_w, (0.79, 0.84), TABLE_I + ", '168 Tile Total'"),
        Figure("chip area (nn2hw tiles + ISAAC's HT 22.88 mm^2)", "mm^2", 85.4, chip_area, (0.92, 0.96),
               TABLE_I + ", 'Chip Total'"),
        Figure("chip peak power (nn2hw tiles + ISAAC's HT 10.4 W)", "W", 65.8, chip_power, (0.82, 0.87),
               TABLE_I + ", 'Chip Total'"),
        Figure("peak 16-bit throughput", "TOP/s", published_tops, tops, (0.91, 0.96),
               "[D] Table IV CE x chip area: 478.95 x 85.4 mm^2 (same file s1.7)"),
        Figure("computational efficiency CE (HT included)", "GOP/s/mm^2", 478.95, tops * 1e3 / chip_area,
               (0.98, 1.04), TABLE_IV),
        Figure("power efficiency PE (HT included)", "GOP/s/W", 627.5, tops * 1e3 / chip_power, (1.09, 1.15),
               TABLE_IV),
    ]


def tile_power_parts(peak: ChipPeak) -> list[tuple[str, float | None, float]]:
    """Per tile, (part, nn2hw mW or None where not modelled, ISAAC Table I mW)."""
    rows: list[tuple[str, float | None, float]] = [
        (part, peak.power_w.get(part, 0.0) / peak.tiles * 1e3, mw) for part, mw in ISAAC_TILE_MW.items()]
    return rows + [(f"{part} (not modelled)", None, mw) for part, mw in UNMODELLED_TILE_MW.items()]


def nacim_figures(template: CimTemplate) -> list[Figure]:
    """NACIM's best energy efficiency against nn2hw's peak at NeuroSim's default design, with
    differential pairs and with an offset column (NACIM's own design point: Gap). Bands: the
    documented ratio, about +-5 %."""
    out = []
    for signed, band in (("differential", (0.27, 0.31)), ("offset", (0.52, 0.58))):
        peak = chip_peak(template, {**NEUROSIM_DEFAULT, "signed": signed}, "reram", NEUROSIM_BITS, NEUROSIM_BITS)
        out.append(Figure(f"energy efficiency, NeuroSim defaults w8a8, {signed}", "TOP/s/W", NACIM_TOPS_PER_W,
                          peak.tops_per_w, band, NACIM_SOURCE))
    return out


def nacim_span(template: CimTemplate, bits: Sequence[int] = NACIM_BITS) -> tuple[float, float]:
    """The lowest and highest peak TOP/s/W of the template's default grid (one tile each) on ReRAM
    with weights and inputs of each of ``bits``; designs that cannot hold a channel are skipped."""
    axes = {k: v for k, v in template.grid_axes.items() if k != "tiles"}
    efficiencies = []
    for combo, b in product(product(*axes.values()), bits):
        design = {**dict(zip(axes, combo)), "signed": "differential", "tiles": 1}
        try:
            efficiencies.append(chip_peak(template, design, "reram", b, b).tops_per_w)
        except ValueError:
            continue
    return min(efficiencies), max(efficiencies)


def network_context(template: CimTemplate, model: str = "resnet20",
                    dataset: str = "fashion-mnist") -> list[dict[str, Any]]:
    """A zoo network on the ISAAC-like chip and on the template's default ``cim:reram`` design."""
    from nn2hw.api import load_workload

    workload = load_workload(model, dataset)
    out = []
    for label, design in (("ISAAC-like, 168 tiles", ISAAC_CE), ("cim:reram defaults", {})):
        cost = cim_cost(template, workload, design)
        macs = sum(layer.macs for layer in cost.layers)
        energy_mj = sum(cost.energy_breakdown_mj().values())
        out.append({"network": f"{model} ({dataset})", "design": label, "latency_ms": cost.latency_ms,
                    "energy_mj": energy_mj, "area_mm2": sum(cost.area_breakdown_mm2.values()),
                    "arrays": cost.network_arrays, "tops_per_w": 2 * macs / (energy_mj * 1e-3) * 1e-12})
    return out


def print_report(figures: Sequence[Figure], parts: Sequence[tuple[str, float | None, float]],
                 span: tuple[float, float], networks: Sequence[Mapping[str, Any]]) -> None:
    print("| figure | unit | published | nn2hw | nn2hw / published | band | source |")
    print("|---|---|---|---|---|---|---|")
    for f in figures:
        flag = "" if f.within_band else " **outside**"
        print(f"| {f.name} | {f.unit} | {f.published:.4g} | {f.nn2hw:.4g} | {f.ratio:.3f}{flag} | "
              f"{f.band[0]:.2f}-{f.band[1]:.2f} | {f.source} |")
    print("\nPer tile, all crossbars busy (mW):\n\n| part | nn2hw | ISAAC Table I |\n|---|---|---|")
    for part, ours, theirs in parts:
        print(f"| {part} | {'-' if ours is None else f'{ours:.2f}'} | {theirs:.2f} |")
    inside = span[0] <= NACIM_TOPS_PER_W <= span[1]
    print(f"\nNACIM {NACIM_TOPS_PER_W} TOPS/W ({NACIM_SOURCE}): nn2hw's peak over the default grid on ReRAM at "
          f"w{NACIM_BITS[0]}a{NACIM_BITS[0]}..w{NACIM_BITS[-1]}a{NACIM_BITS[-1]} spans {span[0]:.2f}..{span[1]:.2f} "
          f"TOP/s/W: {'inside' if inside else 'OUTSIDE'} (a plausibility check; NACIM's design point: Gap)")
    print("\n| network | design | latency (ms) | energy (mJ) | area (mm^2) | arrays | TOP/s/W |")
    print("|---|---|---|---|---|---|---|")
    for n in networks:
        print(f"| {n['network']} | {n['design']} | {n['latency_ms']:.3f} | {n['energy_mj']:.4f} | "
              f"{n['area_mm2']:.2f} | {n['arrays']} | {n['tops_per_w']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the tables to this JSON file")
    parser.add_argument("--no-network", action="store_true", help="skip the zoo network (which may load torch)")
    args = parser.parse_args()
    template = cim_template()
    peak = chip_peak(template, ISAAC_CE)
    figures = isaac_figures(peak) + nacim_figures(template)
    parts, span = tile_power_parts(peak), nacim_span(template)
    networks = [] if args.no_network else network_context(template)
    print_report(figures, parts, span, networks)
    if args.json:
        args.json.write_text(json.dumps({
            "design": dict(ISAAC_CE), "figures": [{**asdict(f), "ratio": f.ratio, "within_band": f.within_band}
                                                   for f in figures],
            "tile_power_mw": [{"part": p, "nn2hw": o, "isaac": t} for p, o, t in parts],
            "nacim": {"published_tops_per_w": NACIM_TOPS_PER_W, "nn2hw_span": span, "source": NACIM_SOURCE},
            "networks": networks}, indent=2))
    if not all(f.within_band for f in figures):
        raise SystemExit("some figures left their documented bands (see the table): update docs/cim.md")


if __name__ == "__main__":
    main()
