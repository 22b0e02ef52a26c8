"""Kernel detection against ONNX Runtime's own optimized graph, and one-kernel models that run."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nn2hw.predict.kernels import KERNEL_TYPES, kernel_graph, kernels_of, workload_graph  # noqa: E402
from nn2hw.predict.sampling import _prior, random_cnn  # noqa: E402

pytestmark = pytest.mark.timed  # times code on the CPU: runs alone (tests/conftest.py)


def _optimized_nodes(model: bytes, tmp_path: Path) -> list:
    """The nodes of ORT's optimized graph of ``model`` (what the CPU provider runs)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return list(onnx.load(str(tmp_path / "opt.onnx")).graph.node)


def _optimized_ops(model: bytes, tmp_path: Path) -> collections.Counter[str]:
    return collections.Counter(n.op_type for n in _optimized_nodes(model, tmp_path))


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


def test_a_residual_add_before_a_layer_norm_is_one_skip_layer_norm_kernel(tmp_path: Path) -> None:
    """ORT fuses BERT's residual Add into the LayerNorm after it (SkipLayerNormalization, a slow CPU
    kernel: 248 us at 128 x 384 against 29 us for the LayerNorm alone): MiniLM-L6's twelve are
    ``layernorm`` kernels with ``skip``, whose one-kernel model ORT runs as that one op. The
    embeddings' LayerNorm stays a plain one here (its Adds add constant embeddings: one operand), though
    ORT fuses it too (a 13th SkipLayerNormalization in MiniLM's profile, 250 us: left, 0.7 % of it)."""
    from nn2hw.api import zoo_workload

    kernels = kernels_of(zoo_workload("minilm_l6", "wordnet-supersense"))
    norms = [k for k in kernels if k.type == "layernorm"]
    skipped = [k for k in norms if k.features.get("skip")]
    assert len(skipped) == 12 and len(norms) == 13
    assert all(k.fused[0] == "Add" and len(k.layers) == 2 for k in skipped)
    assert not {layer for k in skipped for layer in k.layers} & {layer for k in kernels if k.type == "add"
                                                                 for layer in k.layers}
    assert _optimized_ops(kernel_graph(skipped[0]), tmp_path) == {"SkipLayerNormalization": 1}
    plain = next(k for k in norms if not k.features.get("skip"))
    assert _optimized_ops(kernel_graph(plain), tmp_path) == {"LayerNormalization": 1}


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


def test_nchwc_block_follows_the_cpu_flags(tmp_path: Path) -> None:
    from nn2hw.predict.kernels import nchwc_block

    for flags, block in (("fpu sse2 avx2 avx512f avx512bw", 16), ("fpu sse2 avx avx2 fma", 8), ("fp asimd", 1)):
        info = tmp_path / f"cpuinfo{block}"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert nchwc_block(str(info)) == block
    assert nchwc_block(str(tmp_path / "missing")) == 1


