"""Which engine runs each layer, and the layer columns the vectorized cost model reads.

The template runs every standard convolution on the Tm x Tn engine, every depthwise
convolution on the depthwise engine (or, without one, as ``groups`` one-channel convolutions on
the standard engine), a grouped convolution as ``groups`` independent small convolutions, and a
linear layer as a 1x1 convolution on a 1x1 map when ``linear="engine"``. By default linear
layers stay on the host, as in HotNAS (its published latencies sum convolutions only); every
op that is not costed is listed with the reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from nn2hw.errors import HardwareError
from nn2hw.hardware.base import HardwareTemplate
from nn2hw.hardware.records import Execution, Uncosted
from nn2hw.workload import Layer, OpKind, Workload

LINEAR_MODES = ("host", "engine")
"""``host``: linear layers are not costed (HotNAS); ``engine``: run as 1x1 convs on the standard engine."""

EXECUTION = {
    OpKind.CONV: Execution.ARRAY, OpKind.LINEAR: Execution.HOST, OpKind.MATMUL: Execution.HOST,
    OpKind.EMBED: Execution.OMITTED, OpKind.SOFTMAX: Execution.OMITTED, OpKind.POOL: Execution.OMITTED,
    OpKind.ELTWISE: Execution.OMITTED, OpKind.ACT: Execution.FUSED, OpKind.NORM: Execution.FUSED,
    OpKind.RESHAPE: Execution.LAYOUT, OpKind.CONCAT: Execution.LAYOUT, OpKind.PAD: Execution.LAYOUT,
    OpKind.SLICE: Execution.LAYOUT,
}
"""How the tiled-conv template runs each op kind (linear layers and matmuls: on the engine with
``linear=engine``). HotNAS's model costs convolutions only; what it leaves out is said, with why."""
REASONS = {
    OpKind.POOL: "pooling is not modelled by the tiled-conv template (HotNAS sums convolutions only); it would "
                 "add about one cycle per output element on a pooling unit",
    OpKind.ELTWISE: "element-wise op (residual add...): not modelled, it streams through the output stage",
    OpKind.ACT: "activation: fused into the convolution's output stage (no extra cycles)",
    OpKind.NORM: "batch normalization: folded into the preceding convolution's weights and bias at deployment",
    OpKind.RESHAPE: "reshape: data layout only, no compute",
    OpKind.CONCAT: "concatenation: data layout only (outputs written side by side)",
    OpKind.PAD: "padding: data layout only",
    OpKind.SLICE: "slicing / subsampling: data layout only",
    OpKind.LINEAR: "linear layer runs on the host CPU as in HotNAS (published latencies exclude FC); pass "
                   "--hw-param linear=engine to cost it as a 1x1 convolution on the standard engine",
    OpKind.MATMUL: "product of two activations (attention) runs on the host CPU like the linear layers; pass "
                   "--hw-param linear=engine to cost it as grouped 1x1 convolutions on the standard engine",
    OpKind.EMBED: "embedding lookup: a table read, not modelled by the tiled-conv template (HotNAS costs "
                  "convolutions only)",
    OpKind.SOFTMAX: "softmax: not modelled by the tiled-conv template (HotNAS costs convolutions only); it would "
                    "run on a vector or host unit",
}

UNFOLDED_NORM = ("layer/group normalization: its statistics are computed per input, so it cannot be folded into "
                 "weights; not modelled by the tiled-conv template (HotNAS costs convolutions only): it would run "
                 "on a vector or host unit, about 5 operations per element")
"""Why a norm that does not fold (LayerNorm in Transformers) has no cycles here."""

