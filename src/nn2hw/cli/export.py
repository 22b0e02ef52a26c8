"""``nn2hw export``: a result bundle's network as the ONNX file a user deploys.

    nn2hw export results/best --onnx best.onnx
    nn2hw export results/best --onnx best.onnx --input-shape 8x1x28x28 --json export.json

The file has the plan's channel cuts as smaller tensors, pattern masks baked into dense weights,
and int8 operators where the plan quantized weights and activations to <= 8 bits; its outputs
are checked against the torch model (the tolerance is printed). A thin shell over
``nn2hw.api.export_bundle``.
"""

from __future__ import annotations

import argparse

from nn2hw.cli._common import console, require_output_files, write_json
from nn2hw.cli._options import add_json
from nn2hw.measure.int8 import INT8_STORAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw export``."""
    parser = subparsers.add_parser(
        "export", help="write a result bundle's network as a deployable ONNX file (int8 where quantized)",
        description="Export the network of a result bundle to ONNX: physically cut shapes, masks baked in, exact "
                    "int8 operators (QLinearConv/QGemm) where the plan quantized weights and activations to <= 8 "
                    "bits; the outputs are checked against the torch model on seeded inputs.")
    parser.add_argument("bundle", metavar="BUNDLE", help="result bundle folder (written by a search)")
    parser.add_argument("--onnx", metavar="FILE", required=True, help="ONNX file to write")
    parser.add_argument("--input-shape", metavar="NxCxHxW",
                        help="input shape with batch, e.g. 1x1x28x28 (default: the bundle's model's)")
    parser.add_argument("--no-int8", action="store_true", help="keep quantized layers as float operators")
    parser.add_argument("--int8-storage", choices=("auto", *INT8_STORAGES), default="auto",
                        help="how int8 integers are stored: u8u8 for an x86 CPU without VNNI (its u8 x s8 kernels "
                             "saturate), s8s8 for one with VNNI or for ARM; auto (default): what this CPU runs exactly")
    parser.add_argument("--no-check", action="store_true", help="skip the torch-vs-ONNX Runtime check")
    parser.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default 17)")
    add_json(parser, "the export summary")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from nn2hw._checks import as_shape
    from nn2hw.api import export_bundle
    from nn2hw.deploy.export import DEFAULT_OPSET

    require_output_files({"--onnx": args.onnx, "--json": args.json})
    shape = as_shape(args.input_shape) if args.input_shape is not None else None
    result = export_bundle(args.bundle, args.onnx, input_shape=shape, int8=not args.no_int8,
                           check=not args.no_check, opset=args.opset or DEFAULT_OPSET,
                           int8_storage=args.int8_storage)
    console.print(f"wrote {result.path} (input {'x'.join(map(str, result.input_shape))}, opset {result.opset}, "
                  f"sha256 {result.sha256[:16]}...)", soft_wrap=True, markup=False)
    storage = (f"; integers stored as {result.int8_storage} ({result.int8_storage_reason})"
               if result.int8_storage else "")
    console.print(f"int8 layers: {len(result.int8_layers)} "
                  f"({', '.join(sorted(set(result.int8_kernels.values()))) or 'no int8 kernels'}){storage}",
                  soft_wrap=True)
    for name, reason in result.fp32_layers.items():
        console.print(f"fp32 layer {name}: {reason}", soft_wrap=True, markup=False)
    if result.masked_layers:
        console.print(f"{len(result.masked_layers)} pattern-pruned layers: zeroed weights stored densely (no speed-up "
                      "on dense CPU kernels)", soft_wrap=True)
    if result.checked:
        top1 = "" if result.top1_agreement is None else f", top-1 agreement {result.top1_agreement:.1%}"
        console.print(f"checked: max abs error {result.max_abs_error:.3g} <= {result.tolerance:.3g}{top1} "
                      f"({result.tolerance_rule})", soft_wrap=True)
    if args.json:
        console.print(f"wrote {write_json(args.json, result.to_dict())}", markup=False)
    return 0
