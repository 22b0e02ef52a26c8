"""The ``chunk`` template: DNA/Auto-NBA's chunk-pipelined FPGA accelerator (reference notes §6).

Layers are allocated to sub-accelerators by (bit width, depthwise or not, feature size >= 16 on
CIFAR-sized inputs or >= 28 on ImageNet-sized ones: ``a0``, else ``a1``); the sub-accelerators run as
a pipeline of chunks, so the network's period is the slowest stage (the sum of its layers'
latencies) and ``FPS = clock / bottleneck cycles`` (200 MHz). DSPs and BRAM banks add up over the
sub-accelerators (a stage uses the most any of its layers needs) against the board's limits (ZC706
in the reference: 900 DSP, 700 BRAM). ``explore`` costs every sub-accelerator's grid at once and
picks, exactly, the design whose slowest stage is fastest within both limits (``pipeline``).
docs/chunk-accelerator.md has the formulas and the choices where the reference is silent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from nn2hw._checks import as_bool, as_choice, as_float, as_int
from nn2hw.errors import ConfigError, HardwareError, InfeasibleError
from nn2hw.hardware.base import TRANSFORMER_SPACE_OPTIONS, HardwareTemplate, Option, with_transformer_remedies
from nn2hw.hardware.chunk.design import (
    BITS,
    FIELDS,
    SPLIT,
    ChunkDesign,
    default_axes,
    design_arrays,
    enumerate_designs,
    parse_design,
    stage_name,
    sub_at,
)
from nn2hw.hardware.chunk.model import MODES, LayerShape, bram_use, dsp_use, layer_components
from nn2hw.hardware.chunk.pipeline import StageGrid, fitting_sums, stage_front, stage_grid
from nn2hw.hardware.records import Execution, Exploration, LayerCost, NetworkCost, ResourceUse, Uncosted
from nn2hw.hardware.select import MAX_PARETO, pareto_front
from nn2hw.workload import Layer, OpKind, Workload

DEVICES = {"zc706": {"dsp": 900, "bram": 700}}
"""The reference's platform limits (``platform_specs``): DSPs and 18 Kb BRAM banks."""
CLOCK_MHZ = 200.0
"""Auto-NBA's clock: FPS = 200e6 / bottleneck cycles."""
LAYOUTS = tuple(SPLIT)
ACTIVITIES = ("compute", "ifm", "weight", "write")
"""A layer record's ``breakdown_cycles`` keys: total cycles of each activity."""

BOTTLENECKS = {
    "compute": "the PE array's MAC cycles are the longest part of each step",
    "ifm-load": "loading input tiles (ceil(Tn_b*tri*tci/bw) words) outlasts the compute it overlaps",
    "weight-load": "loading weight tiles, which does not overlap compute, is the longest part",
    "write": "writing and clearing the output buffer is the longest part",
    "stage-imbalance": "the layer runs on a pipeline stage that waits for the slowest one: shortening it does "
                       "not raise the frame rate (move work off the slowest stage instead)",
}
"""The chunk template's bottleneck vocabulary: a layer on the slowest stage takes the largest of its
four activity totals; every other layer is bound by the stage imbalance."""

EXECUTION = {
    OpKind.CONV: Execution.ARRAY, OpKind.LINEAR: Execution.ARRAY, OpKind.MATMUL: Execution.HOST,
    OpKind.EMBED: Execution.OMITTED, OpKind.SOFTMAX: Execution.OMITTED, OpKind.POOL: Execution.OMITTED,
    OpKind.ELTWISE: Execution.OMITTED, OpKind.ACT: Execution.FUSED, OpKind.NORM: Execution.FUSED,
    OpKind.RESHAPE: Execution.LAYOUT, OpKind.CONCAT: Execution.LAYOUT, OpKind.PAD: Execution.LAYOUT,
    OpKind.SLICE: Execution.LAYOUT,
}
REASONS = {
    OpKind.MATMUL: "product of two activations: the chunk accelerator runs layers with weights; left to the host",
    OpKind.EMBED: "embedding lookup: outside Auto-NBA's model, which costs convolutions only",
    OpKind.SOFTMAX: "softmax: outside Auto-NBA's model, which costs convolutions only",
    OpKind.POOL: "pooling: outside Auto-NBA's model, which costs convolutions only",
    OpKind.ELTWISE: "element-wise op (residual add...): outside Auto-NBA's model, it streams through the output",
}


