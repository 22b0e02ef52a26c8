"""``export_onnx``: the network a user deploys, as one ONNX file, checked against the torch model.

The file holds the compressed network as it runs: the plan's channel cuts as physically smaller
tensors, kernel-pattern masks baked into the weights (the zeroed weights stay in dense tensors:
dense CPU kernels gain no speed from them), and int8 operators (QLinearConv / QGemm after ONNX
Runtime's QDQ fusion) for every layer whose weights and activations the plan quantized to at most
8 bits (``nn2hw.deploy.qdq``). Other quantized layers stay float with their fixed-point values,
each listed with the reason.

Check (``check=True``): the torch model and ONNX Runtime (all graph optimizations, 1 thread) run
``CHECK_BATCHES`` seeded inputs (standard normal; token ids for an int64 input, ``deploy.inputs``).

The int8 layers compute exactly what the fake-quantized torch layers compute: power-of-two scales,
the integer 0 at the zero point (int8 with zero point 0, or uint8 with 128 on an x86 CPU without
VNNI, whose u8 x s8 kernels saturate), and a bias that both add on the int32 accumulator's grid
(``nn2hw.deploy.qdq``). What is left is float rounding elsewhere: a network with quantized
activations is discontinuous, so a last-bit difference of a float op (ORT's fused LayerNorm, GELU,
softmax; a different summation order) can move a value across a rounding boundary of a later
quantizer, and that one step propagates (through a Transformer's attention, to every token). The
torch model does the same to itself: evaluated in float64 instead of float32 its outputs move by up
to ``spread`` (MiniLM with some layers w8a8: 0.2-1.25; ResNet-20 w8a8: 0). So:

- No int8 layer: max |torch - ORT| <= ``FP32_RTOL`` x max |torch output| + ``FLIP_FACTOR`` x spread
  (float reassociation and ORT's BatchNorm folding; spread is 0, and not measured, without
  quantized activations).
- int8 layers: max |torch - ORT| <= ``INT8_STEPS`` quantization steps of the output (the output
  layer's step when an int8 layer produces it, else the coarsest activation step of the int8
  layers) + ``FLIP_FACTOR`` x spread. For classifier outputs (batch x classes) the top-1 class
  must also agree on at least ``MIN_TOP1_AGREEMENT`` of the inputs whose top-1 score leads the
  second by more than 2 x ``FLIP_FACTOR`` x spread (on the others float rounding alone may change
  the class: the torch model's own float64 top-1 does). The profiler must show an int8 kernel for
  every int8 layer.

Because the spread can hide a wrong int8 layer (one layer on a grid twice as coarse moves the
logits less than a flip does), each int8 layer is also checked on its own: ONNX Runtime runs the
file with every int8 layer's input and output as extra outputs, and the torch layer (fake
quantizers included) runs on ONNX Runtime's own input to it. The two outputs must be equal, except
for at most ``LAYER_OFF_FRACTION`` of them one step apart (a sum exactly on a rounding tie whose last
bit torch's float32 accumulation lost). A wrong scale, zero point, weight layout or bias changes far
more (tests/deploy check that it is refused).
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
from nn2hw.deploy.qdq import Rewrite, quantize_graph
from nn2hw.errors import ConfigError, ModelError
from nn2hw.measure.int8 import resolve_int8_storage

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.plan import Plan
    from nn2hw.workload import Workload

DEFAULT_OPSET = 17
CHECK_BATCHES = 8
CHECK_SEED = 0
FP32_RTOL = 1e-4
INT8_STEPS = 2.0
FLIP_FACTOR = 2.0
"""Slack over the float32-vs-float64 spread of the torch model: ORT's float ops differ from torch's
by a few last bits, as float64 does, but flip other boundaries."""
MIN_TOP1_AGREEMENT = 0.875
LAYER_OFF_FRACTION = 1e-3
"""The fraction of an int8 layer's outputs that may be one step off its torch layer's on the same input."""
INT8_KERNELS = frozenset({"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat",
                          "ConvInteger", "DynamicQuantizeMatMul"})
"""ONNX Runtime kernels that compute with int8 operands."""


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote and what its check found.

    ``fp32_layers``: quantized layers kept as float operators, with the reason; ``masked_layers``:
    layers whose pattern-zeroed weights are stored (dense) as zeros; ``int8_kernels``: per int8
    layer, the kernel ONNX Runtime's profiler saw run it; ``tolerance`` bounds ``max_abs_error``
    (see ``tolerance_rule``); ``top1_agreement`` is None for outputs that are not class scores;
    ``int8_layer_off``: the largest fraction of an int8 layer's outputs that differ from its torch
    layer's on the same input (None without int8 layers); ``int8_storage``: how the int8 layers' integers
    are stored (``nn2hw.measure.int8.INT8_STORAGES``; empty without int8 layers) and
    ``int8_storage_reason`` why (the CPU flags that chose it under 'auto', or 'asked for')."""

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
    int8_layer_off: float | None = None
    int8_storage: str = ""
    int8_storage_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "input_shape": list(self.input_shape),
                "opset": self.opset, "int8_layers": list(self.int8_layers), "fp32_layers": dict(self.fp32_layers),
                "masked_layers": list(self.masked_layers), "int8_kernels": dict(self.int8_kernels),
                "checked": self.checked, "max_abs_error": self.max_abs_error, "tolerance": self.tolerance,
                "tolerance_rule": self.tolerance_rule, "top1_agreement": self.top1_agreement,
                "int8_layer_off": self.int8_layer_off, "int8_storage": self.int8_storage,
                "int8_storage_reason": self.int8_storage_reason}


