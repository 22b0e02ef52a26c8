"""``nn2hw predictor``: learned latency predictors (build on this machine, fit from a CSV, check).

    nn2hw predictor build --device cpu --out cpu.json [--budget-s 120] [--seed 0] [--threads 1]
    nn2hw predictor fit --measurements phone.csv --out phone.json [--device pixel4] [--seed 0]
    nn2hw predictor check phone.json --measurements held_out.csv [--json report.json]

``build`` samples and times kernels on this CPU (nn-Meter's way; the zoo's workloads are the shape
prior); ``fit`` learns a whole-network predictor from a CSV of measured networks (``network``: a zoo
model, an ONNX file or a workload JSON; optional ``dataset`` and ``input_shape`` like 1x1x28x28;
``latency_ms``); ``check`` prints the fraction within +-5 % and +-10 %, RMSPE and Kendall tau on a
CSV of held-out measurements. Predictor files are JSON (measurements + settings), refitted on load.
A thin shell over ``nn2hw.predict``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from nn2hw.cli._common import console, err_console, write_json
from nn2hw.cli._options import add_json, add_seed
from nn2hw.errors import ConfigError
from nn2hw.predict.sampling import DEFAULT_BUDGET_S
from nn2hw.workload import Workload


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw predictor`` with ``build``, ``fit`` and ``check``."""
    parser = subparsers.add_parser(
        "predictor", help="learned latency predictors: build on this CPU, fit from measurements, check",
        description="Latency predictors for devices you measured: `build` times kernels on this machine, `fit` "
                    "learns from a CSV of whole-network latencies of any device, `check` scores a predictor on "
                    "held-out measurements.")
    commands = parser.add_subparsers(dest="predictor_command", metavar="SUBCOMMAND", required=True)

    build = commands.add_parser("build", help="sample and time kernels on this machine (nn-Meter's way)",
                                description="Sample kernel configurations from the zoo's shapes, time them on this "
                                            "CPU and fit one regressor per kernel type.")
    build.add_argument("--device", default="cpu", help="the device to build for (only 'cpu': this machine)")
    build.add_argument("--out", required=True, metavar="FILE", help="predictor file to write (JSON)")
    build.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, metavar="S",
                       help=f"time budget in seconds ({DEFAULT_BUDGET_S:g})")
    add_seed(build, "kernel sampling")
    build.add_argument("--threads", type=int, default=1, metavar="N", help="runtime threads while timing (1)")
    build.set_defaults(handler=_build)

    fit = commands.add_parser("fit", help="fit a whole-network predictor from a measurement CSV",
                              description="Learn a device's latency from its whole-network measurements (CSV "
                                          "columns: network, optional dataset and input_shape, latency_ms).")
    fit.add_argument("--measurements", required=True, metavar="CSV", help="measured networks and latencies")
    fit.add_argument("--out", required=True, metavar="FILE", help="predictor file to write (JSON)")
    fit.add_argument("--device", default=None, metavar="NAME", help="the measured device's name (recorded)")
    add_seed(fit, "the regressor")
    fit.set_defaults(handler=_fit)

    check = commands.add_parser("check", help="accuracy of a predictor on held-out measurements",
                                description="Fraction within +-5 %% and +-10 %%, RMSPE and Kendall tau of a "
                                            "predictor's latencies against a CSV of measurements it never saw.")
    check.add_argument("predictor", metavar="FILE", help="predictor file (from build or fit)")
    check.add_argument("--measurements", required=True, metavar="CSV", help="held-out measured networks")
    add_json(check, "the accuracy report")
    check.set_defaults(handler=_check)


def resolve_network(network: str, dataset: str | None, input_shape: tuple[int, ...] | None) -> Workload:
    """A CSV ``network`` cell as a workload: an ONNX file, a workload JSON file, or a zoo model name."""
    from nn2hw.api import load_workload

    lowered = network.lower()
    if lowered.endswith(".onnx"):
        from nn2hw.workload import from_onnx

        workload = from_onnx(network, input_shape=input_shape)
    elif lowered.endswith(".json"):
        workload = load_workload(workload=network)
    else:
        workload = load_workload(model=network, dataset=dataset)
    if input_shape is not None and tuple(workload.input_shape) != input_shape:
        raise ConfigError(f"{network} takes input shape {'x'.join(map(str, workload.input_shape))}, not "
                          f"{'x'.join(map(str, input_shape))} as the CSV says.",
                          "Leave input_shape empty, or measure and list an ONNX file exported with that shape.")
    return workload


def _build(args: argparse.Namespace) -> int:
    import nn2hw.predict as predict
    from nn2hw.zoo.bake import packaged_workloads

    predictor = predict.build(args.device, budget_s=args.budget_s, seed=args.seed, threads=args.threads,
                              workloads=packaged_workloads(),
                              progress=lambda line: err_console.print(line, highlight=False, markup=False))
    path = predictor.save(args.out)
    console.print(f"wrote {path} ({predictor.kind} predictor for {predictor.device})", markup=False)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from nn2hw.predict import fit
    from nn2hw.predict.measurements import read_measurements

    workloads, latencies = read_measurements(args.measurements, resolve_network)
    predictor = fit(workloads, latencies, device=args.device, seed=args.seed)
    path = predictor.save(args.out)
    console.print(f"fitted a whole-network predictor for {predictor.device} on {len(workloads)} networks; wrote {path}",
                  markup=False)
    return 0


def _check(args: argparse.Namespace) -> int:
    from nn2hw.predict import accuracy, load
    from nn2hw.predict.measurements import read_measurements

    predictor = load(args.predictor)
    workloads, latencies = read_measurements(args.measurements, resolve_network)
    result = accuracy(predictor, workloads, latencies)
    console.print(result.table(escape(f"{Path(args.predictor).name} ({predictor.kind}, {predictor.device}) on "
                                      f"{Path(args.measurements).name}")))
    if args.json:
        report = {"predictor": str(args.predictor), "kind": predictor.kind, "device": predictor.device,
                  "measurements": str(args.measurements), **result.to_dict()}
        console.print(f"wrote {write_json(args.json, report)}", markup=False)
    return 0