OPTIONS = (
    Option("dsp", partial(as_int, what="dsp"), "override the device's DSP limit (zc706: 900)"),
    Option("bram", partial(as_int, what="bram"), "override the device's 18 Kb BRAM bank limit (zc706: 700)"),
    Option("clock_mhz", partial(as_float, what="clock_mhz"), f"clock in MHz (default {CLOCK_MHZ:g}, as Auto-NBA)"),
    Option("layout", lambda v: as_choice(v, "layout", LAYOUTS),
           "cifar (a0 from 16 rows, CIFAR design choices) or imagenet (from 28 rows); default: cifar for inputs "
           "up to 32 pixels, else imagenet"),
    Option("weight_bram", lambda v: as_bool(v, "weight_bram"),
           "count weight buffers in BRAM in modes 0/1 too (default false: Auto-NBA's code counts them only in "
           "the row mode)"),
)


@dataclass(frozen=True)
class Placed:
    """A layer the array runs: its model shape, bit width and sub-accelerator."""

    layer: Layer
    shape: LayerShape
    bits: int
    stage: str


@dataclass(frozen=True)
class Allocation:
    """The network split over sub-accelerators (in order of first use), and what runs elsewhere."""

    placed: tuple[Placed, ...]
    uncosted: tuple[Uncosted, ...]
    stages: tuple[str, ...] = ()

    def layers_of(self, stage: str) -> tuple[Placed, ...]:
        return tuple(p for p in self.placed if p.stage == stage)

    def kind(self, stage: str) -> tuple[bool, bool, int]:
        """(depthwise, large maps, bits) of a sub-accelerator."""
        first = self.layers_of(stage)[0]
        return first.shape.depthwise, stage.startswith(("a0", "dwa0")), first.bits


def layer_bits(layer: Layer) -> int:
    """The datapath width a layer needs: its weights' and input activations' widest, rounded up to
    the next of ``BITS`` (Auto-NBA quantizes both to one q; unquantized 16-bit layers run at 16)."""
    bits = max(layer.weight_bits, layer.input_bits)
    if bits > BITS[-1]:
        raise HardwareError(f"Layer {layer.name!r} has {bits}-bit operands; the chunk accelerator's widest "
                            f"datapath is {BITS[-1]} bits.", f"Quantize the layer to {BITS[-1]} bits or fewer.")
    return min(q for q in BITS if q >= bits)


def layer_shape(layer: Layer) -> LayerShape:
    """``[N, M, R, K]`` of a conv (grouped: one group, repeated) or a linear layer (a 1x1 conv over its
    positions); the batch repeats the layer."""
    if layer.kind is OpKind.LINEAR:
        rows = max(layer.out_h, 1) * max(layer.out_w, 1)
        return LayerShape(layer.in_channels, layer.out_channels, rows, 1, 1, 1, 1, 1, False, max(layer.batch, 1))
    depthwise = layer.conv_type == "depthwise"
    groups = 1 if depthwise else layer.groups
    extent_h = layer.dilation_h * (layer.kernel_h - 1) + 1
    extent_w = layer.dilation_w * (layer.kernel_w - 1) + 1
    return LayerShape(1 if depthwise else layer.in_channels / groups,
                      layer.out_channels if depthwise else layer.out_channels / groups,
                      layer.out_h, layer.out_w, layer.kernel_h, layer.kernel_w, extent_h, extent_w, depthwise,
                      groups * max(layer.batch, 1))