@dataclass(frozen=True)
class EngineLayers:
    """Float64 columns (one entry per layer) of the layers one engine runs.

    ``M``/``N`` are the output/input channels of one group, ``reps`` how many groups run one
    after another, ``R``/``C`` the output rows/columns, ``area`` the kernel's dense size,
    ``kept`` the weights a kernel pattern keeps (MAC cycles per output), ``kmax`` the larger
    kernel side (checked against Tk), and the bit widths of the three operands.
    """

    names: tuple[str, ...]
    positions: np.ndarray
    B: np.ndarray
    M: np.ndarray
    N: np.ndarray
    R: np.ndarray
    C: np.ndarray
    Sh: np.ndarray
    Sw: np.ndarray
    Ph: np.ndarray
    Pw: np.ndarray
    area: np.ndarray
    kept: np.ndarray
    reps: np.ndarray
    kmax: np.ndarray
    wbits: np.ndarray
    ibits: np.ndarray
    obits: np.ndarray

    COLUMNS = ("B", "M", "N", "R", "C", "Sh", "Sw", "Ph", "Pw", "area", "kept", "reps", "kmax", "wbits",
               "ibits", "obits")

    def __len__(self) -> int:
        return len(self.names)

    def unique(self) -> tuple[EngineLayers, np.ndarray]:
        """Distinct layer shapes and how often each occurs (for sweeps: same sum, less work)."""
        if not self.names:
            return self, np.zeros(0)
        table = np.stack([getattr(self, c) for c in self.COLUMNS], axis=1)
        rows, first, counts = np.unique(table, axis=0, return_index=True, return_counts=True)
        order = np.argsort(first)  # keep first-appearance order so sums add in a stable order
        rows, counts, first = rows[order], counts[order], first[order]
        cols = {c: np.ascontiguousarray(rows[:, i]) for i, c in enumerate(self.COLUMNS)}
        names = tuple(self.names[i] for i in first)
        return EngineLayers(names=names, positions=self.positions[first], **cols), counts.astype(float)


@dataclass(frozen=True)
class LayerPlan:
    """The costed layers in workload order, split by engine, plus everything not costed."""

    layers: tuple[Layer, ...]
    engines: tuple[str, ...]
    std: EngineLayers
    dw: EngineLayers
    uncosted: tuple[Uncosted, ...]
    compat_changed: tuple[str, ...] = ()

    def kernel_limit_layer(self, engine: str, tk: int) -> Layer | None:
        """The first layer of ``engine`` whose kernel exceeds ``tk`` (None when all fit)."""
        table = self.std if engine == "cconv" else self.dw
        over = np.nonzero(table.kmax > tk)[0]
        return None if not len(over) else self.layers[int(table.positions[over[0]])]


def _columns(rows: list[tuple[Layer, int, int, int]]) -> dict[str, np.ndarray]:
    """Columns for (layer, reps, M per group, N per group) rows."""
    def col(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=float)

    return {
        "B": col([r[0].batch for r in rows]), "M": col([r[2] for r in rows]), "N": col([r[3] for r in rows]),
        "R": col([r[0].out_h for r in rows]), "C": col([r[0].out_w for r in rows]),
        "Sh": col([r[0].stride_h for r in rows]), "Sw": col([r[0].stride_w for r in rows]),
        "Ph": col([r[0].pad_h for r in rows]), "Pw": col([r[0].pad_w for r in rows]),
        "area": col([r[0].kernel_area for r in rows]), "kept": col([r[0].kept_weights for r in rows]),
        "reps": col([r[1] for r in rows]), "kmax": col([max(r[0].kernel_h, r[0].kernel_w) for r in rows]),
        "wbits": col([r[0].weight_bits for r in rows]), "ibits": col([r[0].input_bits for r in rows]),
        "obits": col([r[0].output_bits for r in rows]),
    }


def _engine_table(rows: list[tuple[Layer, int, int, int]], positions: list[int]) -> EngineLayers:
    return EngineLayers(names=tuple(r[0].name for r in rows), positions=np.asarray(positions, dtype=int),
                        **_columns(rows))


