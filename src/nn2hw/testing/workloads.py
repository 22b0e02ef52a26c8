"""Small workloads described by hand (no torch): one op of every kind, for the template contract.

``every_op(kinds)`` chains a stem convolution with one op of each requested kind (and an op the
extractor did not understand), so a template can be checked to cost or explain each of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from nn2hw.workload import Layer, OpKind, Workload


def _conv(name: str, inputs: tuple[str, ...], cin: int, cout: int, size: int, kernel: int = 3,
          stride: int = 1, groups: int = 1) -> Layer:
    out = (size + 2 * (kernel // 2) - kernel) // stride + 1
    return Layer(name, OpKind.CONV, inputs, "Conv2d", in_channels=cin, out_channels=cout, in_h=size, in_w=size,
                 out_h=out, out_w=out, kernel_h=kernel, kernel_w=kernel, stride_h=stride, stride_w=stride,
                 pad_h=kernel // 2, pad_w=kernel // 2, groups=groups)


def _same(name: str, kind: OpKind, op: str, inputs: tuple[str, ...], channels: int, size: int) -> Layer:
    return Layer(name, kind, inputs, op, in_channels=channels, out_channels=channels, in_h=size, in_w=size,
                 out_h=size, out_w=size)


def conv_net(name: str = "tiny") -> Workload:
    """Two convolutions (the second strided) and a global pool: the smallest network every template runs."""
    layers = (Layer("x", OpKind.INPUT, (), "input", in_channels=3, out_channels=3, in_h=16, in_w=16, out_h=16,
                    out_w=16),
              _conv("c1", ("x",), 3, 16, 16, stride=2), _conv("c2", ("c1",), 16, 32, 8),
              Layer("pool", OpKind.POOL, ("c2",), "AdaptiveAvgPool2d", in_channels=32, out_channels=32, in_h=8,
                    in_w=8, kernel_h=8, kernel_w=8, stride_h=8, stride_w=8))
    return Workload(name, layers, (1, 3, 16, 16))


def every_op(kinds: Iterable[OpKind], name: str = "every_op") -> Workload:
    """A stem conv followed by one op of each of ``kinds`` that this module can describe, and one
    op nobody understands (``OpKind.OTHER``)."""
    wanted = set(kinds)
    layers = [Layer("x", OpKind.INPUT, (), "input", in_channels=3, out_channels=3, in_h=8, in_w=8, out_h=8, out_w=8),
              _conv("stem", ("x",), 3, 8, 8)]
    last = "stem"
    for kind, layer in (
        (OpKind.NORM, _same("bn", OpKind.NORM, "BatchNorm2d", (), 8, 8)),
        (OpKind.ACT, _same("relu", OpKind.ACT, "ReLU", (), 8, 8)),
        (OpKind.CONV, _conv("conv", (), 8, 8, 8, kernel=1)),
        (OpKind.ELTWISE, _same("add", OpKind.ELTWISE, "add", (), 8, 8)),
        (OpKind.CONCAT, Layer("cat", OpKind.CONCAT, (), "cat", in_channels=8, out_channels=16, in_h=8, in_w=8,
                              out_h=8, out_w=8)),
        (OpKind.PAD, Layer("pad", OpKind.PAD, (), "pad", in_channels=16, out_channels=16, in_h=8, in_w=8, out_h=8,
                           out_w=8)),
        (OpKind.POOL, Layer("pool", OpKind.POOL, (), "MaxPool2d", in_channels=16, out_channels=16, in_h=8, in_w=8,
                            out_h=4, out_w=4, kernel_h=2, kernel_w=2, stride_h=2, stride_w=2)),
        (OpKind.SLICE, Layer("slice", OpKind.SLICE, (), "getitem", in_channels=16, out_channels=16, in_h=4, in_w=4,
                             out_h=4, out_w=4)),
        (OpKind.RESHAPE, Layer("flatten", OpKind.RESHAPE, (), "flatten", in_channels=16, out_channels=256, in_h=4,
                               in_w=4)),
        (OpKind.LINEAR, Layer("fc", OpKind.LINEAR, (), "Linear", in_channels=256, out_channels=10)),
    ):
        if kind in wanted:  # each op reads the previous one (x + x, cat([x, x]): the same channel space)
            layers.append(Layer(**{**layer.to_dict(), "inputs": (last, last) if kind is OpKind.CONCAT else (last,)}))
            last = layer.name
    layers.append(Layer("mystery", OpKind.OTHER, (last,), "fft", in_channels=layers[-1].out_channels,
                        out_channels=layers[-1].out_channels, in_h=layers[-1].out_h, in_w=layers[-1].out_w,
                        out_h=layers[-1].out_h, out_w=layers[-1].out_w))
    return Workload(name, tuple(layers), (1, 3, 8, 8))
