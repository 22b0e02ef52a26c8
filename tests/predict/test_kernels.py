"""Kernel detection against ONNX Runtime's own optimized graph, and one-kernel models that run."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nn2hw.predict.build import _prior, random_cnn  # noqa: E402
from nn2hw.predict.kernels import KERNEL_TYPES, kernel_graph, kernels_of, workload_graph  # noqa: E402


def _optimized_ops(model: bytes, tmp_path: Path) -> collections.Counter[str]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)


def _resnet20() -> object:
    from nn2hw.api import zoo_workload

    return zoo_workload("resnet20", "fashion-mnist")


def test_resnet20_kernels_match_ort_fusion(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from nn2hw import zoo
    from nn2hw.workload import from_onnx
    from nn2hw.workload.onnx_export import to_onnx

    path = tmp_path / "r20.onnx"
    to_onnx(zoo.build("resnet20", "fashion-mnist").eval(), (1, 1, 28, 28), path, dynamo=False)
    del torch
    ops = _optimized_ops(path.read_bytes(), tmp_path)
    kernels = kernels_of(from_onnx(path))
    types = collections.Counter(k.type for k in kernels)
    assert types["conv"] == ops["Conv"] == 19  # BatchNorm folded, Relu fused: one kernel per conv
    fused_adds = sum("Add" in k.fused and k.features["residual"] == 2 for k in kernels)
    separate_adds = sum("Add" in k.fused and k.features["residual"] == 1 for k in kernels)
    assert ops["Add"] == separate_adds and fused_adds + separate_adds == 9  # NCHWc Sum fusion where both are NCHWc
    assert types["gemm"] == ops["Gemm"] == 1 and types["global_pool"] == ops["GlobalAveragePool"] == 1
    assert types["layout"] == ops["Slice"] // 2 + ops["Pad"] + ops["Flatten"]
    assert "BatchNormalization" not in ops and all(k.type != "norm" for k in kernels)


def test_baked_and_exported_workloads_give_the_same_kernels() -> None:
    kernels = kernels_of(_resnet20())  # type: ignore[arg-type]
    assert collections.Counter(k.type for k in kernels) == {"conv": 19, "layout": 5, "global_pool": 1, "gemm": 1}


def test_every_kernel_type_runs_in_ort() -> None:
    drawn = _prior(random.Random(0), 3 * len(KERNEL_TYPES))
    seen = {}
    for kernel in drawn:
        seen.setdefault(kernel.type, kernel)
    assert set(seen) == set(KERNEL_TYPES)
    for kernel in seen.values():
        session = ort.InferenceSession(kernel_graph(kernel), providers=["CPUExecutionProvider"])
        assert session.get_outputs(), kernel.type


def test_workload_graph_matches_workload() -> None:
    work = random_cnn(random.Random(3))
    import numpy as np

    session = ort.InferenceSession(workload_graph(work), providers=["CPUExecutionProvider"])
    x = np.zeros(work.input_shape, np.float32)
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert y.shape == (1, 10)
    assert len(kernels_of(work)) < len(work.layers)
