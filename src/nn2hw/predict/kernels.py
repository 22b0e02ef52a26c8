"""The kernels ONNX Runtime's CPU provider runs for a workload, and a one-kernel ONNX model per kernel.

nn-Meter predicts a network as the sum of its *kernels*: the units the runtime executes after
its graph optimizations. Checked against ORT 1.32's optimized graphs (``optimized_model_filepath``)
of the zoo's ResNets and MobileNetV2 on x86 with AVX-512 (MLAS's NCHWc block: 16 channels with
AVX-512, 8 with AVX2, read from the CPU's flags by ``nchwc_block``):

- Conv + BatchNormalization are folded; a following Relu / Clip (ReLU6) / Sigmoid / Tanh becomes
  the conv's activation (one ``FusedConv``, or one NCHWc ``Conv`` with ``activation``).
- A conv runs in NCHWc layout when its input channels are below the block (a plain conv) or a
  multiple of 4 (depthwise: its channels a multiple of 4); any output channel count is padded up
  to the block. Such a conv also takes a residual Add and the Relu after it, when the other operand
  is NCHWc as well (the conv's ``Sum`` input); otherwise the Add and the Relu stay separate.
- A MaxPool whose only consumer is an int8 layer runs on 8-bit integers in NCHW: ORT moves that
  layer's QuantizeLinear above it (a ``pool_int8`` kernel; VGG's w8a8 export: 11-59 us per pool
  against 3 us for the float NCHWc pool of the float export; 3x3 stride-1 padded ones far slower).
- Gemm/MatMul + bias (+ activation) is one kernel; pools, GlobalAveragePool, softmax, LayerNorm,
  Gather, a standalone activation or element-wise op each are one; Flatten/Reshape/Slice/Pad/
  Transpose/Concat are layout kernels (cheap, but not free).
- A residual Add of two same-shaped 3-D tensors whose only consumer is a LayerNorm runs with it as one
  SkipLayerNormalization: a ``layernorm`` kernel with feature ``skip``. ORT's CPU kernel for it is
  slow: 248 us at 128 x 384 against 29 us for the LayerNorm alone (MiniLM-L6: its kernels timed
  apart summed to 28.0 ms, the network ran 33.5 ms, 3.2 ms of it in SkipLayerNormalization nodes).
- An int8 layer (weights and inputs of 8 bits or fewer) is exported by ``nn2hw.deploy`` as
  Q-DQ-Conv/Gemm-Q-DQ, which ORT runs as QuantizeLinear, Transpose to NHWC, QLinearConv (the
  output QuantizeLinear folded in), Transpose back, DequantizeLinear (QGemm for a linear layer;
  checked on ORT's profile of w8a8 ResNet-20 exports): one ``conv_int8`` / ``gemm_int8`` kernel
  including its own boundary conversions. Its batch norm and activation are not folded (the export
  keeps them as separate fp32 ops after the DequantizeLinear): ``norm`` and ``act`` kernels. Such an
  ``act`` kernel (feature ``dq``) is timed behind its own QuantizeLinear/DequantizeLinear: the exported
  GELU (Div, Erf, Add, Mul, Mul) reads its input twice, ORT gives each read its own DequantizeLinear,
  and the Gelu fusion no longer matches, so five element-wise ops run (MiniLM's 128 x 1536 GELU:
  0.29 ms measured so, 0.12 ms fused after a float layer; the difference the int8 GEMM + GELU model
  makes over the GEMM alone agreed with it within 4 %). An int8 layer's
  integers are stored as the export stores them on this CPU (``nn2hw.measure.int8``: uint8 offset
  by 128 on x86 without VNNI, whose u8 x u8 kernels are slower than u8 x s8: ResNet-20 w8a8 took
  2.38 ms stored u8u8 against 1.93 ms s8s8 on an AVX2 EPYC), so the kernels timed are the ones the
  deployed file runs.

A kernel's ``features`` hold everything ``kernel_graph`` needs to rebuild it (sizes, activation,
residual mode) plus derived FLOPs/parameters/bytes that the per-type regressors read. Grouping
a few ops into one kernel is safe when ORT does not fuse them: the one-kernel model contains the
same op pattern, so the runtime makes the same choice in isolation as in the network.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nn2hw.errors import ConfigError, HardwareError
from nn2hw.measure.int8 import INT8_STORAGES, Int8Storage, resolve_int8_storage
from nn2hw.measure.machine import cpu_flags
from nn2hw.workload import Layer, OpKind, Workload

NCHWC_CHANNEL_ALIGN = 4
"""Input channels of an NCHWc conv at or above the block must be a multiple of this (depthwise: its channels)."""

OPSET = 17

ACTIVATIONS = {"relu": 1, "clip": 2, "sigmoid": 3, "tanh": 4, "gelu": 5, "hardswish": 6, "silu": 7}
"""Activation codes stored in features (0: none)."""

_ACT_NAMES = {"relu": "relu", "relu_": "relu", "clip": "clip", "relu6": "clip", "hardtanh": "clip",
              "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu", "hardswish": "hardswish", "silu": "silu"}
_CONV_FUSABLE = frozenset({1, 2, 3, 4})
"""Activations ORT fuses into a conv (FusedConv / NCHWc Conv activation)."""

LAYOUT_OPS = {"reshape": 0, "transpose": 1, "pad": 2, "slice": 3, "concat": 4}
ELTWISE_OPS = {"add": 0, "mul": 1, "sub": 2, "div": 3}
RESIDUAL_NONE, RESIDUAL_NCHW, RESIDUAL_NCHWC = 0, 1, 2

DETECTOR_VERSION = 4
"""Bumped when the kernels detected or their one-kernel models change: a predictor built by another
version has samples of other kernels (``nn2hw.hardware.cpu.default_predictor_name`` carries it)."""

KERNEL_TYPES = ("conv", "dwconv", "conv_int8", "gemm", "gemm_int8", "matmul", "add", "act", "norm", "pool", "pool_int8",
                "global_pool", "softmax", "layernorm", "gather", "layout")


@dataclass(frozen=True)
class Kernel:
    """One unit ONNX Runtime executes: its ``type``, the workload ``layers`` it covers, the op kinds
    ``fused`` into it, and ``features`` (sizes that rebuild it plus FLOPs, params and bytes)."""

    name: str
    type: str
    layers: tuple[str, ...]
    fused: tuple[str, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", MappingProxyType({k: float(v) for k, v in self.features.items()}))

    def __hash__(self) -> int:
        return hash((self.type, tuple(sorted(self.features.items()))))

    def f(self, key: str) -> int:
        """An integer size feature."""
        return int(self.features[key])


# --- features ---------------------------------------------------------------------------------
def conv_features(*, cin: int, cout: int, h: int, w: int, k: int, s: int, groups: int = 1, act: int = 0,
                  residual: int = RESIDUAL_NONE, batch: int = 1, kw: int | None = None, pad: int | None = None,
                  bits: int = 32) -> dict[str, float]:
    """A convolution kernel's features (square stride; ``pad`` defaults to 'same'-style k//2)."""
    kw = k if kw is None else kw
    ph = k // 2 if pad is None else pad
    pw = kw // 2 if pad is None else pad
    oh, ow = (h + 2 * ph - k) // s + 1, (w + 2 * pw - kw) // s + 1
    weights = cout * (cin // groups) * k * kw
    macs = batch * oh * ow * weights
    width = 1 if bits <= 8 else 4
    nchwc = nchwc_conv(cin, cout, groups)
    pin, pout, pgroups = nchwc_channels(cin, cout, groups) if nchwc and bits > 8 else (cin, cout, groups)
    return {"batch": batch, "cin": cin, "cout": cout, "h": h, "w": w, "oh": oh, "ow": ow, "kh": k, "kw": kw,
            "s": s, "ph": ph, "pw": pw, "groups": groups, "act": act, "residual": residual,
            "nchwc": float(nchwc), "macs": macs, "params": weights,
            "padded_macs": batch * oh * ow * pout * (pin // pgroups) * k * kw,
            "in_bytes": batch * cin * h * w * width, "out_bytes": batch * cout * oh * ow * width,
            "macs_per_out": macs / max(batch * cout * oh * ow, 1)}


def nchwc_channels(cin: int, cout: int, groups: int, block: int | None = None) -> tuple[int, int, int]:
    """The (input, output, groups) channels an NCHWc conv computes: each padded up to a whole ``block``
    (default: this CPU's), except input channels below it (a stem conv reads its few channels unblocked).
    A 48-to-48-channel 3x3 conv at 14 px costs what a 40-to-40 one does (67 us, 3 blocks of 16 each way)
    and half a 64-to-64 one; trees on MACs alone priced it 22 % high, between its neighbours. The
    ``padded_macs`` feature this gives raised the share of held-out networks within ±10 % from 87.6 % to
    91.4 % (five builds refitted, each on nine ground truths; docs/measured-devices.md)."""
    block = nchwc_block() if block is None else block

    def padded(channels: int) -> int:
        return -(-channels // block) * block

    if groups > 1:
        return padded(cin), padded(cout), padded(groups)
    return (cin if cin < block else padded(cin)), padded(cout), 1


def gemm_features(*, rows: int, cin: int, cout: int, act: int = 0, bias: int = 1, bits: int = 32,
                  rank: int = 2) -> dict[str, float]:
    """A linear layer on ``rows`` vectors (``rank`` 2: Gemm; 3: MatMul on a sequence)."""
    width = 1 if bits <= 8 else 4
    return {"rows": rows, "cin": cin, "cout": cout, "act": act, "bias": bias, "rank": rank,
            "macs": rows * cin * cout, "params": cin * cout, "in_bytes": rows * cin * width,
            "out_bytes": rows * cout * width}


def matmul_features(*, batch: int, heads: int, m: int, k: int, n: int) -> dict[str, float]:
    """A product of two activations: (batch, heads, m, k) x (batch, heads, k, n)."""
    return {"batch": batch, "heads": heads, "m": m, "k": k, "n": n, "macs": batch * heads * m * k * n,
            "in_bytes": 4 * batch * heads * (m * k + k * n), "out_bytes": 4 * batch * heads * m * n}


def tensor_features(shape: tuple[int, ...], **extra: float) -> dict[str, float]:
    """Features of an op on one 4-D-padded tensor (c, h, w after the batch) plus ``extra``."""
    dims = (1, 1, 1, *shape)[-4:] if len(shape) <= 4 else (shape[0], shape[1], math.prod(shape[2:-1]), shape[-1])
    n, c, h, w = dims
    return {"batch": n, "c": c, "h": h, "w": w, "elements": n * c * h * w, **extra}


@functools.cache
def nchwc_block(cpuinfo: str = "/proc/cpuinfo") -> int:
    """Channels per NCHWc block of ONNX Runtime's MLAS on this CPU: 16 with AVX-512, 8 with AVX2, else 1
    (no NCHWc layout: ORT's NCHWc transformer is off). Read from the CPU flags in ``cpuinfo``."""
    flags = cpu_flags(cpuinfo) or frozenset()
    return 16 if "avx512f" in flags else 8 if "avx2" in flags else 1


def nchwc_conv(cin: int, cout: int, groups: int, block: int | None = None) -> bool:
    """Whether ORT runs this fp32 2-D conv in NCHWc layout (and so can fuse a residual Add): output
    channels are padded up to the ``block`` (default: this CPU's), input channels must be below the
    block or a multiple of ``NCHWC_CHANNEL_ALIGN``; a grouped conv only when depthwise (checked
    against ORT 1.32's optimized graphs)."""
    block = nchwc_block() if block is None else block
    if block <= 1 or cout < 1:
        return False
    if groups == 1:
        return cin < block or cin % NCHWC_CHANNEL_ALIGN == 0
    return groups == cin == cout and cin % NCHWC_CHANNEL_ALIGN == 0


# --- detection --------------------------------------------------------------------------------
def kernels_of(workload: Workload) -> tuple[Kernel, ...]:
    """The kernels ONNX Runtime (CPU provider, all optimizations) runs for ``workload``, in order."""
    return tuple(_Detector(workload).run())


def is_int8(layer: Layer) -> bool:
    """A conv/linear layer exported as real int8 operators (weights and inputs of 8 bits or fewer)."""
    return layer.kind in (OpKind.CONV, OpKind.LINEAR) and layer.weight_bits <= 8 and layer.input_bits <= 8


def activation_code(layer: Layer) -> int:
    """The activation code of an ``act`` layer (0 when unknown: then it is not fused anywhere)."""
    return ACTIVATIONS.get(_ACT_NAMES.get(layer.op.lower(), ""), 0)


class _Detector:
    """Walks a workload in order, growing each kernel over the ops ORT fuses into it."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.layers = {layer.name: layer for layer in workload}
        self.consumers: dict[str, list[Layer]] = {layer.name: [] for layer in workload}
        for layer in workload:
            for src in dict.fromkeys(layer.inputs):
                self.consumers[src].append(layer)
        self.taken: set[str] = set()
        self.nchwc: set[str] = set()  # layer names whose output tensor ORT keeps in NCHWc layout

    def run(self) -> list[Kernel]:
        kernels = []
        for layer in self.workload:
            if layer.name in self.taken or layer.kind is OpKind.INPUT:
                continue
            kernels.append(self._kernel(layer))
        return kernels

    def _only_consumer(self, layer: Layer) -> Layer | None:
        users = self.consumers[layer.name]
        if len(users) != 1 or layer.name in self.workload.outputs or users[0].name in self.taken:
            return None
        return users[0]

    def _kernel(self, layer: Layer) -> Kernel:
        builders: dict[OpKind, Callable[[Layer], Kernel]] = {
            OpKind.CONV: self._conv, OpKind.LINEAR: self._linear, OpKind.MATMUL: self._matmul,
            OpKind.ELTWISE: self._eltwise, OpKind.ACT: self._act, OpKind.NORM: self._norm, OpKind.POOL: self._pool,
            OpKind.SOFTMAX: self._rows("softmax"), OpKind.EMBED: self._gather}
        kernel = builders.get(layer.kind, self._layout)(layer)
        self.taken.update(kernel.layers)
        return kernel

    def _follow(self, tail: Layer, accept: Callable[[Layer], bool]) -> Layer | None:
        nxt = self._only_consumer(tail)
        return nxt if nxt is not None and accept(nxt) else None

    def _conv(self, layer: Layer) -> Kernel:
        int8 = is_int8(layer)
        covered, fused = [layer], [layer.op or "Conv"]
        tail, act, residual = layer, 0, RESIDUAL_NONE
        nchwc = not int8 and nchwc_conv(layer.in_channels, layer.out_channels, layer.groups)
        if not int8:
            bn = self._follow(tail, lambda n: n.kind is OpKind.NORM and "batch" in n.op.lower())
            if bn is not None:
                covered.append(bn)
                fused.append("BatchNormalization")
                tail = bn
            tail, act = self._fuse_act(tail, covered, fused, _CONV_FUSABLE)
            if not act:
                add = self._follow(tail, lambda n: n.kind is OpKind.ELTWISE and n.op.lower() == "add"
                                   and len(n.inputs) == 2)
                if add is not None:
                    other = next(i for i in add.inputs if i != tail.name)
                    residual = RESIDUAL_NCHWC if nchwc and other in self.nchwc else RESIDUAL_NCHW
                    covered.append(add)
                    fused.append("Add")
                    tail, act = self._fuse_act(add, covered, fused, frozenset({1}))
        if nchwc and residual != RESIDUAL_NCHW:
            self.nchwc.add(tail.name)
        depthwise = layer.groups > 1 and layer.groups == layer.in_channels
        kind = "conv_int8" if int8 else ("dwconv" if depthwise else "conv")
        features = conv_features(cin=layer.in_channels, cout=layer.out_channels, h=layer.in_h, w=layer.in_w,
                                 k=layer.kernel_h, kw=layer.kernel_w, s=layer.stride_h, groups=layer.groups,
                                 act=act, residual=residual, batch=layer.batch, pad=layer.pad_h,
                                 bits=8 if int8 else 32)
        return Kernel(layer.name, kind, tuple(n.name for n in covered), tuple(fused), features)

    def _fuse_act(self, tail: Layer, covered: list[Layer], fused: list[str],
                  allowed: frozenset[int]) -> tuple[Layer, int]:
        nxt = self._follow(tail, lambda n: n.kind is OpKind.ACT and activation_code(n) in allowed)
        if nxt is None:
            return tail, 0
        covered.append(nxt)
        fused.append(nxt.op)
        return nxt, activation_code(nxt)

    def _linear(self, layer: Layer) -> Kernel:
        int8 = is_int8(layer)
        covered, fused = [layer], [layer.op or "Linear"]
        act = 0
        if not int8:
            _, act = self._fuse_act(layer, covered, fused, frozenset({1, 3, 4, 5}))
        shape = layer.output_shape
        rows = math.prod(shape[:-1]) if len(shape) >= 2 else 1
        features = gemm_features(rows=rows, cin=layer.in_channels, cout=layer.out_channels, act=act,
                                 bias=int(layer.bias), bits=8 if int8 else 32, rank=min(max(len(shape), 2), 3))
        return Kernel(layer.name, "gemm_int8" if int8 else "gemm", tuple(n.name for n in covered), tuple(fused),
                      features)

    def _matmul(self, layer: Layer) -> Kernel:
        k, n = layer.in_channels // layer.groups, layer.out_channels // layer.groups
        features = matmul_features(batch=layer.batch, heads=layer.groups, m=layer.out_h, k=k, n=n)
        return Kernel(layer.name, "matmul", (layer.name,), ("MatMul",), features)

    def _eltwise(self, layer: Layer) -> Kernel:
        norm = self._skip_norm(layer)
        if norm is not None:
            kernel = self._rows("layernorm")(norm)
            return Kernel(norm.name, "layernorm", (layer.name, norm.name), ("Add", norm.op),
                          {**kernel.features, "skip": 1.0})
        shapes = layer.operand_shapes or (layer.output_shape,)
        smallest = min(math.prod(s) for s in shapes)
        covered, fused = [layer], [layer.op]
        tail, act = self._fuse_act(layer, covered, fused, frozenset({1}))
        if all(i in self.nchwc for i in layer.inputs):
            self.nchwc.add(tail.name)
        features = tensor_features(layer.output_shape, op=ELTWISE_OPS.get(layer.op.lower(), 0),
                                   operands=len(layer.inputs), broadcast=float(smallest < layer.elements), act=act)
        return Kernel(layer.name, "add", tuple(n.name for n in covered), tuple(fused), features)

    def _skip_norm(self, add: Layer) -> Layer | None:
        """The LayerNorm ORT fuses ``add`` into (a SkipLayerNormalization), if any: a two-operand Add of
        same-shaped 3-D tensors whose only consumer is a LayerNorm."""
        shapes = add.operand_shapes
        if add.op.lower() != "add" or len(add.inputs) != 2 or len(add.output_shape) != 3 \
                or len(set(shapes)) != 1 or shapes[0] != add.output_shape:
            return None
        return self._follow(add, lambda n: n.kind is OpKind.NORM and "layer" in n.op.lower())

    def _act(self, layer: Layer) -> Kernel:
        self._keep_layout(layer)
        producer = self.layers.get(layer.inputs[0]) if layer.inputs else None
        dq = int(producer is not None and is_int8(producer))
        features = tensor_features(layer.output_shape, act=activation_code(layer), dq=dq)
        return Kernel(layer.name, "act", (layer.name,), (layer.op,), features)

    def _norm(self, layer: Layer) -> Kernel:
        if "layer" in layer.op.lower() or "batch" not in layer.op.lower():
            return self._rows("layernorm")(layer)
        self._keep_layout(layer)
        return Kernel(layer.name, "norm", (layer.name,), (layer.op,), tensor_features(layer.output_shape))

    def _pool(self, layer: Layer) -> Kernel:
        shape = (layer.batch, layer.in_channels, layer.in_h, layer.in_w)
        if layer.out_h == layer.out_w == 1:
            self._keep_layout(layer)
            return Kernel(layer.name, "global_pool", (layer.name,), (layer.op,), tensor_features(shape))
        is_max = "max" in layer.op.lower()
        consumer = self._only_consumer(layer)
        quantized = is_max and consumer is not None and is_int8(consumer)
        if not quantized:
            self._keep_layout(layer)
        features = tensor_features(shape, k=layer.kernel_h, s=layer.stride_h, p=layer.pad_h, oh=layer.out_h,
                                   ow=layer.out_w, max=float(is_max), nchwc=float(layer.name in self.nchwc))
        return Kernel(layer.name, "pool_int8" if quantized else "pool", (layer.name,), (layer.op,), features)

    def _rows(self, kind: str) -> Callable[[Layer], Kernel]:
        def build(layer: Layer) -> Kernel:
            shape = layer.output_shape
            features = {"rows": math.prod(shape[:-1]) if len(shape) > 1 else 1, "cols": shape[-1],
                        "elements": math.prod(shape)}
            return Kernel(layer.name, kind, (layer.name,), (layer.op,), features)
        return build

    def _gather(self, layer: Layer) -> Kernel:
        features = {"tokens": layer.batch * layer.in_h * layer.in_w, "dim": layer.out_channels,
                    "vocab": layer.in_channels, "elements": layer.elements}
        return Kernel(layer.name, "gather", (layer.name,), ("Gather",), features)

    def _layout(self, layer: Layer) -> Kernel:
        op = {OpKind.PAD: "pad", OpKind.SLICE: "slice", OpKind.CONCAT: "concat"}.get(layer.kind)
        if op is None:
            if layer.kind is not OpKind.RESHAPE:
                raise HardwareError(
                    f"Layer {layer.name!r} ({layer.kind.value} {layer.op!r}) has no ONNX Runtime kernel model.",
                    "Describe it with a known op kind (see nn2hw.workload.OpKind), or measure the network whole.")
            op = "transpose" if "perm" in layer.op.lower() or "transpose" in layer.op.lower() else "reshape"
        src = layer.operand_shapes[0] if layer.operand_shapes else layer.output_shape
        out = layer.output_shape
        features = {**tensor_features(src), "out_elements": math.prod(out), "op": LAYOUT_OPS[op],
                    "oc": tensor_features(out)["c"], "oh": tensor_features(out)["h"],
                    "ow": tensor_features(out)["w"], "operands": len(layer.inputs)}
        return Kernel(layer.name, "layout", (layer.name,), (layer.op,), features)

    def _keep_layout(self, layer: Layer) -> None:
        """Pools, standalone activations and batch norms keep an NCHWc input in NCHWc."""
        if layer.inputs and layer.inputs[0] in self.nchwc and layer.out_channels % nchwc_block() == 0:
            self.nchwc.add(layer.name)


# --- one-kernel ONNX models -------------------------------------------------------------------
class _Graph:
    """A tiny onnx.helper graph builder: named values, random float weights."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.inputs: list[Any] = []
        self.count = 0

    def input(self, shape: tuple[int, ...], dtype: str = "float") -> str:
        from onnx import TensorProto

        name = f"x{len(self.inputs)}"
        elem = TensorProto.INT64 if dtype == "int64" else TensorProto.FLOAT
        self.inputs.append(self.helper.make_tensor_value_info(name, elem, list(shape)))
        return name

    def const(self, value: Any) -> str:
        from onnx import numpy_helper

        self.count += 1
        tensor = numpy_helper.from_array(value, f"c{self.count}")
        self.inits.append(tensor)
        return str(tensor.name)

    def weight(self, *shape: int) -> str:
        import numpy as np

        rng = np.random.default_rng(len(self.inits))
        return self.const((rng.standard_normal(shape) * 0.1).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        self.count += 1
        out = f"v{self.count}"
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=f"n{self.count}", domain=domain,
                                                **attrs))
        return out

    def act(self, x: str, code: int) -> str:
        import numpy as np

        if code == ACTIVATIONS["clip"]:
            return self.op("Clip", [x, self.const(np.array(0, np.float32)), self.const(np.array(6, np.float32))])
        if code == ACTIVATIONS["gelu"]:  # as torch exports nn.GELU at opset 17 (ORT fuses it into Gelu)
            half, one, root2 = (self.const(np.array(v, np.float32)) for v in (0.5, 1.0, math.sqrt(2.0)))
            erf = self.op("Erf", [self.op("Div", [x, root2])])
            return self.op("Mul", [self.op("Mul", [x, self.op("Add", [erf, one])]), half])
        if code == ACTIVATIONS["silu"]:
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        names = {1: "Relu", 3: "Sigmoid", 4: "Tanh", 6: "HardSwish"}
        return self.op(names[code], [x]) if code in names else x

    def int8_zero(self) -> str:
        """The zero point of this CPU's int8 storage (``native_int8``), as the export writes it."""
        import numpy as np

        storage = native_int8()
        return self.const(np.array(storage.zero_point, storage.dtype))

    def qdq(self, x: str) -> str:
        """QuantizeLinear -> DequantizeLinear at a power-of-two scale (nn2hw.deploy's int8 boundary)."""
        import numpy as np

        scale, zero = self.const(np.array(2.0 ** -4, np.float32)), self.int8_zero()
        return self.op("DequantizeLinear", [self.op("QuantizeLinear", [x, scale, zero]), scale, zero])

    def int8_weight(self, *shape: int) -> str:
        import numpy as np

        rng = np.random.default_rng(len(self.inits))
        scale, zero = self.const(np.array(2.0 ** -6, np.float32)), self.int8_zero()
        q = self.const(native_int8().encode(rng.integers(-64, 64, size=shape)))
        return self.op("DequantizeLinear", [q, scale, zero])

    def int8_bias(self, count: int) -> str:
        """A zero int32 bias behind DequantizeLinear (scale: input step x weight step), as QLinearConv takes it."""
        import numpy as np

        scale = self.const(np.array(2.0 ** -10, np.float32))
        return self.op("DequantizeLinear", [self.const(np.zeros(count, np.int32)), scale])

    def model(self, *outputs: str) -> bytes:
        from onnx import TensorProto

        outs = [self.helper.make_tensor_value_info(output, TensorProto.FLOAT, None) for output in outputs]
        graph = self.helper.make_graph(self.nodes, "kernel", self.inputs, outs, self.inits)
        opsets = [self.helper.make_opsetid("", OPSET), self.helper.make_opsetid("com.microsoft", 1)]
        model = self.helper.make_model(graph, opset_imports=opsets, ir_version=8)
        return bytes(model.SerializeToString())


@functools.cache
def native_int8() -> Int8Storage:
    """How this CPU's int8 exports store their integers (``resolve_int8_storage('auto')``)."""
    return INT8_STORAGES[resolve_int8_storage("auto")[0]]


def kernel_graph(kernel: Kernel) -> bytes:
    """A one-kernel ONNX model reproducing ``kernel`` (its fusions included) for measurement.

    A residual Add that ORT fuses into an NCHWc conv gets its other operand from a 1x1 MaxPool, so
    that operand is NCHWc in isolation too and the runtime makes the same fusion.
    """
    _import_onnx()
    builders: dict[str, Callable[[_Graph, Kernel], str]] = {
        "conv": _conv_graph, "dwconv": _conv_graph, "conv_int8": _conv_graph, "gemm": _gemm_graph,
        "gemm_int8": _gemm_graph, "matmul": _matmul_graph, "add": _add_graph, "act": _act_graph,
        "norm": _norm_graph, "pool": _pool_graph, "pool_int8": _pool_graph, "global_pool": _global_pool_graph,
        "softmax": _rows_graph, "layernorm": _rows_graph, "gather": _gather_graph, "layout": _layout_graph}
    if kernel.type not in builders:
        raise ConfigError(f"Kernel type {kernel.type!r} has no one-kernel model.",
                          f"Use one of {sorted(builders)}.")
    g = _Graph()
    return g.model(builders[kernel.type](g, kernel))


def in_nchwc_chain(kernel: Kernel) -> bool:
    """Whether ``kernel`` reads and writes NCHWc tensors inside a network: an NCHWc conv with input
    channels at or above the block, or a pool the detector keeps NCHWc. There it pays no reorders,
    which a one-kernel model would add around it (a float max pool of 32 x 28 x 28: 3 us in VGG,
    4 + 3 + 3 us with its reorders alone)."""
    if kernel.type == "pool":
        return bool(kernel.features.get("nchwc"))
    return (kernel.type in ("conv", "dwconv") and bool(kernel.features.get("nchwc"))
            and kernel.f("cin") >= nchwc_block())


def chain_graphs(kernel: Kernel) -> tuple[bytes, bytes]:
    """For a kernel ``in_nchwc_chain``: (a 1x1 NCHWc conv feeding the kernel, that 1x1 conv alone, plus the
    residual operand's layout op when there is one). Their difference times the kernel as it runs
    between NCHWc kernels: no input reorder (both models have it), and one output reorder each."""
    _import_onnx()
    with_kernel, alone = _Graph(), _Graph()
    build = _pool_graph if kernel.type == "pool" else _conv_graph
    outputs = [build(with_kernel, kernel, chain=True)]
    pre = _pre_conv(alone, kernel)
    extra = [alone.op("MaxPool", [alone.input((kernel.f("batch"), kernel.f("cout"), kernel.f("oh"), kernel.f("ow")))],
                      kernel_shape=[1, 1])] if kernel.features.get("residual") == RESIDUAL_NCHWC else []
    return with_kernel.model(*outputs), alone.model(pre, *extra)


def _pre_conv(g: _Graph, k: Kernel) -> str:
    """A 1x1 conv keeping the kernel's input shape: ORT runs it NCHWc, so its output reaches the kernel NCHWc."""
    cin = k.f("cin") if "cin" in k.features else k.f("c")
    return g.op("Conv", [g.input((k.f("batch"), cin, k.f("h"), k.f("w"))), g.weight(cin, cin, 1, 1)],
                kernel_shape=[1, 1])


def empty_graph() -> bytes:
    """The smallest model (one Identity on one value): what running any session costs."""
    _import_onnx()
    g = _Graph()
    return g.model(g.op("Identity", [g.input((1, 1))]))


def measurement_pair(kernel: Kernel) -> tuple[bytes, bytes]:
    """(the model that times ``kernel``, the baseline it is timed against): the chain models for a
    kernel ``in_nchwc_chain``, else its one-kernel model and the empty model. The baseline is tagged
    with the kernel's model, so that its own copy is stored and timed beside it, never one measured
    at another moment: a shared machine's drift between the two moments went into the difference
    (baselines reused across a build gave in-chain convs of a few microseconds -35 to -39 us)."""
    model, baseline = chain_graphs(kernel) if in_nchwc_chain(kernel) else (kernel_graph(kernel), empty_graph())
    from onnx import load_model_from_string

    tagged = load_model_from_string(baseline)
    tagged.doc_string = f"baseline of model sha256 {hashlib.sha256(model).hexdigest()}"
    return model, bytes(tagged.SerializeToString())


def _import_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise HardwareError("Kernel models need the onnx package, which is not installed.",
                            'pip install "nn2hw[measure]"') from None


def _conv_graph(g: _Graph, k: Kernel, chain: bool = False) -> str:
    import numpy as np

    cin, cout, groups = k.f("cin"), k.f("cout"), k.f("groups")
    x = _pre_conv(g, k) if chain else g.input((k.f("batch"), cin, k.f("h"), k.f("w")))
    shape = (cout, cin // groups, k.f("kh"), k.f("kw"))
    int8 = k.type == "conv_int8"
    w = g.int8_weight(*shape) if int8 else g.weight(*shape)
    bias = g.int8_bias(cout) if int8 else g.const(np.zeros(cout, np.float32))
    y = g.op("Conv", [g.qdq(x) if int8 else x, w, bias], kernel_shape=[k.f("kh"), k.f("kw")],
             strides=[k.f("s")] * 2, pads=[k.f("ph"), k.f("pw")] * 2, group=groups)
    if int8:
        return g.qdq(y)
    residual = k.f("residual")
    if residual:
        other = g.input((k.f("batch"), cout, k.f("oh"), k.f("ow")))
        if residual == RESIDUAL_NCHWC:
            other = g.op("MaxPool", [other], kernel_shape=[1, 1])
        y = g.op("Add", [y, other])
    return g.act(y, k.f("act"))


def _gemm_graph(g: _Graph, k: Kernel) -> str:
    import numpy as np

    rows, cin, cout = k.f("rows"), k.f("cin"), k.f("cout")
    int8 = k.type == "gemm_int8"
    x = g.input((rows, cin) if k.f("rank") == 2 else (1, rows, cin))
    x = g.qdq(x) if int8 else x
    w = g.int8_weight(cin, cout) if int8 else g.weight(cin, cout)
    bias = g.int8_bias(cout) if int8 and k.f("rank") == 2 else g.const(np.zeros(cout, np.float32))
    if k.f("rank") == 2:
        y = g.op("Gemm", [x, w, bias] if k.f("bias") else [x, w])
    else:
        y = g.op("MatMul", [x, w])
        y = g.op("Add", [y, bias]) if k.f("bias") else y
    return g.qdq(y) if int8 else g.act(y, k.f("act"))


def _matmul_graph(g: _Graph, k: Kernel) -> str:
    b, h, m, kk, n = (k.f(key) for key in ("batch", "heads", "m", "k", "n"))
    return g.op("MatMul", [g.input((b, h, m, kk)), g.input((b, h, kk, n))])


def _shape(k: Kernel) -> tuple[int, int, int, int]:
    return k.f("batch"), k.f("c"), k.f("h"), k.f("w")


def _add_graph(g: _Graph, k: Kernel) -> str:
    shape = _shape(k)
    other = (1, shape[1], 1, 1) if k.f("broadcast") else shape
    ops = {v: name for name, v in ELTWISE_OPS.items()}
    y = g.op(ops.get(k.f("op"), "add").capitalize(), [g.input(shape), g.input(other)])
    return g.act(y, k.f("act"))


def _act_graph(g: _Graph, k: Kernel) -> str:
    x = g.input(_shape(k))
    return g.act(g.qdq(x) if k.features.get("dq") else x, k.f("act") or ACTIVATIONS["relu"])


def _norm_graph(g: _Graph, k: Kernel) -> str:
    import numpy as np

    c = k.f("c")
    params = [g.const(np.ones(c, np.float32)), g.const(np.zeros(c, np.float32)),
              g.const(np.zeros(c, np.float32)), g.const(np.ones(c, np.float32))]
    return g.op("BatchNormalization", [g.input(_shape(k)), *params])


def _pool_graph(g: _Graph, k: Kernel, chain: bool = False) -> str:
    size, stride, pad = k.f("k"), k.f("s"), k.f("p")
    attrs: dict[str, Any] = {"kernel_shape": [size, size], "strides": [stride, stride], "pads": [pad] * 4}
    x = _pre_conv(g, k) if chain else g.input(_shape(k))
    y = g.op("MaxPool" if k.f("max") else "AveragePool", [x], **attrs)
    return g.qdq(y) if k.type == "pool_int8" else y


def _global_pool_graph(g: _Graph, k: Kernel) -> str:
    return g.op("GlobalAveragePool", [g.input(_shape(k))])


def _rows_graph(g: _Graph, k: Kernel) -> str:
    import numpy as np

    x = g.input((1, k.f("rows"), k.f("cols")))
    if k.type == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if k.features.get("skip"):  # Add + LayerNorm: ORT fuses them into one SkipLayerNormalization
        x = g.op("Add", [x, g.input((1, k.f("rows"), k.f("cols")))])
    cols = k.f("cols")
    return g.op("LayerNormalization", [x, g.const(np.ones(cols, np.float32)), g.const(np.zeros(cols, np.float32))],
                axis=-1)


def _gather_graph(g: _Graph, k: Kernel) -> str:
    table = g.weight(k.f("vocab"), k.f("dim"))
    ids = g.input((1, k.f("tokens")), "int64")
    return g.op("Gather", [table, ids])


def _layout_graph(g: _Graph, k: Kernel) -> str:
    return _layout_graph_on(g, g.input(_shape(k)), k)


def _layout_graph_on(g: _Graph, x: str, k: Kernel) -> str:
    import numpy as np

    shape = _shape(k)
    op = k.f("op")
    if op == LAYOUT_OPS["transpose"]:
        return g.op("Transpose", [x], perm=[0, 2, 1, 3])
    if op == LAYOUT_OPS["pad"]:
        extra = max(k.f("oc") - shape[1], 0)
        pads = g.const(np.array([0, extra // 2, 0, 0, 0, extra - extra // 2, 0, 0], np.int64))
        return g.op("Pad", [x, pads])
    if op == LAYOUT_OPS["slice"]:
        step = max(-(-shape[2] // max(k.f("oh"), 1)), 1)  # ceil: a stride-2 slice of 7 rows keeps 4
        consts = [g.const(np.array(v, np.int64)) for v in ([0, 0], [shape[2], shape[3]], [2, 3], [step, step])]
        return g.op("Slice", [x, *consts])
    if op == LAYOUT_OPS["concat"]:
        return g.op("Concat", [x, *[g.input(shape) for _ in range(max(k.f("operands") - 1, 1))]], axis=1)
    return g.op("Flatten", [x], axis=1)


def describe(kernel: Kernel) -> str:
    """A compact one-line description (type and the main sizes) for progress lines and errors."""
    keys = [key for key in ("cin", "cout", "h", "kh", "s", "groups", "rows", "c", "m", "k", "n", "elements")
            if key in kernel.features]
    return f"{kernel.type}(" + ", ".join(f"{key}={kernel.f(key)}" for key in keys) + ")"


def workload_graph(workload: Workload) -> bytes:
    """An ONNX model of a whole CNN workload (random weights), built without torch: what calibration
    networks and tests measure. Covers conv, batch norm, activations, add/mul, pools, flatten,
    linear (2-D), pad and slice; other kinds raise a HardwareError naming the layer."""
    _import_onnx()
    import numpy as np

    g = _Graph()
    values: dict[str, str] = {}
    for layer in workload:
        xs = [values[i] for i in layer.inputs]
        if layer.kind is OpKind.INPUT:
            values[layer.name] = g.input(layer.output_shape)
            continue
        if layer.kind is OpKind.CONV:
            shape = (layer.out_channels, layer.in_channels // layer.groups, layer.kernel_h, layer.kernel_w)
            y = g.op("Conv", [g.qdq(xs[0]) if is_int8(layer) else xs[0], *_weights(g, layer, shape)],
                     kernel_shape=[layer.kernel_h, layer.kernel_w], strides=[layer.stride_h, layer.stride_w],
                     pads=[layer.pad_h, layer.pad_w] * 2, group=layer.groups)
        elif layer.kind is OpKind.NORM:
            c = layer.out_channels
            params = [g.const(np.full(c, v, np.float32)) for v in (1.0, 0.0, 0.0, 1.0)]
            y = g.op("BatchNormalization", [xs[0], *params])
        elif layer.kind is OpKind.ACT:
            y = g.act(xs[0], activation_code(layer) or ACTIVATIONS["relu"])
        elif layer.kind is OpKind.ELTWISE:
            y = g.op("Mul" if layer.op.lower() == "mul" else "Add", xs[:2])
        elif layer.kind is OpKind.POOL and layer.out_h == layer.out_w == 1:
            y = g.op("GlobalAveragePool", xs[:1])
        elif layer.kind is OpKind.POOL:
            y = g.op("MaxPool" if "max" in layer.op.lower() else "AveragePool", xs[:1],
                     kernel_shape=[layer.kernel_h, layer.kernel_w], strides=[layer.stride_h, layer.stride_w],
                     pads=[layer.pad_h, layer.pad_w] * 2)
        elif layer.kind is OpKind.RESHAPE:
            y = g.op("Flatten", xs[:1], axis=1)
        elif layer.kind is OpKind.LINEAR:
            y = g.op("Gemm", [g.qdq(xs[0]) if is_int8(layer) else xs[0],
                              *_weights(g, layer, (layer.in_channels, layer.out_channels))])
        elif layer.kind in (OpKind.PAD, OpKind.SLICE):
            y = _layout_graph_on(g, xs[0], Kernel(layer.name, "layout", (layer.name,),
                                                  features=_Detector(workload)._layout(layer).features))
        else:
            raise HardwareError(f"workload_graph cannot build layer {layer.name!r} ({layer.kind.value}).",
                                "Export the network with nn2hw.deploy / torch.onnx instead.")
        values[layer.name] = g.qdq(y) if is_int8(layer) else y
    return g.model(values[workload.outputs[0]])


def _weights(g: _Graph, layer: Layer, shape: tuple[int, ...]) -> list[str]:
    """A conv/linear layer's weight (and bias) inputs: float, or int8 (int32 bias) behind DequantizeLinear
    as ``nn2hw.deploy``'s int8 export writes them."""
    import numpy as np

    if not is_int8(layer):
        return [g.weight(*shape), *([g.const(np.zeros(layer.out_channels, np.float32))] if layer.bias else [])]
    return [g.int8_weight(*shape), *([g.int8_bias(layer.out_channels)] if layer.bias else [])]
