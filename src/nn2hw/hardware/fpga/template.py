"""The ``fpga`` hardware template: cost one design, or explore a grid of designs, for a workload."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from nn2hw._checks import as_bool, as_choice, as_float, as_int
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware.base import TRANSFORMER_SPACE_OPTIONS, HardwareTemplate, Option, with_transformer_remedies
from nn2hw.hardware.fpga.bottleneck import BOTTLENECKS, classify
from nn2hw.hardware.fpga.design import DESIGN_FIELDS, DW_KEYS, DesignArrays, FpgaDesign, coerce_design, parse_design
from nn2hw.hardware.fpga.devices import BUDGET_FIELDS, FpgaDevice, get_device, load_devices
from nn2hw.hardware.fpga.explore import FpgaGrid, enumerate_grid, infeasible_error, network_cycles
from nn2hw.hardware.fpga.latency import PORT_WORD_BITS, StepTimes, check_variant, step_times
from nn2hw.hardware.fpga.layers import (
    EXECUTION,
    LINEAR_MODES,
    REASONS,
    UNFOLDED_NORM,
    EngineLayers,
    LayerPlan,
    plan_layers,
)
from nn2hw.hardware.fpga.resources import DEFAULT_LUTRAM_SHARE, ResourceArrays, check_bram_mode, resource_arrays
from nn2hw.hardware.records import Execution, Exploration, LayerCost, NetworkCost, ResourceUse
from nn2hw.hardware.select import pareto_front, pick_best
from nn2hw.registry import suggest
from nn2hw.workload import Layer, OpKind, Workload

DESIGN_KEYS = (*DESIGN_FIELDS, *DW_KEYS, "word_bits")
"""The design parameters ``--hw-param`` may set (``--design``/``--dw-design`` give the whole engines)."""


def _share(value: Any) -> float:
    share = as_float(value, "lutram_share")
    if share > 1:
        raise ConfigError(f"lutram_share must be in (0, 1], got {share}.", "Use e.g. lutram_share=0.75.")
    return share


OPTIONS = (
    Option("variant", lambda v: check_variant(str(v)), "latency formula: head (HotNAS HEAD, default), v0/v1 (earlier "
           "HotNAS code), fnas (full tiles) or fpga15 (Zhang FPGA'15 compute roof)"),
    Option("compat_shapes", lambda v: as_bool(v, "compat_shapes"),
           "reproduce the HotNAS DSE's sequential shape tracking (wrong shapes, published numbers)"),
    Option("bram", lambda v: check_bram_mode(str(v)),
           "BRAM model: realistic (default), hotnas, as-run (reproduces the published optima) or off"),
    Option("clock_mhz", lambda v: as_float(v, "clock_mhz"), "clock in MHz (default: the device's)"),
    Option("linear", lambda v: as_choice(v, "linear", LINEAR_MODES),
           "linear layers: host (not costed, as HotNAS) or engine (1x1 convolutions on the standard engine)"),
    Option("lutram_share", _share, f"share of LUTRAM usable for buffers (default {DEFAULT_LUTRAM_SHARE})"),
    *(Option(name, partial(as_int, what=name), f"override the device's {name}") for name in BUDGET_FIELDS),
)


@dataclass(frozen=True)
class FpgaOptions:
    """How to cost: latency variant, shape compatibility, BRAM model, clock, linear layers, budgets."""

    variant: str = "head"
    compat_shapes: bool = False
    bram: str = "realistic"
    clock_mhz: float | None = None
    linear: str = "host"
    lutram_share: float = DEFAULT_LUTRAM_SHARE
    budgets: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> FpgaOptions:
        """Checked options from keyword arguments or ``--hw-param`` strings (the template's ``OPTIONS``)."""
        opts = FpgaTemplate().parse_options(options)
        budgets = tuple((k, opts.pop(k)) for k in BUDGET_FIELDS if k in opts)
        return cls(**opts, budgets=budgets)

    def device(self, device: str | FpgaDevice | None) -> FpgaDevice:
        return get_device(device).with_budgets(**dict(self.budgets))

    def clock(self, device: FpgaDevice) -> float:
        return self.clock_mhz if self.clock_mhz is not None else device.clock_mhz


def _check_kernels(plan: LayerPlan, design: FpgaDesign) -> None:
    """Every kernel within its engine's Tk, else a HardwareError naming the layer."""
    for engine, tk, table in (("cconv", design.Tk, plan.std), ("dconv", design.dw.Tk if design.dw else 0, plan.dw)):
        layer = plan.kernel_limit_layer(engine, tk) if len(table) else None
        if layer is not None:
            side = max(layer.kernel_h, layer.kernel_w)
            which = "standard" if engine == "cconv" else "depthwise"
            key = "Tk" if engine == "cconv" else "Tk_d"
            raise HardwareError(
                f"Layer {layer.name!r} has a {layer.kernel_h}x{layer.kernel_w} kernel, larger than the {which} "
                f"engine's Tk={tk}.",
                f"Raise {key} to at least {side} (e.g. --hw-param {key}={side}), or let --explore pick the design.")


def _check_bits(plan: LayerPlan, word_bits: int) -> None:
    """Operands no wider than the 16-bit fixed-point datapath (a 32-bit float datapath takes any)."""
    if word_bits != PORT_WORD_BITS:
        return
    for layer in plan.layers:
        bits = max(layer.weight_bits, layer.input_bits, layer.output_bits)
        if bits > PORT_WORD_BITS:
            raise HardwareError(
                f"Layer {layer.name!r} has {bits}-bit operands; the 16-bit fixed-point datapath cannot run them.",
                "Quantize the layer to 16 bits or fewer, or use a 32-bit floating-point design (word_bits=32).")


def _has_depthwise(workload: Workload) -> bool:
    return any(layer.conv_type == "depthwise" for layer in workload.layers)


def _layer_op(layer: Layer) -> str:
    return f"{layer.conv_type} conv" if layer.kind is OpKind.CONV else layer.kind.value


class FpgaTemplate(HardwareTemplate):
    """Zhang FPGA'15 / FNAS / HotNAS tiled-convolution accelerator (reference notes 1, 2.2-2.6, 2.12)."""

    name = "fpga"
    description = ("Tiled-convolution FPGA accelerator (Zhang FPGA'15 / FNAS / HotNAS): a Tm x Tn MAC array with "
                   "Tr x Tc tiles, an optional depthwise engine, ports Wp/Ip/Op; latency Lat1/Lat2/Lat.")
    bottlenecks = BOTTLENECKS
    remedies = with_transformer_remedies({"C": ("kernel_pattern", "channel_cut"), "W": ("quantize", "channel_cut"),
                                          "I": ("kernel_expand",), "O": ("kernel_expand",)})
    """HotNAS's iSpace: patterns shorten tComp (kept weights replace K^2), fewer weight bits shorten
    tW, channel cuts shorten both; a memory-bound layer takes a larger kernel for free. In a
    Transformer (``linear=engine``) fewer heads and fewer layers shorten what channel cuts shorten."""
    space_options = TRANSFORMER_SPACE_OPTIONS
    options = OPTIONS
    execution = EXECUTION
    """The authors' model costs convolutions only: other ops are fused, layout or omitted (said so)."""

    def devices(self) -> tuple[str, ...]:
        return tuple(load_devices())

    def design_fields(self) -> Sequence[str]:
        return DESIGN_KEYS

    def execution_of(self, layer: Layer, options: Mapping[str, Any]) -> Execution | None:
        """``EXECUTION`` by kind; linear layers and matmuls on the engine with ``linear=engine``; a norm
        that does not fold into the weights (LayerNorm) is left out, not fused."""
        if layer.kind in (OpKind.LINEAR, OpKind.MATMUL) and str(options.get("linear", "host")) == "engine":
            return Execution.ARRAY
        if layer.kind is OpKind.NORM and not layer.folds_at_inference:
            return Execution.OMITTED  # a LayerNorm does not fold into the weights as a batch norm does
        return super().execution_of(layer, options)

    def execution_reason(self, layer: Layer, mode: Execution | None) -> str:
        """Why the authors' model leaves ``layer`` out (``REASONS`` by kind, for the modes without cycles)."""
        if layer.kind is OpKind.NORM and not layer.folds_at_inference:
            return UNFOLDED_NORM
        if mode is not Execution.ARRAY and layer.kind in REASONS:
            return REASONS[layer.kind]
        return super().execution_reason(layer, mode)

    def parse_design(self, params: Mapping[str, Any]) -> FpgaDesign:
        """A design from ``design`` ('Tm,...,Op' or a record), ``dw_design`` and field overrides."""
        params = dict(params)
        text, dw_text = params.pop("design", None), params.pop("dw_design", None)
        unknown = [k for k in params if k not in DESIGN_KEYS]
        if unknown:
            raise ConfigError(f"Unknown design field {unknown[0]!r}.{suggest(unknown[0], sorted(DESIGN_KEYS))}",
                              f"Design fields: {', '.join(sorted(DESIGN_KEYS))}.")
        bits = as_int(params.get("word_bits", 16), "word_bits")
        if text is None:
            missing = [f for f in DESIGN_FIELDS if f not in params]
            if missing:
                raise ConfigError(f"No design given: --design is absent and {missing} are not set.",
                                  "Give --design Tm,Tn,Tr,Tc,Tk,Wp,Ip,Op, or use --explore to search one.")
            text = [params[f] for f in DESIGN_FIELDS]
        if isinstance(text, FpgaDesign) or isinstance(text, Mapping):
            design = coerce_design(text)
            if dw_text is not None:
                design = parse_design([getattr(design, f) for f in DESIGN_FIELDS], dw_text, design.word_bits)
        else:
            design = parse_design(text, dw_text, bits)
        return design.with_params(params)

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, workload: Workload, designs: DesignArrays, device: str | FpgaDevice | None = None,
                 **options: Any) -> tuple[np.ndarray, ResourceArrays]:
        """Cycles and resource use of ``workload`` on every design of ``designs`` (vectorized, no
        per-design Python loop). Kernel limits are not checked here; ``explore`` masks them."""
        opts = FpgaOptions.parse(options)
        dev = opts.device(device)
        plan = plan_layers(self, workload, designs.has_dw, opts.linear, opts.compat_shapes)
        return network_cycles(plan, designs, opts.variant), resource_arrays(designs, dev, opts.bram,
                                                                             opts.lutram_share)

    def cost(self, workload: Workload, design: Any, device: str | FpgaDevice | None = None,
             **options: Any) -> NetworkCost:
        """Per-layer cycles, bottlenecks and resources of one design (resources reported, not enforced)."""
        opts = FpgaOptions.parse(options)
        dev = opts.device(device)
        d = coerce_design(design)
        plan = plan_layers(self, workload, d.dw is not None, opts.linear, opts.compat_shapes)
        _check_kernels(plan, d)
        _check_bits(plan, d.word_bits)
        arr = DesignArrays.of(d)
        n = len(plan.layers)
        cols = {k: np.zeros(n) for k in ("cycles", "input", "weight", "output", "compute")}
        engines: list[tuple[EngineLayers, tuple[np.ndarray, ...], bool]] = [
            (plan.std, (arr.Tm, arr.Tn, arr.Tr, arr.Tc), False)]
        if d.dw is not None:
            engines.append((plan.dw, (arr.dTm, arr.dTm, arr.dTr, arr.dTc), True))
        for table, tiles, depthwise in engines:
            if not len(table):
                continue
            times: StepTimes = step_times(table, *(a[:, None] for a in (*tiles, arr.Wp, arr.Ip, arr.Op)),
                                          variant=opts.variant, depthwise=depthwise, word_bits=d.word_bits)
            cols["cycles"][table.positions] = times.cycles[0]
            for key, total in times.totals().items():
                cols[key][table.positions] = total[0]
        clock = opts.clock(dev)
        per_ms = clock * 1e3
        layers = []
        for i, layer in enumerate(plan.layers):
            breakdown = {k: float(cols[k][i]) for k in ("input", "weight", "output", "compute")}
            cycles = float(cols["cycles"][i])
            layers.append(LayerCost(name=layer.name, op=_layer_op(layer), macs=layer.macs, cycles=cycles,
                                    latency_ms=cycles / per_ms, bottleneck=classify(breakdown),
                                    breakdown_cycles=breakdown, engine=plan.engines[i]))
        res = resource_arrays(arr, dev, opts.bram, opts.lutram_share)
        resources = tuple(ResourceUse(name, float(used[0]), avail, unit)
                          for name, used, avail, unit in zip(res.names, res.used, res.available, res.units))
        return NetworkCost(template=self.name, device=dev.name, design=d.to_dict(), clock_mhz=clock,
                           layers=tuple(layers), uncosted=plan.uncosted, resources=resources,
                           notes=self._notes(plan, opts, dev, res))

    @staticmethod
    def _notes(plan: LayerPlan, opts: FpgaOptions, dev: FpgaDevice, res: ResourceArrays) -> tuple[str, ...]:
        notes = [f"latency variant {opts.variant!r}; BRAM model {opts.bram!r}; bottleneck letters: "
                 + ", ".join(f"{k} = {v}" for k, v in BOTTLENECKS.items())]
        if plan.compat_changed:
            notes.append(f"--compat-shapes (HotNAS sequential shape tracking) changed the output size of "
                         f"{len(plan.compat_changed)} convolutions, from {plan.compat_changed[0]!r} on; this "
                         "reproduces the published files, not the real network")
        mem = res.memory
        placed = mem.placement(0)
        fits = mem.bram18[0] <= dev.bram18 and mem.luts[0] <= res.lut_budget
        notes.append(f"realistic on-chip memory: {mem.bram18[0]:,.0f} of {dev.bram18:,} BRAM18 and "
                     f"{mem.luts[0]:,.0f} of {res.lut_budget:,.0f} LUTRAM LUTs" + (f" ({placed})" if placed else "")
                     + ("" if fits else f": does NOT fit {dev.name}")
                     + ("" if opts.bram == "realistic" else " (not enforced in this BRAM mode)"))
        return tuple(notes)

    # --- exploration --------------------------------------------------------------------------
    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[int]]:
        """The HotNAS grid's axes (with a depthwise engine when the workload has depthwise convs)."""
        return FpgaGrid.hotnas(depthwise=any(layer.conv_type == "depthwise" for layer in workload.layers)).as_dict

    def explore(self, workload: Workload, device: str | FpgaDevice | None = None, grid: Any = None,
                **options: Any) -> Exploration:
        """Best feasible design of ``grid`` (default: the HotNAS grid; a dict of param -> values
        replaces parts of it) and the latency-vs-DSP/BRAM Pareto set, all designs costed at once."""
        start = time.perf_counter()
        opts = FpgaOptions.parse(options)
        dev = opts.device(device)
        has_dw_layers = _has_depthwise(workload)
        word_bits = 16
        if grid is None:
            grid = FpgaGrid.hotnas(depthwise=has_dw_layers)
        elif isinstance(grid, Mapping):
            ranges = dict(grid)
            word_bits = as_int(ranges.pop("word_bits", 16), "word_bits")
            grid = FpgaGrid.from_ranges(ranges, depthwise=has_dw_layers)
        elif not isinstance(grid, FpgaGrid):
            raise ConfigError(f"Cannot read a design grid from {type(grid).__name__}.",
                              "Pass an FpgaGrid, a dict of parameter -> values, or nothing for the HotNAS grid.")
        plan = plan_layers(self, workload, grid.has_dw, opts.linear, opts.compat_shapes)
        if not plan.layers:
            raise HardwareError(f"Workload {workload.name!r} has no layer the FPGA template runs.",
                                "Give a network with convolutions (or pass --hw-param linear=engine).")
        need_k = float(plan.std.kmax.max()) if len(plan.std) else 1.0
        need_kd = float(plan.dw.kmax.max()) if len(plan.dw) else 1.0
        designs, _ = enumerate_grid(grid, dev, int(need_k), int(need_kd), word_bits)
        _check_bits(plan, word_bits)
        cycles, res = self.evaluate(workload, designs, dev, **options)
        kernel_ratio = need_k / designs.Tk
        if designs.has_dw and len(plan.dw):
            kernel_ratio = np.maximum(kernel_ratio, need_kd / designs.dTk)
        feasible = res.feasible() & (kernel_ratio <= 1)
        if not feasible.any():
            raise infeasible_error(grid, dev, designs, res, kernel_ratio, opts.bram)
        best = pick_best([cycles], feasible, rtol=1e-9, atol=1e-9)  # the authors' strict < in loop order
        front = sorted(pareto_front(np.stack([cycles, res.used[0], res.bram_measure()], axis=1), feasible),
                       key=lambda i: (cycles[i], i))
        best_cost = self.cost(workload, designs.design(best), dev, **options)
        pareto = tuple(best_cost if i == best else self.cost(workload, designs.design(i), dev, **options)
                       for i in front)
        return Exploration(best=best_cost, pareto=pareto, n_designs=len(designs), n_feasible=int(feasible.sum()),
                           seconds=time.perf_counter() - start)
