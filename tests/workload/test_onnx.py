"""Extraction from ONNX: the same workload as from torch, op coverage, and clear errors on bad files."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the ONNX extra is not installed (pip install 'nn2hw[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nn2hw.errors import ConfigError, ModelError  # noqa: E402
from nn2hw.workload import OpKind, Workload, from_module, from_onnx  # noqa: E402
from nn2hw.workload.onnx_export import to_onnx  # noqa: E402
from tests.workload.nets import MobileLike, SelfConcat, TinyResNet, Untraceable  # noqa: E402

NETS = {"tiny_resnet": (TinyResNet, (1, 3, 32, 32)), "mobile_like": (MobileLike, (2, 3, 16, 16)),
        "self_concat": (SelfConcat, (1, 3, 8, 8))}
EXPORTERS = {"dynamo": True, "torchscript": False}


def _signature(w: Workload) -> list[tuple]:
    """What a cost model reads of each compute layer."""
    return [(l.name, l.kind, l.batch, l.in_channels, l.out_channels, l.in_h, l.in_w, l.out_h, l.out_w, l.kernel_h,
             l.kernel_w, l.stride_h, l.stride_w, l.pad_h, l.pad_w, l.groups, l.macs) for l in w.compute_layers]


def _concat_operands(w: Workload) -> list[list[tuple[OpKind, int]]]:
    """What each concat reads, in order and with repeats: its inputs' kinds and channels."""
    return [[(w.layer(i).kind, w.layer(i).out_channels) for i in l.inputs] for l in w if l.kind is OpKind.CONCAT]


def _assert_same_workload(torch_w: Workload, onnx_w: Workload) -> None:
    assert onnx_w.source == "onnx"
    assert _signature(onnx_w) == _signature(torch_w)
    assert onnx_w.macs == torch_w.macs
    assert Counter(l.kind for l in onnx_w) == Counter(l.kind for l in torch_w)
    assert _concat_operands(onnx_w) == _concat_operands(torch_w)
    assert [(g.layers, g.cuttable, len(g.followers)) for g in onnx_w.coupling_groups] == \
        [(g.layers, g.cuttable, len(g.followers)) for g in torch_w.coupling_groups]
    assert [onnx_w.layer(o).kind for o in onnx_w.outputs] == [torch_w.layer(o).kind for o in torch_w.outputs]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each small net exported once with each exporter: {(net, exporter): (torch workload, path)}."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for net, (cls, shape) in NETS.items():
        model = cls()
        torch_w = from_module(model, shape)
        for exporter, dynamo in EXPORTERS.items():
            out[net, exporter] = (torch_w, to_onnx(model, shape, folder / f"{net}_{exporter}.onnx", dynamo=dynamo))
    return out


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("net", NETS)
def test_onnx_gives_the_torch_workload(exported, net, exporter):
    torch_w, path = exported[net, exporter]
    onnx_w = from_onnx(path)
    _assert_same_workload(torch_w, onnx_w)
    assert onnx_w.name == path.stem and from_onnx(path, name="mine").name == "mine"
    assert not onnx_w.unsupported
    assert onnx_w.input_shape == torch_w.input_shape


def test_small_net_details_survive_the_trip(exported):
    tiny = from_onnx(exported["tiny_resnet", "dynamo"][1])
    assert [l.name for l in tiny if l.kind is OpKind.NORM][:2] == ["bn1", "layer1.0.bn1"]  # BatchNorm kept
    slices = [l for l in tiny if l.kind is OpKind.SLICE]
    assert [(s.in_h, s.out_h, s.in_channels) for s in slices] == [(32, 16, 16)]  # one slice per x[:, :, ::2, ::2]
    assert any("pad" in reason for reason in tiny.group_of("layer1.0.conv2").fixed_by)  # option-A pin
    mobile = from_onnx(exported["mobile_like", "torchscript"][1])
    assert mobile.layer("block.dw.0").conv_type == "depthwise"
    cat = next(l for l in mobile if l.kind is OpKind.CONCAT)
    assert set(cat.inputs) == {"branch_a", "branch_b"} and cat.out_channels == 16
    assert (mobile.layer("head.1").batch, mobile.layer("head.1").in_channels) == (2, 16 * 64)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Constant folding")  # TorchScript, on purpose
