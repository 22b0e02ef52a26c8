"""``nn2hw analyze``: cost a network on a hardware design, layer by layer, with its bottlenecks.

    nn2hw analyze --model resnet18 --hardware fpga:zcu102 --design 70,36,64,64,7,18,6,6 --clock-mhz 100
    nn2hw analyze --model mobilenet_v2 --explore --json result.json
    nn2hw analyze --onnx net.onnx --hardware fpga:pynq-z1 --hw-param Tr=16,32 --explore
    nn2hw analyze --model minilm_l6 --seq-len 128 --hardware systolic

Without ``--design`` the exploration picks the best feasible design of the default grid (the
HotNAS grid for the FPGA template) and says so. A thin shell over ``nn2hw.api.analyze``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

from rich.console import JustifyMethod
from rich.markup import escape
from rich.table import Table

from nn2hw.cli._common import parse_key_values, require_output_files, wide_console, write_json
from nn2hw.cli._options import add_dataset, add_hardware, add_hardware_file, add_json, add_model, add_seq_len
from nn2hw.hardware.records import design_label


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw analyze``."""
    parser = subparsers.add_parser(
        "analyze", help="cost a network on a hardware design (per-layer cycles, bottlenecks, resources)",
        description="Cost a zoo model or an ONNX file on a hardware template: per-layer shape, MACs, cycles, "
                    "milliseconds, bottleneck (O: storing output, I: loading input, W: loading weights, "
                    "C: computing) and share of the total, the ops not costed, resources and totals.")
    source = parser.add_mutually_exclusive_group(required=True)
    add_model(source, required=False)
    source.add_argument("--onnx", metavar="FILE", help="ONNX file to read the network from")
    add_dataset(parser, required=False)
    add_seq_len(parser)
    add_hardware(parser)
    parser.add_argument("--design", metavar="Tm,Tn,Tr,Tc,Tk,Wp,Ip,Op", help="the design to cost")
    parser.add_argument("--dw-design", metavar="Tm,Tn,Tr,Tc,Tk[,Wp,Ip,Op]",
                        help="depthwise engine of the design (shares the ports of --design)")
    parser.add_argument("--clock-mhz", metavar="F", help="clock in MHz (default: the device's; HotNAS DSE files: 100)")
    parser.add_argument("--variant", metavar="NAME",
                        help="fpga template: latency formula (--hw-param variant=NAME; `nn2hw list templates fpga`)")
    parser.add_argument("--compat-shapes", action="store_true",
                        help="fpga template: HotNAS's sequential shape tracking (--hw-param compat_shapes=true)")
    parser.add_argument("--bram", metavar="MODEL",
                        help="fpga template: BRAM model (--hw-param bram=MODEL; `nn2hw list templates fpga`)")
    parser.add_argument("--explore", action="store_true", help="search the design space and report the best design")
    add_hardware_file(parser)
    parser.add_argument("--backend", default="analytic", metavar="NAME",
                        help="cost model: analytic (default) or a peer simulator that re-costs the design (`nn2hw "
                             "peers status` lists them; each an optional extra in its own venv)")
    add_json(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from nn2hw.api import analyze

    require_output_files({"--json": args.json})
    hw_params = parse_key_values(args.hw_param)
    for name in ("clock_mhz", "variant", "compat_shapes", "bram"):  # shortcuts for --hw-param NAME=VALUE
        if getattr(args, name) not in (None, False):
            hw_params[name] = getattr(args, name)
    result = analyze(model=args.model, dataset=args.dataset, onnx=args.onnx, hardware=args.hardware,
                     design=args.design, dw_design=args.dw_design, hw_params=hw_params, explore=args.explore,
                     hardware_file=args.hardware_file, backend=args.backend, seq_len=args.seq_len)
    print_result(result, show_pareto=args.explore)
    if args.json:
        path = write_json(args.json, result.to_dict())
        wide_console().print(f"wrote {path}", markup=False)
    return 0


def _ms(value: float) -> str:
    return f"{round(value, 6):,}"


def print_result(result: Any, show_pareto: bool = False) -> None:
    """The per-layer table, the ops not costed, resources, bottleneck shares and totals."""
    console = wide_console()
    cost = result.cost
    options = result.options
    given = ", ".join(f"{k}={v}" for k, v in options.items() if k not in ("budgets", "specs"))
    clock = f" at {cost.clock_mhz:g} MHz" if cost.clock_mhz else ""
    console.print(f"[bold]{escape(result.workload.name)}[/] on [bold]{escape(result.hardware)}[/]{clock}"
                  + (f" ({escape(given)})" if given else ""))
    console.print(f"design {escape(design_label(cost.design))}  [dim]({escape(result.design_source)})[/]")

    table = Table(title="per-layer cost", title_justify="left")
    widest = max((len(layer.name) for layer in cost.layers), default=5)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"), ("layer", "left"), ("shape", "left"), ("runs on", "left"), ("MACs", "right"),
        ("cycles", "right"), ("ms", "right"), ("bottleneck", "center"), ("share", "right"))
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=col != "shape", min_width=widest if col == "layer" else None)
    with_energy = bool(cost.layers) and all(layer.energy_mj is not None for layer in cost.layers)
    if with_energy:
        table.add_column("mJ", justify="right")
    with_engine = len({layer.engine for layer in cost.layers}) > 1  # heterogeneous chips: which sub ran it
    if with_engine:
        table.add_column("engine", justify="left")
    layer_shares = [r.share for r in result.bottlenecks.layers]
    for i, (layer, share) in enumerate(zip(cost.layers, layer_shares, strict=True), 1):
        table.add_row(str(i), escape(layer.name), result.layer_shape(layer.name), layer.execution.value,
                      f"{layer.macs:,}", f"{layer.cycles:,.0f}",
                      f"{layer.latency_ms:.4f}", layer.bottleneck, f"{share:.1%}",
                      *([f"{layer.energy_mj:.5f}"] if with_energy else []), *([layer.engine] if with_engine else []))
    console.print(table)

    if cost.uncosted:
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        for op in cost.uncosted:
            grouped[(op.execution.value if op.execution else "not understood", op.reason)].append(op.name)
        console.print(f"[bold]no cycles of their own[/] ({len(cost.uncosted)} ops):")
        for (mode, reason), names in grouped.items():
            console.print(f"  {len(names)} x {mode}: {escape(reason)}: [dim]{escape(', '.join(names))}[/]",
                          soft_wrap=True)

    if cost.resources:
        resources = Table(title="resources", title_justify="left")
        for col in ("resource", "used", "available", "unit", "use", "fits"):
            resources.add_column(col, justify="left" if col in ("resource", "unit") else "right")
        for r in cost.resources:
            resources.add_row(r.name, f"{r.used:,.0f}", f"{r.available:,.0f}", r.unit, f"{r.utilization:.1%}",
                              "yes" if r.fits else "[red]NO[/]")
        console.print(resources)
    for note in cost.notes:
        console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)

    shares = result.bottlenecks.share_by_bottleneck
    console.print("bottleneck share of latency: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    if result.measurement is not None:
        m = result.measurement
        console.print(f"[bold]measured[/]: median [bold]{_ms(m['median_ms'])} ms[/], IQR {m['iqr_ms']:.4g} ms "
                      f"(q1 {m['q1_ms']:.4g}, q3 {m['q3_ms']:.4g}), {m['runs']} interleaved runs, {m['outliers']} "
                      f"outliers, {m['threads']} thread(s), {m['runtime']} {m['runtime_version']} on "
                      f"{escape(str(m['machine'].get('cpu_model', '?')))}; {cost.macs:,} MACs")
    else:
        console.print(f"[bold]total[/]: {cost.total_cycles:,.1f} cycles = [bold]{_ms(cost.latency_ms)} ms[/]{clock}; "
                      f"{cost.macs:,} MACs in {len(cost.layers)} costed layers")
    if cost.energy_mj is not None or cost.area_mm2 is not None:
        compute = getattr(cost, "compute_cycles", None)
        console.print("  " + "; ".join(part for part in (
            f"{compute:,.0f} compute cycles without memory stalls" if compute is not None else "",
            f"energy [bold]{cost.energy_mj:.5f} mJ[/]" if cost.energy_mj is not None else "",
            f"area [bold]{cost.area_mm2:.3f} mm^2[/]" if cost.area_mm2 is not None else "") if part))

    exploration = result.exploration
    if exploration is not None:
        console.print(f"exploration: {exploration.n_designs:,} designs, {exploration.n_feasible:,} feasible, "
                      f"{exploration.seconds * 1e3:.1f} ms")
        if show_pareto and exploration.pareto:
            resource_names = ", ".join(r.name for r in exploration.pareto[0].resources)
            pareto = Table(title=f"Pareto set (latency vs {resource_names})" if resource_names else "Pareto set",
                           title_justify="left")
            for col in ("design", "ms", *(r.name for r in exploration.pareto[0].resources)):
                pareto.add_column(col, justify="left" if col == "design" else "right")
            for p in exploration.pareto:
                pareto.add_row(design_label(p.design), _ms(p.latency_ms), *(f"{r.used:,.0f}" for r in p.resources))
            console.print(pareto)
