"""A learned latency predictor as a hardware template (``--hardware predictor:FILE``).

Any device a user has measured becomes a target: ``nn2hw predictor fit`` (whole-network
measurements of a phone or a board) or ``nn2hw predictor build`` (kernels measured on this CPU)
writes a predictor file, and ``analyze``/``search`` cost networks with it. A kernel predictor
reports one record per runtime kernel (the layers the runtime fuses into it are named); a
whole-network predictor one record for the network. ``predicted_cost`` is shared with the
measured ``cpu`` template, which predicts candidates the same way and times the finalists.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nn2hw.errors import ConfigError
from nn2hw.hardware.base import TEMPLATES, TRANSFORMER_SPACE_OPTIONS, HardwareTemplate, with_transformer_remedies
from nn2hw.hardware.records import Execution, Exploration, LayerCost, NetworkCost, Uncosted
from nn2hw.paths import cache_root
from nn2hw.workload import Layer, OpKind, Workload
from nn2hw.workload.layer import COMPUTE_KINDS

if TYPE_CHECKING:
    from nn2hw.predict import Predictor

BOTTLENECKS = {
    "compute": "a dense kernel (convolution, GEMM, matmul): its time grows with its MACs; fewer channels, or int8 "
               "where the runtime has int8 kernels, shorten it",
    "memory": "an element-wise, pooling, normalization or layout kernel: its time grows with the bytes it moves; "
              "fewer channels feeding it shorten it",
    "compute-fp32": "a dense kernel whose int8 form this device runs no faster, as its kernel predictor prices it "
                    "(e.g. ONNX Runtime on x86 without VNNI): only fewer channels shorten it",
    "network": "a whole-network prediction: the predictor has no per-layer times",
    "overhead": "the runtime's per-inference work outside kernels (session, allocation, thread hand-off): no "
                "network change removes it",
}
INT8_SLOWER = "compute-fp32"
REMEDIES = with_transformer_remedies({"compute": ("channel_cut", "quantize"), INT8_SLOWER: ("channel_cut",),
                                      "memory": ("channel_cut",), "network": ("channel_cut",)})
"""Shape-changing cuts pay on dense CPU kernels (channel cuts, and in a Transformer head removal and layer
drops: ``TRANSFORMER_REMEDIES``); zeroed weights do not, so neither kernel patterns nor block-structured
pruning are offered (measured: 1.00x for both, docs/measured-devices.md and docs/transformers.md); int8
only where the kernel predictor prices it faster than fp32 (``label_base``: other dense kernels are
``compute-fp32``)."""
SPACE_OPTIONS = {"quantize": ("w8a8",), "channel_cut": (0.75, 0.5, 0.375, 0.25, 0.125), **TRANSFORMER_SPACE_OPTIONS}
"""A CPU runtime runs int8 kernels (ONNX Runtime's QLinearConv, QGemm) only for 8-bit weights and
activations together (narrower weights alone still run in fp32); channel cuts reach further than
the default (a cut pays roughly in proportion on dense kernels, docs/measured-devices.md); heads are
kept at ``head_prune``'s default 3/4, 1/2 or 1/4; layers are dropped in Transformers only (a CNN's
blocks stay as its searches had them)."""

EXECUTION = {
    OpKind.CONV: Execution.ARRAY, OpKind.LINEAR: Execution.ARRAY, OpKind.MATMUL: Execution.ARRAY,
    OpKind.POOL: Execution.VECTOR, OpKind.ELTWISE: Execution.VECTOR, OpKind.SOFTMAX: Execution.VECTOR,
    OpKind.NORM: Execution.VECTOR, OpKind.EMBED: Execution.VECTOR, OpKind.ACT: Execution.VECTOR,
    OpKind.CONCAT: Execution.VECTOR, OpKind.PAD: Execution.VECTOR, OpKind.SLICE: Execution.VECTOR,
    OpKind.RESHAPE: Execution.LAYOUT,
}
"""How a CPU runtime runs each op kind when nothing fuses it: dense kernels and the rest. The
runtime's graph optimizations fuse some ops into their producer (batch norm folded into a
convolution, an activation into it): those are reported as fused into the kernel that runs them."""
FUSED_REASON = "run inside the runtime kernel {kernel!r} (fused by the runtime's graph optimizations)"
WHOLE_REASON = "inside the whole-network prediction (a whole-network predictor has no per-layer times)"
UNKERNELED_REASON = "no kernel of its own on this runtime (constant-folded, or data layout only)"
PREDICTOR_DIR = "predictors"
"""Folder under the cache root (``NN2HW_CACHE``) where built predictors are kept by name."""


def predictor_dir() -> Path:
    return cache_root() / PREDICTOR_DIR


def bottleneck_of(layers: Sequence[Layer]) -> str:
    """'compute' for a kernel with a dense op among its layers, else 'memory'."""
    return "compute" if any(layer.kind in COMPUTE_KINDS for layer in layers) else "memory"


def kernel_coverage(workload: Workload, predictor: Predictor) -> dict[str, tuple[str, ...]]:
    """Kernel name -> the workload layers it runs (the first is the kernel's own layer)."""
    if predictor.kind == "kernel":
        from nn2hw.predict.kernels import kernels_of

        return {kernel.name: tuple(kernel.layers) for kernel in kernels_of(workload)}
    return {"network": tuple(layer.name for layer in workload.layers if layer.kind is not OpKind.INPUT)}


def predicted_cost(template: HardwareTemplate, device: str, workload: Workload, predictor: Predictor, *,
                   scale: float = 1.0, clock_mhz: float = 0.0, notes: Sequence[str] = ()) -> NetworkCost:
    """The predictor's per-kernel milliseconds (times ``scale``, a calibration on a measured base
    network) as a cost record: one ``LayerCost`` per kernel, the layers it fuses as ``Uncosted``."""
    per_kernel = predictor.predict_layers(workload)
    coverage = kernel_coverage(workload, predictor)
    by_name = {layer.name: layer for layer in workload.layers}
    costs: list[LayerCost] = []
    uncosted: list[Uncosted] = []
    seen: set[str] = set()
    for kernel, ms in per_kernel.items():
        names = coverage.get(kernel, ())
        layers = [by_name[n] for n in names if n in by_name]
        whole = kernel == "network" and predictor.kind != "kernel"
        label = "network" if whole else bottleneck_of(layers)
        execution = Execution.VECTOR if whole or label == "memory" else Execution.ARRAY
        head = layers[0].name if layers and not whole else kernel
        latency_ms = ms * scale
        costs.append(LayerCost(name=head, op=kernel if whole else _kernel_op(layers, kernel), macs=sum(
            layer.macs for layer in layers), cycles=latency_ms * clock_mhz * 1e3, latency_ms=latency_ms,
            bottleneck=label, execution=execution))
        seen.add(head)
        for layer in layers:
            if layer.name != head:
                reason = WHOLE_REASON if whole else FUSED_REASON.format(kernel=head)
                uncosted.append(template.uncosted(layer, None) if layer.kind is OpKind.OTHER else
                                Uncosted(layer.name, layer.op or layer.kind.value, reason, Execution.FUSED, head))
                seen.add(layer.name)
    for layer in workload.layers:
        if layer.kind is not OpKind.INPUT and layer.name not in seen:
            mode = template.execution_of(layer, {})
            reason = UNKERNELED_REASON if mode is not None else template.execution_reason(layer, mode)
            uncosted.append(Uncosted(layer.name, layer.op or layer.kind.value, reason,
                                     None if mode is None else Execution.LAYOUT))
    return NetworkCost(template=template.name, device=device, design={}, clock_mhz=clock_mhz, layers=tuple(costs),
                       uncosted=tuple(uncosted), notes=tuple(notes))


def _kernel_op(layers: Sequence[Layer], kernel: str) -> str:
    """The kernel's ops as 'Conv2d+BatchNorm2d+ReLU' (its layers in order)."""
    return "+".join(layer.op or layer.kind.value for layer in layers) or kernel


def int8_slower(workload: Workload, predictor: Predictor) -> tuple[str, ...]:
    """Heads of ``workload``'s dense kernels (a conv or linear layer among their layers) whose int8 form
    (w8a8: weights and inputs of 8 bits, its own kernels with the layers they cover) ``predictor``
    prices no faster than the fp32 kernel: where int8 does not pay on its device."""
    from nn2hw.predict.kernels import kernels_of

    dense = (OpKind.CONV, OpKind.LINEAR)
    quantized = replace(workload, layers=tuple(replace(layer, weight_bits=8, input_bits=8) if layer.kind in dense
                                               else layer for layer in workload.layers))
    fp32_ms, int8_ms = predictor.predict_layers(workload), predictor.predict_layers(quantized)
    owner = {layer: kernel.name for kernel in kernels_of(quantized) for layer in kernel.layers}
    kinds = {layer.name: layer.kind for layer in workload.layers}
    slower = []
    for kernel in kernels_of(workload):
        if not any(kinds.get(name) in dense for name in kernel.layers):
            continue
        int8_kernels = {owner[name] for name in kernel.layers if name in owner}
        if sum(int8_ms.get(name, 0.0) for name in int8_kernels) >= fp32_ms.get(kernel.name, 0.0):
            slower.append(kernel.name)
    return tuple(slower)


class PredictedTemplate(HardwareTemplate):
    """A device whose latency comes from a predictor: no design to explore (one design, itself),
    a runtime's kernels and fusions, the remedies that pay on a CPU. ``cost`` is the subclass's and
    ``predictor`` names the predictor it costs with."""

    bottlenecks = BOTTLENECKS
    remedies = REMEDIES
    space_options = SPACE_OPTIONS
    execution = EXECUTION
    fused_by_graph = True

    @abstractmethod
    def predictor(self, device: str | None, options: Mapping[str, Any]) -> Predictor:
        """The predictor ``cost`` uses for ``device`` under ``options``."""

    def label_base(self, workload: Workload, cost: NetworkCost, device: str | None = None,
                   **options: Any) -> NetworkCost:
        """Relabel the dense kernels whose int8 form a kernel predictor prices no faster as
        ``compute-fp32``, whose remedies leave out int8 (a whole-network predictor: unchanged)."""
        predictor = self.predictor(device, options)
        if predictor.kind != "kernel":
            return cost
        slower = set(int8_slower(workload, predictor))
        layers = tuple(replace(layer, bottleneck=INT8_SLOWER) if layer.name in slower and layer.bottleneck == "compute"
                       else layer for layer in cost.layers)
        moved = [layer.name for layer in layers if layer.bottleneck == INT8_SLOWER]
        if not moved:
            return cost
        shown = ", ".join(moved[:4]) + (f" and {len(moved) - 4} more" if len(moved) > 4 else "")
        note = (f"int8 not offered on {len(moved)} dense kernel(s) whose int8 form the kernel predictor prices no "
                f"faster than fp32 on this device ({shown})")
        return replace(cost, layers=layers, notes=(*cost.notes, note))

    def design_fields(self) -> Sequence[str]:
        return ()

    def parse_design(self, params: Mapping[str, Any]) -> Any:
        return {}

    def explore(self, workload: Workload, device: str | None = None, grid: Any = None,
                **options: Any) -> Exploration:
        """The one design: the cost, as its own Pareto set."""
        start = time.perf_counter()
        cost = self.cost(workload, {}, device, **options)
        return Exploration(best=cost, pareto=(cost,), n_designs=1, n_feasible=1, seconds=time.perf_counter() - start)


class PredictorTemplate(PredictedTemplate):
    """A device known by its measurements: latency from a predictor file, per kernel or per network."""

    name = "predictor"
    description = ("Any device you measured: latency from a predictor file (`nn2hw predictor fit` from whole-network "
                   "measurements, `nn2hw predictor build` from kernels timed on this CPU); --hardware "
                   "predictor:FILE or predictor:NAME (a file in NN2HW_CACHE/predictors)")

    def devices(self) -> Sequence[str]:
        """Names of the predictors kept in the cache folder (``NN2HW_CACHE/predictors/NAME.json``)."""
        folder = predictor_dir()
        return tuple(sorted(p.stem for p in folder.glob("*.json"))) if folder.is_dir() else ()

    def accepts_device(self, device: str) -> bool:
        predictor_path(device)
        return True

    def predictor(self, device: str | None, options: Mapping[str, Any]) -> Predictor:
        return load_predictor(predictor_path(device))

    def cost(self, workload: Workload, design: Any, device: str | None = None, **options: Any) -> NetworkCost:
        return predicted_cost(self, str(device), workload, self.predictor(device, options),
                              notes=(f"predicted by {predictor_path(device)}",))


def predictor_path(device: str | None) -> Path:
    """The predictor file a ``predictor:DEVICE`` names: a path, or a name in the cache folder."""
    if not device:
        raise ConfigError("The predictor template needs a predictor file: --hardware predictor:FILE.",
                          "Fit one with `nn2hw predictor fit --measurements CSV --out FILE` (or build one for this "
                          "CPU with `nn2hw predictor build --device cpu --out FILE`).")
    path = Path(device)
    if path.is_file():
        return path
    named = predictor_dir() / f"{device}.json"
    if named.is_file():
        return named
    raise ConfigError(f"No predictor file {device!r} (neither a file nor a name in {predictor_dir()}).",
                      "Give the path of a file written by `nn2hw predictor fit`/`build`, or fit one first.")


_LOADED: dict[tuple[str, float], Predictor] = {}


def load_predictor(path: Path) -> Predictor:
    """The predictor in ``path``, refitted once per file version (a search costs thousands of candidates)."""
    from nn2hw.predict import load

    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _LOADED:
        _LOADED[key] = load(path)
    return _LOADED[key]


TEMPLATES.register(PredictorTemplate.name, PredictorTemplate())
