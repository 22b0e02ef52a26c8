"""``export_onnx``: the network a user deploys, as one ONNX file, checked against the torch model.

The file holds the compressed network as it runs: the plan's channel cuts as physically smaller
tensors, kernel-pattern masks baked into the weights (the zeroed weights stay in dense tensors:
dense CPU kernels gain no speed from them), and int8 operators (QLinearConv / QGemm after ONNX
Runtime's QDQ fusion) for every layer whose weights and activations the plan quantized to at most
8 bits (``nn2hw.deploy.qdq``). Other quantized layers stay float with their fixed-point values,
each listed with the reason.

Check (``check=True``): the torch model and ONNX Runtime (all graph optimizations, 1 thread) run
``CHECK_BATCHES`` seeded inputs (standard normal; token ids for an int64 input, ``deploy.inputs``).

- No int8 layer: max |torch - ORT| <= ``FP32_RTOL`` x max |torch output| (float reassociation and
  ORT's BatchNorm folding only).
- int8 layers: max |torch - ORT| <= ``INT8_STEPS`` quantization steps of the output (the output
  layer's step when an int8 layer produces it, else the coarsest activation step of the int8
  layers). int8 kernels accumulate exactly in int32 while torch accumulates in float, so a value
  on a rounding boundary can land one step away and that step propagates. For classifier outputs
  (batch x classes) the top-1 class must also agree on at least ``MIN_TOP1_AGREEMENT`` of the inputs.
  The profiler must show an int8 kernel for every int8 layer.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nn2hw._checks import as_shape
from nn2hw.deploy.freeze import LayerQuant, freeze, weight_parametrizations
from nn2hw.deploy.inputs import example_input, input_dtype
from nn2hw.deploy.names import parse_node_name
from nn2hw.deploy.qdq import quantize_graph
from nn2hw.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.plan import Plan
    from nn2hw.workload import Workload

DEFAULT_OPSET = 17
CHECK_BATCHES = 8
CHECK_SEED = 0
FP32_RTOL = 1e-4
INT8_STEPS = 2.0
MIN_TOP1_AGREEMENT = 0.875
INT8_KERNELS = frozenset({"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat",
                          "ConvInteger", "DynamicQuantizeMatMul"})
"""ONNX Runtime kernels that compute with int8 operands."""


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote and what its check found.

    ``fp32_layers``: quantized layers kept as float operators, with the reason; ``masked_layers``:
    layers whose pattern-zeroed weights are stored (dense) as zeros; ``int8_kernels``: per int8
    layer, the kernel ONNX Runtime's profiler saw run it; ``tolerance`` bounds ``max_abs_error``
    (see ``tolerance_rule``); ``top1_agreement`` is None for outputs that are not class scores."""

    path: Path
    sha256: str
    input_shape: tuple[int, ...]
    opset: int
    int8_layers: tuple[str, ...] = ()
    fp32_layers: Mapping[str, str] = field(default_factory=dict)
    masked_layers: tuple[str, ...] = ()
    int8_kernels: Mapping[str, str] = field(default_factory=dict)
    checked: bool = False
    max_abs_error: float | None = None
    tolerance: float | None = None
    tolerance_rule: str = ""
    top1_agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "input_shape": list(self.input_shape),
                "opset": self.opset, "int8_layers": list(self.int8_layers), "fp32_layers": dict(self.fp32_layers),
                "masked_layers": list(self.masked_layers), "int8_kernels": dict(self.int8_kernels),
                "checked": self.checked, "max_abs_error": self.max_abs_error, "tolerance": self.tolerance,
                "tolerance_rule": self.tolerance_rule, "top1_agreement": self.top1_agreement}


def export_onnx(model: nn.Module, path: str | Path, *, plan: Plan | None = None, workload: Workload | None = None,
                input_shape: Sequence[int] | None = None, int8: bool = True, check: bool = True,
                opset: int = DEFAULT_OPSET) -> ExportResult:
    """Write the deployable ONNX file of ``model`` (with ``plan`` applied, when given) to ``path``.

    ``input_shape`` (batch included) defaults to the workload's, then the plan's. ``int8=False``
    keeps every layer float (quantized values still on their grid). ``check`` compares torch and
    ONNX Runtime as the module doc states and raises a ModelError beyond the tolerance.
    """
    from nn2hw.workload.onnx_export import to_onnx

    shape = _input_shape(input_shape, workload, plan)
    dtype = input_dtype(workload)
    if plan is not None:
        from nn2hw.compress import apply_plan

        model = apply_plan(plan, model, shape)
    model = model.eval()
    _probe(model, shape, dtype)
    frozen, quantized = freeze(model, int8=int8)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="nn2hw-export-") as folder:
        plain = to_onnx(frozen, shape, Path(folder) / "plain.onnx", dynamo=False, opset=opset, dtype=dtype)
        left, outputs = _write(plain, path, {n: q for n, q in quantized.items() if int8 and q.int8})
    int8_layers = tuple(n for n, q in quantized.items() if int8 and q.int8 and n not in left)
    fp32 = {**{n: q.fp32_reason or "int8 disabled (int8=False)" for n, q in quantized.items()
               if not (int8 and q.int8)}, **left}
    result = ExportResult(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), input_shape=shape,
                          opset=opset, int8_layers=int8_layers, fp32_layers=fp32, masked_layers=_masked(model))
    if not check:
        return result
    return _checked(result, model, quantized, outputs, dtype)