def test_an_nchwc_conv_is_priced_by_the_channels_its_blocks_compute() -> None:
    """ORT pads an NCHWc conv's channels to whole blocks (input channels below a block stay as they are;
    a depthwise conv's groups with them): 36-, 40- and 48-channel convs compute 48 on a 16-channel
    block, and their ``padded_macs`` say so; an int8 or NCHW conv's are its MACs."""
    from nn2hw.predict.kernels import conv_features, nchwc_block, nchwc_channels

    assert nchwc_channels(36, 40, 1, block=16) == (48, 48, 1)
    assert nchwc_channels(48, 17, 1, block=16) == (48, 32, 1)
    assert nchwc_channels(3, 24, 1, block=16) == (3, 32, 1)  # a stem conv reads its 3 channels unblocked
    assert nchwc_channels(40, 40, 40, block=16) == (48, 48, 48)  # depthwise: one channel per group
    assert nchwc_channels(36, 40, 1, block=8) == (40, 40, 1)
    block = nchwc_block()
    for cin, cout, groups, bits in ((36, 36, 1, 32), (20, 20, 20, 32), (3, 24, 1, 32), (36, 36, 1, 8), (18, 32, 1, 32)):
        f = conv_features(cin=cin, cout=cout, h=14, w=14, k=3, s=1, groups=groups, bits=bits)
        if f["nchwc"] and bits == 32:
            pin, pout, pgroups = nchwc_channels(cin, cout, groups)
            assert f["padded_macs"] == 14 * 14 * 9 * pout * (pin // pgroups)
            assert f["padded_macs"] > f["macs"] or block <= 1 or all(c % block == 0 for c in (cin, cout))
        else:  # int8, or NCHW (18 input channels on a 16-channel block)
            assert f["padded_macs"] == f["macs"]


def test_nchwc_rule_matches_ort_layout(tmp_path: Path) -> None:
    """Channel counts that are not multiples of the block: ORT pads outputs, needs inputs below the
    block or a multiple of 4 (depthwise: a multiple of 4)."""
    from nn2hw.predict.kernels import Kernel, conv_features, nchwc_block, nchwc_conv

    if nchwc_block() <= 1:
        pytest.skip("no NCHWc layout on this CPU")
    for cin, cout, groups in ((3, 12, 1), (12, 16, 1), (24, 40, 1), (18, 32, 1), (20, 20, 20), (18, 18, 18)):
        kernel = Kernel("k", "conv", (), (), conv_features(cin=cin, cout=cout, h=8, w=8, k=3, s=1, groups=groups))
        in_nchwc = _optimized_ops(kernel_graph(kernel), tmp_path)["ReorderOutput"] > 0
        assert in_nchwc == nchwc_conv(cin, cout, groups), (cin, cout, groups)


def test_int8_workload_graph_runs_what_the_int8_export_runs(tmp_path: Path) -> None:
    """The int8 kernels kernels_of models are the operators ORT runs for nn2hw.deploy's w8a8 export."""
    pytest.importorskip("torch")
    from nn2hw import zoo
    from nn2hw.compress import apply_plan, with_quantization
    from nn2hw.deploy import export_onnx
    from nn2hw.plan import Plan

    base = _resnet20()
    plan = with_quantization(Plan(base_model="resnet20", dataset="fashion-mnist", input_shape=(1, 1, 28, 28)),
                             base, 8, act_bits=8)  # type: ignore[arg-type]
    export_onnx(zoo.build("resnet20", "fashion-mnist").eval(), tmp_path / "q.onnx", plan=plan, check=False)
    work = apply_plan(plan, base)  # type: ignore[arg-type]
    real = _optimized_ops((tmp_path / "q.onnx").read_bytes(), tmp_path)
    ours = _optimized_ops(workload_graph(work), tmp_path)
    compute = ("QLinearConv", "QGemm", "QuantizeLinear", "DequantizeLinear", "BatchNormalization", "Relu", "Add")
    assert {op: real[op] for op in compute} == {op: ours[op] for op in compute}
    # the integers are stored alike (u8u8 on x86 without VNNI, whose kernels are slower than s8s8's)
    assert _int8_types((tmp_path / "q.onnx").read_bytes()) == _int8_types(workload_graph(work))
    types = collections.Counter(k.type for k in kernels_of(work))
    assert types["conv_int8"] == real["QLinearConv"] and types["gemm_int8"] == real["QGemm"]
    assert types["norm"] == real["BatchNormalization"]  # BN stays a separate fp32 op in the int8 export
    assert types["act"] + types["add"] == real["Relu"]  # a residual Add takes its Relu; the others stand alone


def _int8_max_pools(model: bytes, tmp_path: Path) -> int:
    """MaxPools ORT runs on 8-bit integers: in its optimized graph, fed by a QuantizeLinear."""
    nodes = _optimized_nodes(model, tmp_path)
    quantized = {out for n in nodes if n.op_type == "QuantizeLinear" for out in n.output}
    return sum(n.op_type == "MaxPool" and n.input[0] in quantized for n in nodes)


def test_a_max_pool_before_an_int8_conv_runs_on_integers_as_the_int8_export_runs_it(tmp_path: Path) -> None:
    """ORT moves the next int8 layer's QuantizeLinear above a MaxPool and runs the pool on 8-bit integers
    in NCHW (VGG's w8a8 export: 11-59 us against 3 us for the float NCHWc pool): the detector marks such
    a pool (``pool_int8``) and its one-kernel model runs it so; a pool before a float layer stays float."""
    pytest.importorskip("torch")
    from nn2hw import zoo
    from nn2hw.api import zoo_workload
    from nn2hw.compress import apply_plan, with_quantization
    from nn2hw.deploy import export_onnx
    from nn2hw.plan import Plan

    base = zoo_workload("vgg_fmnist", "fashion-mnist")
    plan = with_quantization(Plan(base_model="vgg_fmnist", dataset="fashion-mnist", input_shape=(1, 1, 28, 28)),
                             base, 8, act_bits=8)
    export_onnx(zoo.build("vgg_fmnist", "fashion-mnist").eval(), tmp_path / "q.onnx", plan=plan, check=False)
    work = apply_plan(plan, base)
    marked = [k for k in kernels_of(work) if k.type == "pool_int8"]
    assert 0 < len(marked) == _int8_max_pools((tmp_path / "q.onnx").read_bytes(), tmp_path)
    assert _int8_max_pools(workload_graph(work), tmp_path) == len(marked)
    assert _int8_max_pools(kernel_graph(marked[0]), tmp_path) == 1
    assert not any(k.type == "pool_int8" for k in kernels_of(base))


def _int8_types(model: bytes) -> set[int]:
    """The element types of a model's 8-bit initializers (weights and zero points)."""
    eight_bit = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    return {t.data_type for t in onnx.load_from_string(model).graph.initializer if t.data_type in eight_bit}


@pytest.mark.parametrize("storage", ["s8s8", "u8u8"])
def test_int8_kernel_models_store_integers_as_this_cpus_export(storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An int8 kernel is timed in the storage ``resolve_int8_storage('auto')`` gives the export here."""
    import numpy as np

    from nn2hw.measure.int8 import INT8_STORAGES
    from nn2hw.predict import kernels
    from nn2hw.predict.kernels import Kernel, conv_features

    monkeypatch.setattr(kernels, "resolve_int8_storage", lambda requested: (storage, "test"))
    kernels.native_int8.cache_clear()
    try:
        kernel = Kernel("q", "conv_int8", (), (), conv_features(cin=16, cout=16, h=8, w=8, k=3, s=1, groups=1,
                                                                bits=8))
        model = onnx.load_from_string(kernel_graph(kernel))
        wanted = INT8_STORAGES[storage]
        eight_bit = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer
                     if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]
        assert eight_bit and all(a.dtype == wanted.dtype for a in eight_bit)
        zero_points = [int(a) for a in eight_bit if a.ndim == 0]
        assert zero_points and set(zero_points) == {wanted.zero_point}
        weights = next(a for a in eight_bit if a.ndim == 4).astype(np.int64) - wanted.zero_point
        assert weights.min() >= -64 and weights.max() < 64  # the same integers either way
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # it runs
    finally:
        kernels.native_int8.cache_clear()


def test_chain_timing_leaves_out_the_reorders_a_lone_nchwc_kernel_pays(tmp_path: Path) -> None:
    """A depthwise conv between NCHWc kernels pays no layout reorders: its chain-model difference is
    below its one-kernel model (which reorders in and out) less the empty model."""
    from nn2hw.measure import MeasurementStore, Protocol, measure, onnx_runner
    from nn2hw.predict.kernels import Kernel, chain_graphs, conv_features, empty_graph, in_nchwc_chain

    kernel = Kernel("dw", "dwconv", (), (), conv_features(cin=64, cout=64, h=28, w=28, k=3, s=1, groups=64, act=1))
    if not in_nchwc_chain(kernel):
        pytest.skip("no NCHWc layout on this CPU")
    chained, baseline = chain_graphs(kernel)
    protocol = Protocol(repeats=40, profile_runs=0)
    times = [m.median_ms for m in measure([onnx_runner(m, protocol) for m in
                                           (chained, baseline, kernel_graph(kernel), empty_graph())],
                                          protocol, store=MeasurementStore(tmp_path / "m.sqlite"))]
    assert 0 < times[0] - times[1] < times[2] - times[3], times


def test_a_float_pool_between_nchwc_convs_is_timed_in_a_chain(tmp_path: Path) -> None:
    """VGG's float max pools read and write NCHWc between its convs (3 us in the network): they are timed
    behind an NCHWc 1x1 conv, where the pool runs NCHWc without the reorders its one-kernel model adds
    around it (4 + 3 us); a pool on channels that are no whole block stays a lone NCHW kernel."""
    from nn2hw.api import zoo_workload
    from nn2hw.measure import MeasurementStore, Protocol, measure, onnx_runner
    from nn2hw.predict.kernels import chain_graphs, empty_graph, in_nchwc_chain, nchwc_block
    from nn2hw.predict.sampling import _NetBuilder

    if nchwc_block() <= 1:
        pytest.skip("no NCHWc layout on this CPU")
    pools = [k for k in kernels_of(zoo_workload("vgg_fmnist", "fashion-mnist")) if k.type == "pool"]
    assert len(pools) == 3 and all(in_nchwc_chain(k) for k in pools)
    chained, baseline = chain_graphs(pools[0])
    assert _optimized_ops(chained, tmp_path)["ReorderInput"] == 1  # the 1x1 conv's input only
    protocol = Protocol(repeats=40, profile_runs=0)
    times = [m.median_ms for m in measure([onnx_runner(m, protocol) for m in
                                           (chained, baseline, kernel_graph(pools[0]), empty_graph())],
                                          protocol, store=MeasurementStore(tmp_path / "m.sqlite"))]
    assert times[0] - times[1] < times[2] - times[3], times
    for width, whole in ((24, False), (32, True)):
        net = _NetBuilder("t", (1, 3, 16, 16))
        net.conv_bn(net.pool(net.conv_bn("x", width, 3, 1, True), 2, 2, 0, "max_pool2d"), 32, 3, 1, True)
        (pool,) = [k for k in kernels_of(net.workload(10)) if k.type == "pool"]
        assert in_nchwc_chain(pool) is whole, width


def test_each_kernel_gets_its_own_baseline_that_runs_as_the_shared_one() -> None:
    """Kernels whose baseline models are the same graph (the empty model; one pre-conv alone for every
    conv reading 32 channels at 16x16) get a copy each, tagged with the kernel's model: the measurement
    store keeps one baseline per kernel, timed beside it, never one timed at another moment."""
    from nn2hw.predict.kernels import Kernel, chain_graphs, conv_features, empty_graph, in_nchwc_chain, measurement_pair

    convs = [Kernel("c", "conv", (), (), conv_features(cin=32, cout=cout, h=16, w=16, k=3, s=1)) for cout in (16, 64)]
    acts = [Kernel("a", "act", (), (), {"batch": 1, "c": c, "h": 8, "w": 8, "act": 1, "elements": 64 * c})
            for c in (8, 16)]
    pairs = [measurement_pair(k) for k in (*convs, *acts)]
    assert len({baseline for _, baseline in pairs}) == 4  # four kernels, four baselines
    for kernel, (model, baseline) in zip((*convs, *acts), pairs):
        shared = chain_graphs(kernel) if in_nchwc_chain(kernel) else (kernel_graph(kernel), empty_graph())
        assert model == shared[0]
        tagged, plain = onnx.load_from_string(baseline), onnx.load_from_string(shared[1])
        assert tagged.doc_string.startswith("baseline of model sha256 ") and tagged.graph == plain.graph
        ort.InferenceSession(baseline, providers=["CPUExecutionProvider"])  # it runs


def test_a_kernel_and_its_baseline_are_timed_in_one_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build times each kernel's model and its baseline together (interleaved rounds), so the
    difference it stores is free of the machine's drift between two moments."""
    from nn2hw.measure import MeasurementStore, Protocol, onnx_runner
    from nn2hw.predict import sampling
    from nn2hw.predict.kernels import measurement_pair

    groups: list[list[str]] = []
    real_measure = sampling.measure

    def recording(runners, protocol, *, store=None):  # type: ignore[no-untyped-def]
        groups.append([r.key for r in runners])
        return real_measure(runners, protocol, store=store)

    monkeypatch.setattr(sampling, "measure", recording)
    timer = sampling._Timer(sampling.BuildSettings(kernel_repeats=5), MeasurementStore(tmp_path / "m.sqlite"))
    kernels = _prior(random.Random(1), 6)[:4]
    samples = timer.kernels(kernels, set())
    assert len(samples) == len({hash(k) for k in kernels}) == len(groups)
    for kernel, group in zip(kernels, groups):
        assert group == [onnx_runner(m, Protocol()).key for m in measurement_pair(kernel)]


def test_a_gelu_after_an_int8_layer_is_timed_unfused_as_the_int8_export_runs_it(tmp_path: Path) -> None:
    """After an int8 linear layer ORT cannot fuse the exported GELU (each of its two reads gets its own
    DequantizeLinear): the detector makes it an ``act`` kernel of its own (``dq``), timed as those
    element-wise ops, where the float layer's GELU is fused."""
    torch = pytest.importorskip("torch")
    from nn2hw.compress import apply_plan, with_quantization
    from nn2hw.deploy import export_onnx
    from nn2hw.plan import Plan
    from nn2hw.workload import from_module
    from nn2hw.zoo.archs.bert import bert

    torch.manual_seed(0)
    model = bert(1, 0, vocab_size=120, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=32, max_position_embeddings=24).eval()
    workload = from_module(model, (1, 12), dtype=torch.int64, name="tiny")
    ids = torch.randint(1, 120, (4, 12), generator=torch.Generator().manual_seed(3))
    plan = with_quantization(Plan.for_workload(workload, "tiny"), workload, 8, "encoder.layer.0.*", act_bits=8,
                             model=model, calibration=ids)
    export_onnx(model, tmp_path / "q.onnx", plan=plan, workload=workload)
    real = _optimized_ops((tmp_path / "q.onnx").read_bytes(), tmp_path)
    assert real["Erf"] == 1 and real["Gelu"] == 1  # layer 0's GELU (after int8) unfused, layer 1's fused
    kernels = kernels_of(apply_plan(plan, workload))
    acts = [k for k in kernels if k.type == "act" and k.features["act"] == 5]
    assert [k.features["dq"] for k in acts] == [1]
    assert sum(k.type == "gemm" and k.features["act"] == 5 for k in kernels) == 1  # layer 1's, fused
    unfused = _optimized_ops(kernel_graph(acts[0]), tmp_path)
    assert unfused["Erf"] == 1 and unfused["DequantizeLinear"] == 2 and not unfused["Gelu"]
    from nn2hw.predict.kernels import Kernel

    fused = Kernel("f", "act", (), (), {**acts[0].features, "dq": 0})
    assert _optimized_ops(kernel_graph(fused), tmp_path)["Gelu"] == 1