def default_layout(workload: Workload) -> str:
    """cifar for inputs up to 32 pixels a side (CIFAR, Fashion-MNIST), imagenet above."""
    sides = [layer.out_h for layer in workload.layers if layer.kind is OpKind.INPUT]
    side = workload.input_shape[-1] if len(workload.input_shape) >= 3 else (sides[0] if sides else 32)
    return "cifar" if side <= 32 else "imagenet"


def _grid_values(grid: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """``explore``'s grid restriction: field -> checked values (a comma list or a sequence)."""
    unknown = [k for k in grid if k not in FIELDS]
    if unknown:
        raise ConfigError(f"The chunk template has no design field {unknown[0]!r}.",
                          f"Its design fields: {', '.join(FIELDS)}.")
    values: dict[str, tuple[int, ...]] = {}
    for key, given in grid.items():
        items = given.split(",") if isinstance(given, str) else given if isinstance(given, Sequence) else [given]
        values[key] = tuple(as_int(v, key, lo=0 if key == "comp_mode" else 1) for v in items)
        bad = [v for v in values[key] if (key == "comp_mode" and v not in MODES) or (key == "q" and v not in BITS)]
        if bad:
            allowed = MODES if key == "comp_mode" else BITS
            raise HardwareError(f"{key}={bad[0]} is not allowed; {key} takes {allowed}.",
                                f"Give {key} values from {allowed}.")
    return values


class ChunkTemplate(HardwareTemplate):
    """DNA/Auto-NBA's chunk-pipelined accelerator: per-(bits, depthwise, map size) sub-accelerators."""

    name = "chunk"
    description = ("Chunk-pipelined FPGA accelerator (DNA / Auto-NBA): one sub-accelerator per bit width, "
                   "depthwise-or-not and map size, each with a compute mode, buffer tiles, PE unrolls and q; "
                   "period = slowest stage, FPS = 200 MHz / its cycles; DSP and BRAM limits.")
    bottlenecks = BOTTLENECKS
    remedies = with_transformer_remedies({"compute": ("channel_cut", "quantize"),
                                          "ifm-load": ("quantize", "channel_cut"),
                                          "weight-load": ("quantize", "channel_cut"),
                                          "write": ("quantize", "channel_cut")})
    """Fewer bits shrink every transfer (q/16) and DSPs (freeing unrolls), and move a layer to another
    stage; fewer channels (in a Transformer, fewer heads and layers) shrink every trip count. An
    off-critical layer needs nothing."""
    space_options = {"quantize": ("w8a8", "w6a6", "w4a4"), **TRANSFORMER_SPACE_OPTIONS}
    """Auto-NBA's widths {8, 6, 4}, weights and activations together: one q covers both."""
    options = OPTIONS
    execution = EXECUTION

    def devices(self) -> Sequence[str]:
        return tuple(DEVICES)

    def design_fields(self) -> Sequence[str]:
        return FIELDS

    def execution_reason(self, layer: Layer, mode: Execution | None) -> str:
        if mode is not Execution.ARRAY and layer.kind in REASONS:
            return REASONS[layer.kind]
        return super().execution_reason(layer, mode)

    def parse_design(self, params: Mapping[str, Any]) -> ChunkDesign:
        """A design from ``design`` (``NAME=v1,...,v10;...``, JSON, or a mapping); single fields do not
        fix a multi-stage design (they restrict ``--explore``'s grid)."""
        if "design" not in params:
            raise ConfigError("No chunk design given.",
                              "Give --design NAME=comp_mode,Tr_b,Tc_b,Tm_b,Tn_b,tr,tc,tm,tn,q;... (one per "
                              "sub-accelerator, e.g. a0q16=...), or use --explore.")
        extra = [k for k in params if k != "design"]
        if extra:
            raise ConfigError(f"Design fields {extra} were given beside a whole chunk design.",
                              "Put them into --design (one vector per sub-accelerator), or drop --design and let "
                              "them restrict --explore's grid.")
        return parse_design(params["design"])

    # --- allocation -------------------------------------------------------------------------------
    def allocate(self, workload: Workload, layout: str) -> Allocation:
        """Auto-NBA's ``allocate_layers``: (bits, depthwise, rows >= split) -> sub-accelerator."""
        placed, uncosted = [], []
        for layer in workload.layers:
            if layer.kind is OpKind.INPUT:
                continue
            mode = self.execution_of(layer, {})
            if mode is not Execution.ARRAY:
                uncosted.append(self.uncosted(layer, mode))
                continue
            shape = layer_shape(layer)
            bits = layer_bits(layer)
            placed.append(Placed(layer, shape, bits,
                                 stage_name(shape.depthwise, shape.rows >= SPLIT[layout], bits)))
        stages = tuple(dict.fromkeys(p.stage for p in placed))
        return Allocation(tuple(placed), tuple(uncosted), stages)

    def _settings(self, workload: Workload, device: str | None, options: Mapping[str, Any]
                  ) -> tuple[str, dict[str, Any], float, float, str]:
        opts = self.parse_options(options)
        name = device or "zc706"
        if name not in DEVICES:
            raise ConfigError(f"The chunk template has no device {name!r}.", f"Use one of: {', '.join(DEVICES)}.")
        dsp = float(opts.get("dsp", DEVICES[name]["dsp"]))
        bram = float(opts.get("bram", DEVICES[name]["bram"]))
        return name, opts, dsp, bram, str(opts.get("layout", default_layout(workload)))

    # --- cost -------------------------------------------------------------------------------------
    def cost(self, workload: Workload, design: Any, device: str | None = None, **options: Any) -> NetworkCost:
        """Per-layer cycles (each on its sub-accelerator), stage sums, DSP and BRAM of one design
        (resources reported, not enforced)."""
        dev, opts, dsp_limit, bram_limit, layout = self._settings(workload, device, options)
        alloc = self.allocate(workload, layout)
        chosen = parse_design(design)
        missing = [s for s in alloc.stages if chosen.get(s) is None]
        if missing:
            runs = ", ".join(p.layer.name for p in alloc.layers_of(missing[0])[:3])
            raise HardwareError(f"The design has no sub-accelerator {missing[0]!r}, which runs {runs}"
                                f"{' ...' if len(alloc.layers_of(missing[0])) > 3 else ''} "
                                f"(this network needs {', '.join(alloc.stages)}).",
                                "Add it to --design, or use --explore to find every sub-accelerator's design.")
        clock = float(opts.get("clock_mhz", CLOCK_MHZ))
        weight_bram = bool(opts.get("weight_bram", False))
        subs = dict(chosen.subs)
        comps: dict[str, dict[str, float]] = {}  # layer name -> activity totals and cycles
        busy = dict.fromkeys(alloc.stages, 0.0)
        dsp_used = bram_used = 0.0
        for stage in alloc.stages:
            depthwise, _, bits = alloc.kind(stage)
            subs[stage].check(stage, depthwise, bits)
            arrays = design_arrays(subs[stage])
            stage_bram = 0.0
            for placed in alloc.layers_of(stage):
                totals = layer_components(placed.shape, arrays)
                comps[placed.layer.name] = {k: float(getattr(totals, k)[0]) for k in (*ACTIVITIES, "cycles")}
                busy[stage] += comps[placed.layer.name]["cycles"]
                stage_bram = max(stage_bram, float(bram_use(placed.shape, arrays, weight_bram)[0]))
            dsp_used += float(dsp_use(arrays, depthwise)[0])
            bram_used += stage_bram
        slowest = max(busy, key=busy.__getitem__) if busy else ""
        layers = []
        for placed in alloc.placed:
            own = comps[placed.layer.name]
            label = _label(own) if placed.stage == slowest else "stage-imbalance"
            layers.append(LayerCost(placed.layer.name, _op(placed.layer), placed.layer.macs, own["cycles"],
                                    own["cycles"] / (clock * 1e3), label, {k: own[k] for k in ACTIVITIES},
                                    engine=placed.stage))
        used = ChunkDesign(tuple((s, subs[s]) for s in alloc.stages))
        return NetworkCost(self.name, dev, used, clock, tuple(layers), alloc.uncosted,
                           (ResourceUse("dsp", dsp_used, dsp_limit, "DSP"),
                            ResourceUse("bram", bram_used, bram_limit, "BRAM18")),
                           notes=_notes(busy, slowest, clock, layout, chosen, alloc), parallel_engines=True)

    # --- exploration ------------------------------------------------------------------------------
    def stage_grids(self, workload: Workload, layout: str, grid: Mapping[str, Any] | None,
                    weight_bram: bool) -> tuple[Allocation, list[StageGrid]]:
        """Every sub-accelerator's grid (the reference's choices; ``grid`` replaces axes for all of them,
        a depthwise one keeping Tn_b = tn = 1 and its modes 0/2; q only at or above its layers' bits)."""
        alloc = self.allocate(workload, layout)
        if not alloc.placed:
            raise HardwareError(f"Workload {workload.name!r} has no layer the chunk accelerator runs.",
                                "Give a network with convolutions or linear layers.")
        given = _grid_values(grid or {})
        grids = []
        for stage in alloc.stages:
            depthwise, large, bits = alloc.kind(stage)
            axes = default_axes(layout, large, depthwise, bits)
            for key, values in given.items():
                if depthwise and key in ("Tn_b", "tn"):
                    continue
                axes[key] = tuple(v for v in values if (key != "comp_mode" or v in axes["comp_mode"])
                                  and (key != "q" or v >= bits))
                if not axes[key]:
                    raise HardwareError(f"The grid leaves sub-accelerator {stage!r} no {key} value: it needs "
                                        f"{'a depthwise mode (0 or 2)' if key == 'comp_mode' else f'q >= {bits}'}.",
                                        f"Add such a value to {key}, or drop the {key} restriction.")
            designs = enumerate_designs(axes)
            if not len(designs):
                raise HardwareError(f"The grid gives sub-accelerator {stage!r} no design with every unroll <= its "
                                    "tile.", "Give unroll values no larger than some tile value.")
            grids.append(stage_grid(stage, [p.shape for p in alloc.layers_of(stage)], designs, weight_bram))
        return alloc, grids

    def explore(self, workload: Workload, device: str | None = None, grid: Any = None,
                **options: Any) -> Exploration:
        """The design whose slowest stage is fastest within the DSP and BRAM limits (exact over the
        grids), ties to the fewest DSPs then BRAM; and a Pareto set (stage-latency levels between the
        best and the slowest stage front, each at its fewest DSP and fewest BRAM). ``n_designs`` and
        ``n_feasible`` count sub-accelerator designs (all, and those fitting alone)."""
        start = time.perf_counter()
        if grid is not None and not isinstance(grid, Mapping):
            raise ConfigError(f"Cannot read a chunk design grid from {type(grid).__name__}.",
                              "Pass a dict of design field -> values, or nothing for the reference's grid.")
        dev, opts, dsp_limit, bram_limit, layout = self._settings(workload, device, options)
        _, grids = self.stage_grids(workload, layout, grid, bool(opts.get("weight_bram", False)))
        fronts = [stage_front(g, dsp_limit, bram_limit) for g in grids]
        levels = np.unique(np.concatenate([f.cycles for f in fronts]))
        low = max((float(f.cycles.min()) if len(f.cycles) else math.inf) for f in fronts)
        levels = levels[levels >= low]
        if not len(levels) or not len(fitting_sums(fronts, float(levels[-1]), dsp_limit, bram_limit)[0]):
            raise _infeasible(grids, dsp_limit, bram_limit, dev)
        lo, hi = 0, len(levels) - 1
        while lo < hi:  # the smallest stage latency level at which some choice fits
            mid = (lo + hi) // 2
            if len(fitting_sums(fronts, float(levels[mid]), dsp_limit, bram_limit)[0]):
                hi = mid
            else:
                lo = mid + 1
        picks = np.unique(np.linspace(lo, len(levels) - 1, num=min(8, len(levels) - lo)).astype(int))
        designs: list[ChunkDesign] = []
        for level in picks:
            choice, _, bram = fitting_sums(fronts, float(levels[level]), dsp_limit, bram_limit)
            for row in dict.fromkeys((0, int(np.argmin(bram)))):
                design = ChunkDesign(tuple((g.name, sub_at(g.designs, int(f.index[choice[row, j]])))
                                           for j, (g, f) in enumerate(zip(grids, fronts))))
                if design not in designs:
                    designs.append(design)
        costs = [self.cost(workload, d, dev, **options) for d in designs]
        points = np.array([[c.latency_ms, *(r.used for r in c.resources)] for c in costs])
        front = pareto_front(points, np.ones(len(costs), dtype=bool))[:MAX_PARETO]
        pareto = tuple(costs[i] for i in sorted(set(front) | {0}, key=lambda i: (points[i, 0], i)))
        return Exploration(costs[0], pareto, sum(len(g.designs) for g in grids),
                           sum(int(((g.dsp <= dsp_limit) & (g.bram <= bram_limit)).sum()) for g in grids),
                           time.perf_counter() - start)

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """No knobs: a grid axis would pin every sub-accelerator at once (their spaces differ)."""
        return {}


def _label(comps: Mapping[str, float]) -> str:
    """The largest of the four activity totals (compute overlaps the IFM load: the larger counts)."""
    totals = {"compute": comps["compute"], "ifm-load": comps["ifm"], "weight-load": comps["weight"],
              "write": comps["write"]}
    return max(totals, key=totals.__getitem__)


def _op(layer: Layer) -> str:
    return f"{layer.conv_type} conv" if layer.kind is OpKind.CONV else layer.kind.value


def _notes(busy: Mapping[str, float], slowest: str, clock: float, layout: str, chosen: ChunkDesign,
           alloc: Allocation) -> tuple[str, ...]:
    notes = [f"pipeline stages (cycles): {', '.join(f'{s} {c:,.0f}' for s, c in busy.items())}; "
             f"slowest {slowest!r}: {clock * 1e6 / busy[slowest]:,.1f} FPS at {clock:g} MHz"
             if busy and busy[slowest] > 0 else "no layer on the array",
             f"layout {layout!r}: a0 from {SPLIT[layout]} output rows, a1 below; bottleneck labels: "
             + ", ".join(BOTTLENECKS)]
    unused = [name for name, _ in chosen if name not in alloc.stages]
    if unused:
        notes.append(f"design entries for sub-accelerators this network does not use (not counted): "
                     f"{', '.join(unused)}")
    return tuple(notes)


def _infeasible(grids: Sequence[StageGrid], dsp_limit: float, bram_limit: float, device: str) -> InfeasibleError:
    lean_dsp = sum(float(g.dsp.min()) for g in grids)
    lean_bram = sum(float(g.bram.min()) for g in grids)
    return InfeasibleError(
        f"No chunk design of the grid fits {device}: the {len(grids)} sub-accelerators "
        f"({', '.join(g.name for g in grids)}) need at least {lean_dsp:,.1f} DSP and {lean_bram:,.0f} BRAM banks "
        f"together (each at its leanest), against {dsp_limit:,.0f} DSP and {bram_limit:,.0f} BRAM.",
        "Raise --hw-param dsp=/bram=, widen the grid (smaller tiles), or quantize to fewer bit widths (fewer "
        "sub-accelerators).", best_bound=None)
