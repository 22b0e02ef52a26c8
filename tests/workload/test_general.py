"""The general IR on a BERT-style encoder, a NAS-Bench-201 cell network and a ViT (nn2hw.testing.nets):
torch.fx, hooks and both ONNX exporters agree; hand-counted MACs, elements and bytes; head-aware
coupling and rewriting; JSON round trip; old workload files still load."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest
import torch

from nn2hw.compress import apply_plan, validate_plan, with_cut
from nn2hw.errors import ConfigError, PlanError
from nn2hw.plan import Plan
from nn2hw.testing import nets
from nn2hw.workload import Layer, OpKind, Workload, from_module

NETS = {"bert": nets.bert, "nb201": nets.nb201, "vit": nets.vit}
NEW_FIELDS = ("in_shapes", "out_shape", "dtype", "channel_axes")
SELF = "encoder.layer.0.attention.self"


@pytest.fixture(scope="module")
def built():
    """{net: (model, inputs, fx workload)}."""
    out = {}
    for name, make in NETS.items():
        model, inputs = make()
        out[name] = (model, inputs, from_module(model, inputs, method="fx"))
    return out


def _tensors(w: Workload) -> list[tuple]:
    """Every layer's kind, tensors and cost view (names of functional ops differ between paths)."""
    return [(l.kind, l.in_shapes, l.constants, l.out_shape, l.dtype, l.channel_axes, l.batch, l.in_channels,
             l.out_channels, l.in_h, l.out_h, l.groups) for l in w]


def _defining(w: Workload) -> list[tuple]:
    """What the cost models read of the layers that define channels: compute layers and embeddings."""
    return [(l.name, l.kind, l.in_shapes, l.out_shape, l.channel_axes, l.batch, l.in_channels, l.out_channels,
             l.in_h, l.out_h, l.kernel_h, l.stride_h, l.pad_h, l.groups, l.bias, l.macs, l.parameters)
            for l in w if l.defines_channels]


def _groups(w: Workload, followers: bool = True) -> list[tuple]:
    return [(g.layers, g.cuttable, g.unit, g.channels, len(g.fixed_by)) + ((len(g.followers),) if followers else ())
            for g in w.coupling_groups]


@pytest.mark.parametrize("net", NETS)
def test_hooks_give_the_fx_workload(built, net):
    model, inputs, fx = built[net]
    hooks = from_module(model, inputs, method="hooks")
    assert (fx.source, hooks.source) == ("torch.fx", "hooks")
    assert _tensors(hooks) == _tensors(fx)
    assert _defining(hooks) == _defining(fx)
    assert _groups(hooks) == _groups(fx)
    assert [(l.name, l.out_shape, l.dtype) for l in hooks.inputs] == [(l.name, l.out_shape, l.dtype) for l in fx.inputs]
    assert hooks.outputs == fx.outputs and not fx.unsupported


onnx = pytest.importorskip("onnx", reason="the ONNX extra is not installed (pip install 'nn2hw[onnx]')")
from nn2hw.workload import from_onnx  # noqa: E402
from nn2hw.workload.onnx_export import to_onnx  # noqa: E402

FUSED_TRANSPOSES = {"bert": 2, "vit": 2, "nb201": 0}
"""The TorchScript exporter fuses K's head permute and its .transpose(-1, -2) into one Transpose:
one layout op fewer per attention block (docs/workload.md)."""


@pytest.fixture(scope="module")
def exported(built, tmp_path_factory):
    folder = tmp_path_factory.mktemp("general")
    return {(net, dynamo): from_onnx(to_onnx(model, inputs, folder / f"{net}_{dynamo}.onnx", dynamo=dynamo))
            for net, (model, inputs, _) in built.items() for dynamo in (True, False)}


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("net", NETS)
def test_onnx_gives_the_fx_workload(built, exported, net, dynamo):
    fx, w = built[net][2], exported[net, dynamo]
    assert _defining(w) == _defining(fx)
    assert w.macs == fx.macs and w.parameters == fx.parameters
    fused = 0 if dynamo else FUSED_TRANSPOSES[net]
    assert Counter(l.kind for l in w) + Counter({OpKind.RESHAPE: fused}) == Counter(l.kind for l in fx)
    assert _groups(w, followers=dynamo) == _groups(fx, followers=dynamo)
    assert [(l.name, l.out_shape, l.dtype) for l in w.inputs] == [(l.name, l.out_shape, l.dtype) for l in fx.inputs]
    assert [w.layer(o).kind for o in w.outputs] == [fx.layer(o).kind for o in fx.outputs]
    assert not w.unsupported
    if dynamo:
        assert _tensors(w) == _tensors(fx)