def test_bn_folding_export_still_names_layers_by_module(tmp_path):
    """TorchScript's default folds BN into convs and renames their weights 'onnx::Conv_N':
    names then come from the node scopes ('/layer1/layer1.0/conv1/Conv')."""
    model = TinyResNet()
    path = tmp_path / "folded.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False)
    w = from_onnx(path)
    assert not [l for l in w if l.kind is OpKind.NORM]
    assert [l.name for l in w.compute_layers] == [l.name for l in from_module(model, (1, 3, 32, 32)).compute_layers]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Constant folding")
def test_dynamic_batch_is_read_as_one_and_dynamic_sizes_are_refused(tmp_path):
    model, x = TinyResNet().eval(), torch.zeros(1, 3, 32, 32)
    batch_only, spatial = tmp_path / "batch.onnx", tmp_path / "spatial.onnx"
    torch.onnx.export(model, (x,), str(batch_only), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    torch.onnx.export(model, (x,), str(spatial), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})
    reference = from_module(model, (1, 3, 32, 32)).macs
    w = from_onnx(batch_only)
    assert w.input_shape == (1, 3, 32, 32) and w.macs == reference
    with pytest.raises(ModelError, match=r"dynamic dimension\(s\) \['H', 'W'\].*Fix: Either re-export .*static"):
        from_onnx(spatial)
    assert from_onnx(spatial, input_shape=(1, 3, 32, 32)).macs == reference
    assert from_onnx(spatial, input_shape=(2, 3, 32, 32)).macs == 2 * reference
    with pytest.raises(ConfigError, match="contradicts"):
        from_onnx(spatial, input_shape=(1, 4, 32, 32))


# --- op coverage on hand-built graphs ---------------------------------------------------------

def _const(name: str, shape: tuple[int, ...], value: float = 0.5) -> TensorProto:
    return numpy_helper.from_array(np.full(shape, value, dtype=np.float32), name)


