"""Hand-built layer tables for the ASIC tests (no torch): ResNet-20 (CIFAR), ResNet-18 (ImageNet),
a small depthwise network, and workloads rebuilt from the shapes stored in the golden files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from nn2hw.workload import Layer, OpKind, Workload

GOLDEN = Path(__file__).with_name("golden")


def conv(name: str, cin: int, cout: int, size: int, k: int = 3, stride: int = 1, pad: int | None = None,
         groups: int = 1, **fields: Any) -> Layer:
    """A square convolution whose output size follows from input, kernel, stride and padding."""
    pad = k // 2 if pad is None else pad
    out = (size + 2 * pad - k) // stride + 1
    return Layer(name=name, kind=OpKind.CONV, op="Conv2d", in_channels=cin, out_channels=cout, in_h=size, in_w=size,
                 out_h=out, out_w=out, kernel_h=k, kernel_w=k, stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad,
                 groups=groups, **fields)


def linear(name: str, cin: int, cout: int, batch: int = 1) -> Layer:
    return Layer(name=name, kind=OpKind.LINEAR, op="Linear", in_channels=cin, out_channels=cout, batch=batch)


def chain(name: str, layers: Iterable[Layer]) -> Workload:
    """``layers`` one after another (each reads the previous one)."""
    layers = list(layers)
    linked = [layers[0]] + [Layer(**{**x.to_dict(), "inputs": (prev.name,)}) for prev, x in zip(layers, layers[1:])]
    return Workload(name, tuple(linked))


@cache
def resnet20() -> Workload:
    """ResNet-20 for CIFAR-10 (He et al. 2016, option-A shortcuts): 19 convs + FC, 40.55 M MACs."""
    layers = [conv("conv1", 3, 16, 32)]
    size, cin = 32, 16
    for stage, width in enumerate((16, 32, 64), start=1):
        for block in range(3):
            stride = 2 if block == 0 and stage > 1 else 1
            layers.append(conv(f"layer{stage}.{block}.conv1", cin, width, size, stride=stride))
            size //= stride
            layers.append(conv(f"layer{stage}.{block}.conv2", width, width, size))
            cin = width
    layers.append(linear("linear", 64, 10))
    return chain("resnet20", layers)


@cache
def resnet18() -> Workload:
    """ResNet-18 for ImageNet (torchvision layout): 7x7 stem, 16 3x3 convs, 3 1x1 downsamples, FC."""
    layers = [conv("conv1", 3, 64, 224, k=7, stride=2, pad=3)]
    size, cin = 56, 64  # after the 3x3/2 max pool
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if block == 0 and stage > 1 else 1
            layers.append(conv(f"layer{stage}.{block}.conv1", cin, width, size, stride=stride))
            out = size // stride
            layers.append(conv(f"layer{stage}.{block}.conv2", width, width, out))
            if stride != 1:
                layers.append(conv(f"layer{stage}.{block}.downsample.0", cin, width, size, k=1, stride=2, pad=0))
            size, cin = out, width
    layers.append(linear("fc", 512, 1000))
    return chain("resnet18", layers)


@cache
def mobile_block() -> Workload:
    """A MobileNet-V2-style block on a 16x16 map: expand 1x1, depthwise 3x3, project 1x1, FC."""
    return chain("mobile", [conv("expand", 16, 64, 16, k=1), conv("dw", 64, 64, 16, groups=64),
                            conv("project", 64, 24, 16, k=1), linear("fc", 24, 10)])


def golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / name).read_text())


def layer_from_record(record: Mapping[str, Any]) -> Layer:
    """A Layer from the ``layer`` record stored in a golden file (Layer.to_dict without inputs)."""
    return Layer.from_dict({**record, "inputs": []})


def workload_from_golden(data: Mapping[str, Any], key: str = "layers") -> Workload:
    return Workload(data.get("network", "golden"), tuple(layer_from_record(x["layer"]) for x in data[key]))