def export_onnx(model: nn.Module, path: str | Path, *, plan: Plan | None = None, workload: Workload | None = None,
                input_shape: Sequence[int] | None = None, int8: bool = True, check: bool = True,
                opset: int = DEFAULT_OPSET, int8_storage: str = "auto") -> ExportResult:
    """Write the deployable ONNX file of ``model`` (with ``plan`` applied, when given) to ``path``.

    ``input_shape`` (batch included) defaults to the workload's, then the plan's. ``int8=False``
    keeps every layer float (quantized values still on their grid). ``check`` compares torch and
    ONNX Runtime as the module doc states and raises a ModelError beyond the tolerance.
    ``int8_storage``: 'auto' (what ONNX Runtime computes exactly with on this CPU: u8u8 on x86 without
    VNNI, else s8s8), 's8s8' or 'u8u8' (for a deployment CPU other than this one; ``nn2hw.measure.int8``).
    """
    from nn2hw.workload.onnx_export import to_onnx

    shape = _input_shape(input_shape, workload, plan)
    dtype = input_dtype(workload)
    storage, why = resolve_int8_storage(int8_storage)
    if plan is not None:
        from nn2hw.compress import apply_plan

        model = apply_plan(plan, model, shape)
    model = model.eval()
    _probe(model, shape, dtype)
    frozen, quantized = freeze(model, int8=int8)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="nn2hw-export-") as folder:
        plain = to_onnx(frozen, shape, Path(folder) / "plain.onnx", dynamo=False, opset=opset, dtype=dtype)
        rewrite, outputs = _write(plain, path, {n: q for n, q in quantized.items() if int8 and q.int8}, storage)
    left = rewrite.left
    int8_layers = tuple(n for n, q in quantized.items() if int8 and q.int8 and n not in left)
    fp32 = {**{n: q.fp32_reason or "int8 disabled (int8=False)" for n, q in quantized.items()
               if not (int8 and q.int8)}, **left}
    result = ExportResult(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), input_shape=shape,
                          opset=opset, int8_layers=int8_layers, fp32_layers=fp32, masked_layers=_masked(model),
                          int8_storage=storage if int8_layers else "",
                          int8_storage_reason=why if int8_layers else "")
    if not check:
        return result
    return _checked(result, model, quantized, outputs, dtype, rewrite.taps)


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


def _write(plain: Path, path: Path, int8_layers: Mapping[str, LayerQuant], storage: str
           ) -> tuple[Rewrite, dict[str, str]]:
    """Rewrite the plain export with int8 operators (stored as ``storage``) and save it to ``path``: (the
    rewrite: layers left float with the reason, tensors around each int8 layer; graph outputs produced by
    an int8 layer -> that layer)."""
    import onnx

    proto = onnx.load(str(plain))
    rewrite = quantize_graph(proto, int8_layers, storage) if int8_layers else Rewrite()
    left = rewrite.left
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
    return rewrite, outputs


def _masked(model: nn.Module) -> tuple[str, ...]:
    """Layers with a weight mask (kernel patterns): their zeros are stored densely."""
    from nn2hw.compress._torch import WeightMask

    return tuple(name for name, module in model.named_modules()
                 if any(isinstance(p, WeightMask) for p in weight_parametrizations(module)))