def _save(tmp_path, nodes, inputs, outputs, inits=(), name="g.onnx", opset=17) -> str:
    """Write a graph; ``inputs`` are (name, shape), ``outputs`` (name, rank) with symbolic sizes."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [f"{n}{i}" for i in range(rank)])
                               for n, rank in outputs], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("my.ops", 1)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


def test_op_coverage_on_a_hand_built_graph(tmp_path):
    n = helper.make_node
    ints = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)  # noqa: E731
    nodes = [
        n("Conv", ["x", "stem.weight", "stem.bias"], ["c1"], name="stem_conv", strides=[2, 2], auto_pad="SAME_UPPER"),
        n("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
        n("MaxPool", ["a1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Conv", ["p1", "dw.weight"], ["c2"], group=8, pads=[1, 1, 1, 1]),
        n("HardSigmoid", ["c2"], ["a2"]),
        n("Mul", ["p1", "a2"], ["m1"]),  # two activations: element-wise
        n("Add", ["m1", "half"], ["m2"]),  # activation + constant: unary
        n("Identity", ["m2"], ["i1"]),
        n("Dropout", ["i1"], ["d1"]),
        n("ReduceMean", ["d1"], ["gap"], axes=[2, 3], keepdims=1),
        n("ReduceMean", ["d1"], ["cmean"], axes=[1], keepdims=1),  # over channels: not a pool
        n("AveragePool", ["d1"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Concat", ["d1", "m1"], ["cat1"], axis=1),
        n("Concat", ["d1", "m1"], ["cat2"], axis=2),  # along H: not a channel concat
        n("Transpose", ["d1"], ["tr"], perm=[0, 2, 3, 1]),
        n("Custom", ["d1"], ["cu"], domain="my.ops"),
        n("Shape", ["gap"], ["shp"]),  # shape arithmetic: no activations
        n("Gather", ["shp", "zero"], ["batch"], axis=0),
        n("Unsqueeze", ["batch", "axis0"], ["batch1"]),
        n("Concat", ["batch1", "minus_one"], ["target"], axis=0),
        n("Reshape", ["gap", "target"], ["flat"]),
        n("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
        n("MatMul", ["flat", "proj.weight"], ["pm"]),
        n("Add", ["pm", "proj.bias"], ["proj"]),  # a Linear on a 3-D input: folds into the MatMul
        n("Transpose", ["flat"], ["flat_t"], perm=[1, 0]),
        n("MatMul", ["flat", "flat_t"], ["gram"]),  # two activations: a matmul, not a linear layer
        n("Softmax", ["logits"], ["prob"], axis=1),
        n("LayerNormalization", ["proj", "ln.weight", "ln.bias"], ["ln"], axis=-1),
    ]
    inits = [_const("stem.weight", (8, 3, 3, 3)), _const("stem.bias", (8,)), _const("dw.weight", (8, 1, 3, 3)),
             _const("half", ()), ints("zero", 0), ints("axis0", [0]), ints("minus_one", [-1]),
             _const("fc.weight", (10, 8)), _const("fc.bias", (10,)), _const("proj.weight", (8, 6)),
             _const("proj.bias", (6,)), _const("ln.weight", (6,)), _const("ln.bias", (6,))]
    outputs = [(o, 4) for o in ("cmean", "ap", "cat1", "cat2", "tr", "cu")] + \
        [(o, 2) for o in ("logits", "gram", "prob", "ln")]
    w = from_onnx(_save(tmp_path, nodes, [("x", [1, 3, 32, 32])], outputs, inits))
    kinds = {l.name: (l.kind, l.op) for l in w}
    stem = w.layer("stem")  # SAME_UPPER, stride 2 on 32: pads 0 before, 1 after; 1 reproduces the 16 outputs
    assert (stem.kind, stem.out_h, stem.stride_h, stem.pad_h, stem.kernel_h, stem.bias) == \
        (OpKind.CONV, 16, 2, 1, 3, True)
    assert w.layer("dw").conv_type == "depthwise" and w.layer("dw").out_h == 8
    pool = next(l for l in w if l.op == "MaxPool")
    assert (pool.kind, pool.kernel_h, pool.stride_h, pool.pad_h, pool.out_h) == (OpKind.POOL, 3, 2, 1, 8)
    by_op = Counter((l.op, l.kind) for l in w)
    assert by_op[("LeakyRelu", OpKind.ACT)] == by_op[("HardSigmoid", OpKind.ACT)] == 1
    assert by_op[("Softmax", OpKind.SOFTMAX)] == 1
    assert by_op[("Mul", OpKind.ELTWISE)] == 1 and by_op[("Add", OpKind.ACT)] == 1
    assert by_op[("ReduceMean", OpKind.POOL)] == 1 and by_op[("ReduceMean", OpKind.OTHER)] == 1
    assert by_op[("AveragePool", OpKind.POOL)] == 1
    assert by_op[("Concat", OpKind.CONCAT)] == 2  # along channels, and along H (channels agree)
    assert by_op[("Transpose", OpKind.RESHAPE)] == 2 and by_op[("MatMul", OpKind.MATMUL)] == 1
    assert by_op[("Reshape", OpKind.RESHAPE)] == 1 and by_op[("LayerNormalization", OpKind.NORM)] == 1
    assert not {"Identity", "Dropout", "Shape", "Gather", "Unsqueeze"} & {op for _, op in kinds.values()}
    fc, proj = w.layer("fc"), w.layer("proj")
    assert (fc.kind, fc.in_channels, fc.out_channels, fc.bias, fc.macs) == (OpKind.LINEAR, 8, 10, True, 80)
    assert (proj.kind, proj.in_channels, proj.out_channels, proj.bias) == (OpKind.LINEAR, 8, 6, True)
    assert not [l for l in w if l.op == "Add" and l.inputs == ("proj",)]  # the bias add was folded
    assert sorted(l.op for l in w.unsupported) == ["ReduceMean", "my.ops.Custom"]
    assert w.macs == 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 80 + 48 + 8  # ... fc, proj, gram (1 x 8 x 1)


# --- bad input ----------------------------------------------------------------------------------

def _assert_clean(exc_info, *words: str) -> None:
    """One paragraph with cause and fix, and no onnx/protobuf exception chained to it."""
    err = exc_info.value
    assert err.cause and err.fix and "Fix:" in str(err)
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    for word in words:
        assert word in str(err)


@pytest.fixture(scope="module")
def good_bytes(exported) -> bytes:
    return exported["tiny_resnet", "torchscript"][1].read_bytes()


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelError) as info:
        from_onnx(tmp_path / "nope.onnx")
    _assert_clean(info, "does not exist")
    with pytest.raises(ModelError) as info:
        from_onnx(tmp_path)
    _assert_clean(info, "folder")


@pytest.mark.parametrize("content", ["random", "truncated", "empty", "text"])
def test_unreadable_files(tmp_path, good_bytes, content):
    data = {"random": np.random.default_rng(0).bytes(4096), "truncated": good_bytes[: len(good_bytes) // 2],
            "empty": b"", "text": b"this is a CSV file,\n1,2,3\n"}[content]
    path = tmp_path / f"{content}.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError) as info:
        from_onnx(path)
    _assert_clean(info, str(path))


def test_model_failing_the_checker(tmp_path):
    nodes = [helper.make_node("Relu", ["x", "undefined_tensor"], ["y"])]  # Relu takes one input, of a known name
    with pytest.raises(ModelError) as info:
        from_onnx(_save(tmp_path, nodes, [("x", [1, 3, 4, 4])], [("y", 4)]))
    _assert_clean(info, "checker")


def test_inconsistent_model_fails_clearly(tmp_path):
    conv = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    with pytest.raises(ModelError) as info:
        from_onnx(_save(tmp_path, conv, [("x", [1, 3, 8, 8])], [("y", 4)], [_const("w", (4, 5, 3, 3))]))
    _assert_clean(info, "reads 3 channels", "expects 5")
    add = [helper.make_node("Add", ["x", "z"], ["y"])]  # shapes that do not broadcast
    with pytest.raises(ModelError) as info:
        from_onnx(_save(tmp_path, add, [("x", [1, 3, 8, 8]), ("z", [1, 4, 8, 8])], [("y", 4)], name="add.onnx"))
    _assert_clean(info, "shape inference")


def test_missing_onnx_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    for call in (lambda: from_onnx(tmp_path / "m.onnx"), lambda: to_onnx(TinyResNet(), (1, 3, 32, 32), tmp_path / "m")):
        with pytest.raises(ModelError) as info:
            call()
        _assert_clean(info, 'pip install "nn2hw[onnx]"')


def test_to_onnx_restores_mode_and_reports_failures(tmp_path):
    model = TinyResNet().train()
    to_onnx(model, torch.zeros(1, 3, 32, 32), tmp_path / "t.onnx", dynamo=False)
    assert model.training
    with pytest.raises(ModelError, match="Module"):
        to_onnx(object(), (1, 3, 8, 8), tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="does not exist"):
        to_onnx(model, (1, 3, 32, 32), tmp_path / "missing" / "x.onnx")
    with pytest.raises(ModelError) as info:  # data-dependent control flow: torch.export refuses it
        to_onnx(Untraceable(), (1, 3, 8, 8), tmp_path / "u.onnx")
    _assert_clean(info, "dynamo=False")


# --- the zoo ------------------------------------------------------------------------------------

ZOO = [pytest.param("resnet20", "cifar10", True, id="resnet20-dynamo"),
       pytest.param("resnet18", "imagenet", True, id="resnet18-dynamo", marks=pytest.mark.slow),
       pytest.param("mobilenet_v2", "imagenet", False, id="mobilenet_v2-torchscript", marks=pytest.mark.slow)]
# Hand counts (issue 2, reference §1): ResNet-18 1.814 G MACs, ResNet-20 40.55 M MACs.
HAND_MACS = {"resnet18": 1.814e9, "resnet20": 40.55e6}


@pytest.mark.parametrize("name, dataset, dynamo", ZOO)
def test_zoo_models_give_the_torch_workload(tmp_path, name, dataset, dynamo):
    from nn2hw import zoo

    model = zoo.build(name, dataset)
    shape = (1, *zoo.entry(name).variant(dataset).input_shape)
    torch_w = from_module(model, shape)
    onnx_w = from_onnx(to_onnx(model, shape, tmp_path / f"{name}.onnx", dynamo=dynamo))
    _assert_same_workload(torch_w, onnx_w)
    if name in HAND_MACS:
        assert onnx_w.macs == pytest.approx(HAND_MACS[name], rel=5e-4)