def _input_shape(given: Sequence[int] | None, workload: Workload | None, plan: Plan | None) -> tuple[int, ...]:
    for shape in (given, workload.input_shape if workload is not None else None,
                  plan.input_shape if plan is not None else None):
        if shape:
            return as_shape(shape)
    if given is not None:
        return as_shape(given)
    raise ConfigError("The input shape of the network is unknown (no input_shape, and neither a workload nor a "
                      "plan records one).", "Pass input_shape=(batch, channels, height, width), e.g. (1, 1, 28, 28).")


def _probe(model: nn.Module, shape: tuple[int, ...], dtype: Any) -> None:
    """A ConfigError when the model cannot run on ``shape`` (a wrong rank or channel count)."""
    import torch

    try:
        with torch.inference_mode():
            model(torch.zeros(shape, dtype=dtype))
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{type(model).__name__} cannot run on the input shape {'x'.join(map(str, shape))} "
                          f"({first}).", "Give the input shape the model takes (batch included), e.g. 1x1x28x28.") \
            from None


def _write(plain: Path, path: Path, int8_layers: Mapping[str, LayerQuant]) -> tuple[dict[str, str], dict[str, str]]:
    """Rewrite the plain export with int8 operators and save it to ``path``: (layers left float with the
    reason, graph outputs produced by an int8 layer -> that layer)."""
    import onnx

    proto = onnx.load(str(plain))
    left = quantize_graph(proto, int8_layers) if int8_layers else {}
    producers = {out: parse_node_name(node.name) for node in proto.graph.node for out in node.output}
    outputs = {}
    for item in proto.graph.output:
        parsed = producers.get(item.name)
        if parsed is not None and parsed.path in int8_layers and parsed.path not in left:
            outputs[item.name] = parsed.path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror or exc}.", "Pick a writable path.") from None
    return left, outputs


def _masked(model: nn.Module) -> tuple[str, ...]:
    """Layers with a weight mask (kernel patterns): their zeros are stored densely."""
    from nn2hw.compress._torch import WeightMask

    return tuple(name for name, module in model.named_modules()
                 if any(isinstance(p, WeightMask) for p in weight_parametrizations(module)))


def _checked(result: ExportResult, model: nn.Module, quantized: Mapping[str, LayerQuant],
             outputs: Mapping[str, str], dtype: Any) -> ExportResult:
    import dataclasses

    import torch

    from nn2hw.measure.onnxrt import import_ort, ort_error

    ort = import_ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ort_error(str(exc), ort.__version__) from None
    generator = torch.Generator().manual_seed(CHECK_SEED)
    errors, agree, total, scale = [], 0, 0, 0.0
    for _ in range(CHECK_BATCHES):
        x = example_input(result.input_shape, dtype, generator)
        with torch.inference_mode():
            ref = model(x)
        ref_np = (ref[0] if isinstance(ref, (tuple, list)) else ref).float().numpy()
        try:
            got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        except Exception as exc:
            raise ort_error(str(exc), ort.__version__) from None
        errors.append(float(np.abs(ref_np - got).max()))
        scale = max(scale, float(np.abs(ref_np).max()))
        if ref_np.ndim == 2 and ref_np.shape[1] > 1:
            agree += int((ref_np.argmax(1) == got.argmax(1)).sum())
            total += ref_np.shape[0]
    error = max(errors)
    top1 = agree / total if total else None
    int8_layers = [quantized[n] for n in result.int8_layers]
    if int8_layers:
        out_layer = next(iter(outputs.values()), None)
        step = quantized[out_layer].act_step if out_layer else max(q.act_step for q in int8_layers)
        tolerance = INT8_STEPS * step
        rule = (f"int8: max abs error <= {INT8_STEPS:g} x {step:g} (the "
                f"{'output' if out_layer else 'coarsest int8 activation'} quantization step); top-1 agreement >= "
                f"{MIN_TOP1_AGREEMENT:.1%} on {CHECK_BATCHES} seeded inputs")
    else:
        tolerance = FP32_RTOL * max(scale, 1e-12)
        rule = f"fp32: max abs error <= {FP32_RTOL:g} x max |output| ({scale:.4g}) on {CHECK_BATCHES} seeded inputs"
    kernels = _int8_kernels(result.path, result.int8_layers)
    result = dataclasses.replace(result, checked=True, max_abs_error=error, tolerance=tolerance, tolerance_rule=rule,
                                 top1_agreement=top1, int8_kernels=kernels)
    if error > tolerance or (int8_layers and top1 is not None and top1 < MIN_TOP1_AGREEMENT):
        raise ModelError(f"The exported {result.path.name} disagrees with the torch model: max abs error "
                         f"{error:.3g} (tolerance {tolerance:.3g}), top-1 agreement "
                         f"{'n/a' if top1 is None else f'{top1:.1%}'}; rule: {rule}.",
                         "Export with int8=False to see whether the int8 operators cause it, and report the model "
                         "and plan if the float export disagrees too.")
    missing = [n for n in result.int8_layers if n not in kernels]
    if missing:
        raise ModelError(f"ONNX Runtime ran {len(missing)} int8 layer(s) without an int8 kernel "
                         f"(e.g. {missing[0]!r}): the file would not be faster where the plan quantized.",
                         "Export with int8=False, or report the layer: its QDQ pattern is not fused by this "
                         "ONNX Runtime.")
    return result


def _int8_kernels(path: Path, layers: Sequence[str]) -> dict[str, str]:
    """Per int8 layer, the int8 kernel ONNX Runtime's profiler saw run it."""
    if not layers:
        return {}
    from nn2hw.measure import Protocol, onnx_runner

    found: dict[str, str] = {}
    for kernel in onnx_runner(path, Protocol(threads=1)).profile(1):
        parsed = parse_node_name(kernel.name)
        if kernel.op_type in INT8_KERNELS and parsed is not None and parsed.path in layers:
            found.setdefault(parsed.path, kernel.op_type)
    return found