def compat_shapes(workload: Workload) -> tuple[Workload, tuple[str, ...]]:
    """Reproduce the HotNAS DSE's sequential shape tracking (reference notes 2.11 item 4, 2.12).

    The authors walked the modules in order and fed every convolution the previous conv's (or
    pool's) output, so a residual block's 1x1/s2 downsample conv saw the already-downsampled
    tensor and every later stage ran at half its true size. Only for reproducing their files.
    Returns the rewritten workload and the names of the convolutions whose output size changed.
    """
    first = next((layer for layer in workload.layers if layer.kind is OpKind.CONV), None)
    if first is None:
        return workload, ()
    h, w = first.in_h, first.in_w
    changed: list[str] = []
    new: dict[str, Layer] = {}
    for layer in workload.layers:
        if layer.kind is OpKind.CONV:
            oh = (h + 2 * layer.pad_h - layer.dilation_h * (layer.kernel_h - 1) - 1) // layer.stride_h + 1
            ow = (w + 2 * layer.pad_w - layer.dilation_w * (layer.kernel_w - 1) - 1) // layer.stride_w + 1
            if oh < 1 or ow < 1:
                raise HardwareError(
                    f"The compatibility shape tracking shrinks {layer.name!r}'s input to {h}x{w}, too small for "
                    f"its {layer.kernel_h}x{layer.kernel_w} kernel.",
                    "Drop --compat-shapes: it only exists to reproduce the published HotNAS files.")
            if (oh, ow) != (layer.out_h, layer.out_w):
                changed.append(layer.name)
                new[layer.name] = replace(layer, in_h=h, in_w=w, out_h=oh, out_w=ow)
            h, w = oh, ow
        elif layer.kind is OpKind.POOL:
            if "adaptive" in layer.op.lower() or layer.op in ("mean", "amax"):
                h, w = layer.out_h, layer.out_w
            else:
                h = max((h + 2 * layer.pad_h - layer.kernel_h) // layer.stride_h + 1, 1)
                w = max((w + 2 * layer.pad_w - layer.kernel_w) // layer.stride_w + 1, 1)
    if not changed:
        return workload, ()
    return replace(workload, layers=tuple(new.get(x.name, x) for x in workload.layers)), tuple(changed)


@lru_cache(maxsize=64)
def plan_layers(template: HardwareTemplate, workload: Workload, has_dw: bool, linear: str = "host",
                compat: bool = False) -> LayerPlan:
    """Split ``workload`` between the engines (see the module docstring): ``template`` (the
    registered fpga template) says how each layer runs and why one is not costed; cached per workload."""
    changed: tuple[str, ...] = ()
    if compat:
        workload, changed = compat_shapes(workload)
    std_rows: list[tuple[Layer, int, int, int]] = []
    dw_rows: list[tuple[Layer, int, int, int]] = []
    std_pos: list[int] = []
    dw_pos: list[int] = []
    costed: list[Layer] = []
    engines: list[str] = []
    uncosted: list[Uncosted] = []
    for layer in workload.layers:
        if layer.kind is OpKind.INPUT:
            continue
        mode = template.execution_of(layer, {"linear": linear})
        if mode is not Execution.ARRAY:
            uncosted.append(template.uncosted(layer, mode))
            continue
        if layer.dilation_h > 1 or layer.dilation_w > 1:
            raise HardwareError(
                f"Layer {layer.name!r} is a dilated convolution (dilation {layer.dilation_h}x{layer.dilation_w}); "
                "the tiled-convolution template has no dilation support.",
                "Cost it on another template, or describe it as a dense convolution with the dilated kernel size.")
        position = len(costed)
        kind = layer.conv_type or "linear"
        if kind == "depthwise" and has_dw:
            dw_rows.append((layer, 1, layer.out_channels, layer.in_channels))
            dw_pos.append(position)
            engines.append("dconv")
        else:
            if layer.kind is OpKind.MATMUL:  # one product per (batch, head): its second operand differs
                g = layer.groups * layer.batch
                per_group = (layer.out_channels // layer.groups, layer.in_channels // layer.groups)
                row = (replace(layer, batch=1), g, *per_group)
            else:
                g = layer.groups if layer.kind is OpKind.CONV else 1
                row = (layer, g, layer.out_channels // g, layer.in_channels // g)
            std_rows.append(row)
            std_pos.append(position)
            engines.append("cconv")
        costed.append(layer)
    return LayerPlan(tuple(costed), tuple(engines), _engine_table(std_rows, std_pos), _engine_table(dw_rows, dw_pos),
                     tuple(uncosted), changed)