def _checked(result: ExportResult, model: nn.Module, quantized: Mapping[str, LayerQuant],
             outputs: Mapping[str, str], dtype: Any, taps: Mapping[str, tuple[str, str]]) -> ExportResult:
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
    exact = _float64(model) if any(q.act_bits is not None for q in quantized.values()) else None
    generator = torch.Generator().manual_seed(CHECK_SEED)
    refs, gots, spreads = [], [], [0.0]
    inputs = [example_input(result.input_shape, dtype, generator) for _ in range(CHECK_BATCHES)]
    for x in inputs:
        refs.append(_output(model, x))
        try:
            gots.append(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        except Exception as exc:
            raise ort_error(str(exc), ort.__version__) from None
        if exact is not None:
            spreads.append(float(np.abs(refs[-1] - _output(exact, x.double() if dtype.is_floating_point else x)).max()))
    error = max(float(np.abs(ref - got).max()) for ref, got in zip(refs, gots, strict=True))
    scale, spread = max(float(np.abs(ref).max()) for ref in refs), max(spreads)
    top1 = _top1_agreement(refs, gots, 2 * FLIP_FACTOR * spread)
    flips = (f" + {FLIP_FACTOR:g} x {spread:.3g} (the torch model's own float32-vs-float64 spread: quantized "
             "activations flip on last-bit differences)") if exact is not None else ""
    int8_layers = [quantized[n] for n in result.int8_layers]
    if int8_layers:
        out_layer = next(iter(outputs.values()), None)
        step = quantized[out_layer].out_step if out_layer else max(max(q.act_step, q.out_step) for q in int8_layers)
        tolerance = INT8_STEPS * step + FLIP_FACTOR * spread
        rule = (f"int8: max abs error <= {INT8_STEPS:g} x {step:g} (the "
                f"{'output' if out_layer else 'coarsest int8 activation'} quantization step){flips}; top-1 "
                f"agreement >= {MIN_TOP1_AGREEMENT:.1%} on the inputs whose top-1 margin exceeds "
                f"{2 * FLIP_FACTOR * spread:.3g}, of {CHECK_BATCHES} seeded inputs; every int8 layer equal to its "
                "torch layer on its own input")
    else:
        tolerance = FP32_RTOL * max(scale, 1e-12) + FLIP_FACTOR * spread
        rule = (f"fp32: max abs error <= {FP32_RTOL:g} x max |output| ({scale:.4g}){flips} on {CHECK_BATCHES} "
                "seeded inputs")
    kernels = _int8_kernels(result.path, result.int8_layers)
    layer_off = _layer_check(result.path, {n: taps[n] for n in result.int8_layers}, model, quantized, inputs)
    result = dataclasses.replace(result, checked=True, max_abs_error=error, tolerance=tolerance, tolerance_rule=rule,
                                 top1_agreement=top1, int8_kernels=kernels,
                                 int8_layer_off=max((f for f, _ in layer_off.values()), default=None))
    wrong = {n: found for n, found in layer_off.items() if found[0] > LAYER_OFF_FRACTION or found[1] > 1.0}
    if wrong:
        name, (fraction, steps) = next(iter(wrong.items()))
        raise ModelError(f"The int8 layer {name!r} of {result.path.name} computes something other than its torch "
                         f"layer: on ONNX Runtime's own input to it, {fraction:.2%} of its outputs differ, by up to "
                         f"{steps:.3g} quantization steps ({len(wrong)} int8 layer(s) wrong; at most "
                         f"{LAYER_OFF_FRACTION:.1%} may differ, by one step).",
                         "Export with int8=False meanwhile, and report the model and plan: the int8 rewrite "
                         "(nn2hw.deploy.qdq) does not reproduce the layer's fixed-point grids.")
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


def _layer_check(path: Path, taps: Mapping[str, tuple[str, str]], model: nn.Module,
                 quantized: Mapping[str, LayerQuant], inputs: Sequence[Any]) -> dict[str, tuple[float, float]]:
    """Per int8 layer, (fraction of its outputs that differ, largest difference in its output steps)
    between ONNX Runtime and the torch layer run on ONNX Runtime's own input to that layer."""
    if not taps:
        return {}
    import onnx
    import torch

    from nn2hw.measure.onnxrt import import_ort

    proto = onnx.load(str(path))
    feeds = {i.name for i in proto.graph.input}
    shown = {o.name for o in proto.graph.output} | feeds
    for tensor in {t for pair in taps.values() for t in pair} - shown:
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    ort = import_ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    found = dict.fromkeys(taps, (0.0, 0.0))
    for x in inputs:
        feed = {session.get_inputs()[0].name: x.numpy()}
        values = {**feed, **dict(zip(names, session.run(None, feed)))}
        for name, (tensor_in, tensor_out) in taps.items():
            with torch.inference_mode():
                want = model.get_submodule(name)(torch.from_numpy(values[tensor_in])).float().numpy()
            off = np.abs(want - values[tensor_out]) / quantized[name].out_step
            fraction, steps = found[name]
            found[name] = (max(fraction, float((off > 0.5).mean())), max(steps, float(off.max())))
    return found


def _top1_agreement(refs: Sequence[np.ndarray], gots: Sequence[np.ndarray], margin: float) -> float | None:
    """For class scores (batch x classes), the fraction of rows whose top-1 class agrees, among the
    rows whose top-1 score leads the second by more than ``margin`` (on the others float rounding
    alone may change the class); None for other outputs or when no row leads by that much."""
    agree = total = 0
    for ref, got in zip(refs, gots, strict=True):
        if ref.ndim != 2 or ref.shape[1] < 2:
            return None
        top2 = np.sort(ref, axis=1)[:, -2:]
        decided = top2[:, 1] - top2[:, 0] > margin
        agree += int((ref.argmax(1) == got.argmax(1))[decided].sum())
        total += int(decided.sum())
    return agree / total if total else None


def _output(model: nn.Module, x: Any) -> np.ndarray:
    """``model``'s (first) output on ``x`` as float32 NumPy."""
    import torch

    with torch.inference_mode():
        out = model(x)
    return (out[0] if isinstance(out, (tuple, list)) else out).float().numpy()


def _float64(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model``: the same fixed-point network with float rounding ~1e-16 instead
    of ~1e-7, so its distance to ``model`` is how far float rounding alone moves the outputs."""
    import copy

    return copy.deepcopy(model).double().eval()


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
