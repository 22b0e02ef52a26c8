"""Workloads for the hardware tests: zoo networks (torchvision layout) and hand-built layer tables."""

from __future__ import annotations

from functools import cache

from nn2hw.workload import Layer, OpKind, Workload


@cache
def zoo_net(name: str) -> Workload:
    """A zoo model's workload, extracted once per test session."""
    from nn2hw import zoo

    return zoo.workload(name)


def conv(name: str, cin: int, cout: int, size_in: int, k: int = 3, stride: int = 1, pad: int | None = None,
         groups: int = 1, inputs: tuple[str, ...] = (), **fields) -> Layer:
    """A square convolution; the output size follows from the input, kernel, stride and padding."""
    pad = k // 2 if pad is None else pad
    out = (size_in + 2 * pad - k) // stride + 1
    return Layer(name=name, kind=OpKind.CONV, op="Conv2d", inputs=inputs, in_channels=cin, out_channels=cout,
                 in_h=size_in, in_w=size_in, out_h=out, out_w=out, kernel_h=k, kernel_w=k, stride_h=stride,
                 stride_w=stride, pad_h=pad, pad_w=pad, groups=groups, **fields)


def pool(name: str, channels: int, size_in: int, k: int, stride: int, inputs: tuple[str, ...]) -> Layer:
    out = (size_in - k) // stride + 1
    return Layer(name=name, kind=OpKind.POOL, op="MaxPool2d", inputs=inputs, in_channels=channels,
                 out_channels=channels, in_h=size_in, in_w=size_in, out_h=out, out_w=out, kernel_h=k, kernel_w=k,
                 stride_h=stride, stride_w=stride)


def chain(name: str, layers: list[Layer]) -> Workload:
    """Link ``layers`` one after another (each reads the previous one)."""
    linked = [layers[0]] + [Layer(**{**layer.to_dict(), "inputs": (prev.name,)})
                            for prev, layer in zip(layers, layers[1:])]
    return Workload(name, tuple(linked))


def fpga15_alexnet() -> Workload:
    """The original two-group AlexNet's five conv layers (reference notes section 1), with its pools.

    c1 96x3 @55 K11 S4; c2 256 (2x128) x 48 @27 K5; c3 384x256 @13 K3; c4 384 (2x192) x 192 @13;
    c5 256 (2x128) x 192 @13."""
    return chain("alexnet-fpga15", [
        conv("conv1", 3, 96, 227, k=11, stride=4, pad=0),
        pool("pool1", 96, 55, 3, 2, ()),
        conv("conv2", 96, 256, 27, k=5, pad=2, groups=2),
        pool("pool2", 256, 27, 3, 2, ()),
        conv("conv3", 256, 384, 13, k=3),
        conv("conv4", 384, 384, 13, k=3, groups=2),
        conv("conv5", 384, 256, 13, k=3, groups=2),
    ])