def test_an_older_opset_decomposes_gelu(built, tmp_path):
    """Below opset 20 both exporters write GELU as x * 0.5 * (1 + erf(x / sqrt 2)): 4 act + 1 eltwise."""
    model, inputs, fx = built["bert"]
    w = from_onnx(to_onnx(model, inputs, tmp_path / "bert17.onnx", dynamo=False, opset=17))
    assert _defining(w) == _defining(fx)
    extra = Counter(l.kind for l in w) - Counter(l.kind for l in fx)
    assert extra == Counter({OpKind.ACT: 2 * 3, OpKind.ELTWISE: 2 * 1})  # two GELUs


# --- the BERT-style encoder in numbers -----------------------------------------------------------

def test_bert_macs_parameters_and_kinds_by_hand(built):
    model, _, w = built["bert"]
    t, h, inter, heads, layers = 8, 32, 64, 4, 2
    per_layer = 3 * t * h * h + 2 * heads * t * t * (h // heads) + t * h * h + 2 * t * h * inter
    assert w.macs == layers * per_layer + h * h  # + the pooler on the first token
    assert w.macs == 140_288
    # the position embedding of a fixed length is a constant operand of the add, not a lookup: the t rows
    # it reads count as parameters, the other 16 - t stored rows are never read
    assert [(l.name, l.kind, l.constants) for l in w if l.constants] == [("add_1", OpKind.ACT, ((1, t, h),))]
    assert w.parameters == sum(p.numel() for p in model.parameters()) - (16 - t) * h
    assert [l.name for l in w if l.kind is OpKind.EMBED] == ["embeddings.word_embeddings",
                                                             "embeddings.token_type_embeddings"]
    assert [(l.name, l.dtype, l.channel_axes) for l in w.inputs] == \
        [("input_ids", "int64", ()), ("attention_mask", "int64", ()), ("token_type_ids", "int64", ())]
    kinds = Counter(l.kind for l in w)
    assert (kinds[OpKind.MATMUL], kinds[OpKind.SOFTMAX], kinds[OpKind.LINEAR], kinds[OpKind.NORM]) == (4, 2, 13, 5)
    scores = w.layer(f"{SELF}.matmul")
    assert [w.layer(i).op for i in scores.inputs] == ["permute", "transpose"]  # Q's head split and K^T
    assert (scores.in_shapes, scores.out_shape) == (((1, 4, 8, 8), (1, 4, 8, 8)), (1, 4, 8, 8))
    assert (scores.batch, scores.groups, scores.in_channels, scores.out_channels, scores.out_h) == (1, 4, 32, 32, 8)
    assert (scores.weights, scores.parameters, scores.channel_axes) == (4 * 8 * 8, 0, (1, 3))
    query = w.layer(f"{SELF}.query")
    assert (query.batch, query.in_channels, query.out_channels, query.channel_axes) == (8, 32, 32, (2,))


def test_elements_vector_ops_and_bytes_by_hand(built):
    w = built["bert"][2]
    scores, probs = w.layer(f"{SELF}.matmul"), next(l for l in w if l.kind is OpKind.SOFTMAX)
    assert (scores.elements, scores.vector_ops) == (256, 0)
    assert scores.read_bytes == 256 * 2 + 256 * 2 and scores.write_bytes == 512  # Q and K^T at 16 bits
    assert (probs.elements, probs.vector_ops, probs.read_bytes) == (256, 5 * 256, 512)
    word = w.layer("embeddings.word_embeddings")
    assert (word.elements, word.parameters, word.vector_ops) == (256, 100 * 32, 0)
    assert word.read_bytes == 8 * 2 + 256 * 2  # the ids and the 8 rows gathered
    norm = w.layer("embeddings.LayerNorm")
    assert (norm.vector_ops, norm.parameters, norm.read_bytes) == (5 * 256, 64, 256 * 2 + 64 * 2)
    query = w.layer(f"{SELF}.query")
    assert (query.read_bytes, query.write_bytes, query.parameters) == (256 * 2 + (1024 + 32) * 2, 512, 1056)
    mask_add = next(l for l in w if l.kind is OpKind.ELTWISE and len(l.in_shapes[1]) == 4)
    assert mask_add.in_shapes == ((1, 4, 8, 8), (1, 1, 1, 8)) and mask_add.read_bytes == (256 + 8) * 2
    cell = built["nb201"][2]
    pool, bn = cell.layer("cells.0.layers.3.op"), cell.layer("stem.1")
    assert (pool.elements, pool.vector_ops) == (8 * 16 * 16, 9 * 8 * 16 * 16)
    assert (bn.vector_ops, bn.parameters) == (2 * 8 * 16 * 16, 16)  # inference batch norm: scale and shift
    fc = Layer(name="fc", kind=OpKind.LINEAR, inputs=("x",), in_channels=3, out_channels=5, weight_bits=4)
    assert fc.read_bytes == 3 * 2 + 8  # no shapes recorded: read from the cost view; 15 4-bit weights in 8 bytes


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_stored_constants_are_operands_counted_once(method):
    """The ViT's class token (expanded over a batch of 3) and position embedding: constant operands of the
    concat and the add, each stored value counted once as a parameter and read at weight_bits."""
    model, inputs = nets.vit(batch=3)
    w = from_module(model, inputs, method=method)
    assert [(l.name, l.kind, l.constants) for l in w if l.constants] == \
        [("cat", OpKind.CONCAT, ((1, 1, 32),)), ("add", OpKind.ACT, ((1, 17, 32),))]
    assert w.parameters == sum(p.numel() for p in model.parameters())
    add, cat = w.layer("add"), w.layer("cat")
    assert (add.parameters, add.vector_ops) == (17 * 32, 3 * 17 * 32)
    assert add.read_bytes == 3 * 17 * 32 * 2 + 17 * 32 * 2 and cat.read_bytes == 3 * 16 * 32 * 2 + 32 * 2
    assert w.group_of("patch_embed").fixed_by == ("cat (concat of a constant)",)


def test_constant_operands_follow_a_change_and_pin_their_channels():
    x = Layer(name="x", kind=OpKind.INPUT, out_shape=(1, 4, 8), channel_axes=(2,), in_channels=8, out_channels=8,
              in_h=4, out_h=4)
    fc = Layer(name="fc", kind=OpKind.LINEAR, inputs=("x",), batch=4, in_channels=8, out_channels=8,
               in_shapes=((1, 4, 8),), out_shape=(1, 4, 8), channel_axes=(2,))
    scale = Layer(name="scale", kind=OpKind.ACT, op="mul", inputs=("fc",), in_channels=8, out_channels=8, in_h=4,
                  out_h=4, in_shapes=((1, 4, 8),), out_shape=(1, 4, 8), channel_axes=(2,), constants=((8,),))
    mask = Layer(name="mask", kind=OpKind.ELTWISE, op="add", inputs=("scale", "fc"), in_channels=8, out_channels=8,
                 in_h=4, out_h=4, in_shapes=((1, 4, 8),) * 2, out_shape=(1, 4, 8), channel_axes=(2,),
                 constants=((1, 4, 1),))
    w = Workload(name="scaled", layers=(x, fc, scale, mask), outputs=("mask",))
    assert (scale.parameters, scale.read_bytes, mask.vector_ops) == (8, 4 * 8 * 2 + 8 * 2, 2 * 32)
    assert w.group_of("fc").fixed_by == ("scale (a stored constant across the channels)",)
    masked = Workload(name="masked", layers=(x, fc, replace(scale, constants=()), mask), outputs=("mask",))
    assert masked.group_of("fc").fixed_by == ("mask (network output)",)  # a constant broadcast along the channels
    cut = Workload(name="open", layers=(x, fc, scale), outputs=("x",)).with_changes({"fc": {"out_channels": 6}})
    assert cut.layer("scale").constants == ((6,),) and cut.layer("scale").out_shape == (1, 4, 6)
    conv = Layer(name="conv", kind=OpKind.CONV, inputs=("img",), in_channels=3, out_channels=4, in_h=5, in_w=5,
                 out_h=5, out_w=5, in_shapes=((1, 3, 5, 5),), out_shape=(1, 4, 5, 5))
    coords = Layer(name="coords", kind=OpKind.CONCAT, op="cat", inputs=("conv",), in_channels=4, out_channels=6,
                   in_h=5, in_w=5, out_h=5, out_w=5, in_shapes=((1, 4, 5, 5),), out_shape=(1, 6, 5, 5),
                   constants=((1, 2, 5, 5),))  # a fixed 2-channel coordinate map
    img = Layer(name="img", kind=OpKind.INPUT, in_channels=3, out_channels=3, in_h=5, in_w=5, out_h=5, out_w=5,
                out_shape=(1, 3, 5, 5))
    wider = Workload(name="coord", layers=(img, conv, coords)).with_changes({"conv": {"out_channels": 7}})
    assert (wider.layer("coords").out_channels, wider.layer("coords").out_shape) == (9, (1, 9, 5, 5))
    assert wider.layer("coords").constants == ((1, 2, 5, 5),)
    with pytest.raises(ConfigError, match="'fc': a linear layer cannot list constant operands"):
        replace(fc, constants=((8,),))
    assert "constants" not in fc.to_dict() and Layer.from_dict(scale.to_dict()) == scale


# --- coupling and rewriting -------------------------------------------------------------------------

def test_attention_heads_are_one_pinned_group(built):
    w = built["bert"][2]
    group = w.group_of(f"{SELF}.query")
    assert group.layers == (f"{SELF}.query", f"{SELF}.key", f"{SELF}.value")
    assert {f"{SELF}.matmul", f"{SELF}.matmul_1"} <= set(group.followers)
    assert any(l.kind is OpKind.SOFTMAX for l in w if l.name in group.followers)
    assert (group.unit, group.channels, group.cuttable) == (8, 32, False)
    assert group.fixed_by == (f"{SELF}.matmul (attention heads)",)
    ffn = w.group_of("encoder.layer.0.intermediate.dense")
    assert ffn.layers == ("encoder.layer.0.intermediate.dense",) and ffn.cuttable and ffn.unit == 1
    hidden = w.group_of("embeddings.word_embeddings")
    assert "encoder.layer.0.output.dense" in hidden.layers and not hidden.cuttable
    assert any("embedding table" in r for r in hidden.fixed_by)
    with pytest.raises(PlanError, match="attention heads"):
        validate_plan(with_cut(Plan.for_workload(w, "bert"), w, f"{SELF}.query", 16), w)


def test_vit_and_nb201_coupling(built):
    vit = built["vit"][2]
    tokens = vit.group_of("patch_embed")
    assert {"flatten", "transpose", "cat"} <= set(tokens.followers)  # flatten(2) and transpose keep the channels
    assert tokens.fixed_by == ("cat (concat of a constant)",)  # the class token
    cat = vit.layer("cat")
    assert (cat.kind, cat.concat_along_channels, cat.in_shapes, cat.out_shape) == \
        (OpKind.CONCAT, False, ((1, 16, 32),), (1, 17, 32))
    assert vit.group_of("blocks.1.attn.q").unit == 8
    cell = built["nb201"][2]
    stem = cell.group_of("stem.0")
    assert stem.layers == ("stem.0", "cells.0.layers.2.op.1", "cells.0.layers.5.op.1") and stem.cuttable
    assert "cells.0.layers.3.op" in stem.followers  # the avg_pool_3x3 edge; the skip edge is the stem itself


def test_head_aware_changes(built):
    w = built["bert"][2]
    qkv = (f"{SELF}.query", f"{SELF}.key", f"{SELF}.value")
    three = w.with_changes({n: {"out_channels": 24} for n in qkv})
    scores, context = three.layer(f"{SELF}.matmul"), three.layer(f"{SELF}.matmul_1")
    assert (scores.in_shapes, scores.out_shape, scores.groups) == (((1, 3, 8, 8), (1, 3, 8, 8)), (1, 3, 8, 8), 3)
    assert (context.out_shape, context.in_channels, context.out_channels) == ((1, 3, 8, 8), 24, 24)
    probs = next(three.layer(n) for n in w.group_of(qkv[0]).followers if three.layer(n).kind is OpKind.SOFTMAX)
    assert probs.out_shape == (1, 3, 8, 8)
    merge = three.layer(three.layer("encoder.layer.0.attention.output.dense").inputs[0])
    assert (merge.kind, merge.out_shape) == (OpKind.RESHAPE, (1, 8, 24))
    dense = three.layer("encoder.layer.0.attention.output.dense")
    assert (dense.in_channels, dense.in_shapes) == (24, ((1, 8, 24),))
    assert w.macs - three.macs == 3 * 8 * 32 * 8 + 2 * 8 * 8 * 8 + 8 * 8 * 32  # a head of Q, K, V, both matmuls, dense
    assert three.layer("encoder.layer.1.attention.self.matmul") is w.layer("encoder.layer.1.attention.self.matmul")
    with pytest.raises(PlanError, match=r"'view'.*20 channels.*whole heads of 8"):
        w.with_changes({n: {"out_channels": 20} for n in qkv})
    with pytest.raises(PlanError, match=rf"operands of '{SELF}.matmul' \(matmul\) disagree"):
        w.with_changes({f"{SELF}.query": {"out_channels": 24}})


def test_ffn_cut_on_the_model_keeps_its_function():
    """A channel cut through a sequence model: the FFN's silent units removed, the outputs unchanged."""
    model, inputs = nets.bert()
    w = from_module(model, inputs)
    inter = model.encoder.layer[0].intermediate.dense
    with torch.no_grad():
        inter.weight[::2] = 0.0
        inter.bias[::2] = -1e4  # GELU(-1e4) = 0: the unit is silent
    plan = with_cut(Plan.for_workload(w, "bert"), w, "encoder.layer.0.intermediate.dense", 32)
    new = apply_plan(plan, model, inputs)
    assert new.encoder.layer[0].output.dense.in_features == 32
    assert apply_plan(plan, w).layer("encoder.layer.0.output.dense").in_shapes == ((1, 8, 32),)
    for before, after in zip(model(*inputs), new(*inputs)):
        torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


# --- serialization and inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("net", NETS)
def test_json_round_trip_keeps_the_new_fields(built, net):
    w = built[net][2]
    again = Workload.from_json(w.to_json())
    assert again == w and hash(again) == hash(w) and again.coupling_groups == w.coupling_groups
    assert all(isinstance(s, tuple) for l in again for s in l.in_shapes)


def test_an_old_workload_file_still_loads(built):
    """Workloads written before shapes existed: the new fields take their defaults, shapes come from the cost view."""
    w = built["nb201"][2]
    old = w.to_dict()
    for record in old["layers"]:
        for key in NEW_FIELDS:
            del record[key]
    loaded = Workload.from_dict(old)
    assert [l.to_dict() | dict.fromkeys(NEW_FIELDS) for l in loaded] == \
        [l.to_dict() | dict.fromkeys(NEW_FIELDS) for l in w]
    assert loaded.macs == w.macs and loaded.coupling_groups == w.coupling_groups
    conv = loaded.layer("stem.0")
    assert (conv.output_shape, conv.operand_shapes, conv.dtype, conv.channel_axes) == \
        ((1, 8, 16, 16), ((1, 3, 16, 16),), "float32", (1,))
    assert conv.elements == w.layer("stem.0").elements and conv.read_bytes == w.layer("stem.0").read_bytes


class _Projection(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(6)  # a child: the hooks see this module's own ops (else it is one leaf)
        self.w = torch.nn.Parameter(torch.zeros(6, 3))

    def forward(self, x):
        return torch.softmax(self.norm(x) @ self.w, dim=-1).mean(dim=1)


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_a_product_by_a_weight_and_a_mean_over_tokens(method):
    w = from_module(_Projection(), (2, 4, 6), method=method)
    assert [(l.kind, l.batch, l.in_channels, l.out_channels, l.macs) for l in w.compute_layers] == \
        [(OpKind.LINEAR, 8, 6, 3, 8 * 6 * 3)]
    softmax, mean = w.layers[-2:]
    assert (softmax.kind, softmax.channel_axes, softmax.in_channels, softmax.in_h) == (OpKind.SOFTMAX, (2,), 3, 4)
    assert (mean.kind, mean.out_shape, mean.channel_axes, mean.kernel_h, mean.vector_ops) == \
        (OpKind.POOL, (2, 3), (1,), 4, 4 * 6)  # each output averages the 4 tokens


def test_shape_inputs_of_integer_type_and_layer_checks():
    ids = from_module(torch.nn.Sequential(torch.nn.Embedding(50, 6), torch.nn.Linear(6, 2)), (2, 5), dtype=torch.int64)
    assert [(l.kind, l.dtype, l.out_shape) for l in ids] == \
        [(OpKind.INPUT, "int64", (2, 5)), (OpKind.EMBED, "float32", (2, 5, 6)), (OpKind.LINEAR, "float32", (2, 5, 2))]
    assert ids.layer("0").macs == 0 and ids.layer("1").macs == 2 * 5 * 6 * 2
    with pytest.raises(ConfigError, match="channel_axes"):
        Layer(name="x", kind=OpKind.ACT, out_shape=(1, 8), channel_axes=(2,))
    with pytest.raises(ConfigError, match="multiple of its in_channels"):
        Layer(name="r", kind=OpKind.RESHAPE, in_channels=3, out_channels=4)
    with pytest.raises(ConfigError, match="positive integer"):
        Layer(name="s", kind=OpKind.ACT, out_shape=(1, 0))
    assert math.prod(Layer(name="m", kind=OpKind.MATMUL, batch=2, groups=4, in_channels=32, out_channels=32,
                           in_h=8, out_h=8, inputs=("a", "b")).operand_shapes[1]) == 2 * 4 * 8 * 8


class _TokenFeatures(torch.nn.Module):
    """Frames x features in (an audio or sensor sequence), a linear layer per frame, a mean over frames."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = torch.nn.Linear(40, 64), torch.nn.Linear(64, 5)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)).mean(dim=1))


class _Frames1d(torch.nn.Module):
    """The same input shape read by a Conv1d: channels on axis 1 (channels x length)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(20, 8, 3)

    def forward(self, x):
        return self.conv(x)


def test_a_float_sequence_read_by_a_linear_layer_has_its_features_as_channels(tmp_path):
    fx = from_module(_TokenFeatures(), (1, 20, 40), method="fx")
    source = fx.inputs[0]
    assert (source.channel_axes, source.in_channels, source.out_channels) == ((2,), 40, 40)
    assert fx.layer("fc").in_channels == source.out_channels  # producer and reader agree on the features
    hooks = from_module(_TokenFeatures(), (1, 20, 40), method="hooks")
    onnx_w = from_onnx(to_onnx(_TokenFeatures(), torch.zeros(1, 20, 40), tmp_path / "seq.onnx", dynamo=False))
    for other in (hooks, onnx_w):
        assert (other.inputs[0].channel_axes, other.inputs[0].out_channels) == ((2,), 40)
    conv = from_module(_Frames1d(), (1, 20, 40)).inputs[0]
    assert (conv.channel_axes, conv.out_channels) == ((1,), 20)  # a conv's input keeps its channels on axis 1
