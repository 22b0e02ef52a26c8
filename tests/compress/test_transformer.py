"""Transformer compression: attention-head removal (``head_prune``), FFN width (``channel_cut`` of the
intermediate dense layer) and int8 linear layers, on the tiny BERT of ``nn2hw.testing.nets``, a tiny
``BertSentenceEncoder`` and the real ``minilm_l6``: the workload and torch sides agree, the pruned
network computes what the unpruned one computes without the removed heads, and bad plans are
refused with the cause and the fix."""

from __future__ import annotations

import pytest
import torch

from nn2hw.compress import apply_plan, validate_plan, with_cut, with_heads, with_quantization
from nn2hw.compress.head_prune import attention_groups
from nn2hw.errors import ConfigError, PlanError
from nn2hw.plan import Plan
from nn2hw.testing import nets
from nn2hw.testing.transforms import TransformContract, signature
from nn2hw.workload import from_module
from nn2hw.zoo.archs.bert import BertConfig, bert

TINY = {"vocab_size": 120, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 32, "max_position_embeddings": 24}


def _encoder(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = bert(1, 0, **TINY).eval()
    with torch.no_grad():  # non-zero biases, so that slicing them is checked too
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def _ids(batch: int = 2, tokens: int = 12) -> torch.Tensor:
    ids = torch.randint(1, TINY["vocab_size"], (batch, tokens), generator=torch.Generator().manual_seed(3))
    ids[:, -2:] = 0  # padding, masked out
    return ids


class TestHeadPruneContract(TransformContract):
    """The transform contract (choice 0 is the identity; torch and workload sides agree) on a BERT encoder."""

    @pytest.fixture
    def transform(self):
        from nn2hw.compress import TRANSFORMS

        return TRANSFORMS.get("head_prune")

    @pytest.fixture
    def case(self):
        return _encoder(), _ids(1)


def _tiny_bert_case():
    model, inputs = nets.bert()
    return model, inputs, from_module(model, inputs, name="tiny-bert")


def test_heads_and_ffn_cut_agree_on_the_tiny_bert():
    model, inputs, workload = _tiny_bert_case()
    plan = with_heads(Plan.for_workload(workload, "tiny-bert"), workload, 2, "encoder.layer.0.*")
    plan = with_cut(plan, workload, "encoder.layer.1.intermediate.dense", 40)
    rewritten = apply_plan(plan, workload)
    new = apply_plan(plan, model, inputs)
    assert signature(from_module(new, inputs, name="tiny-bert")) == signature(rewritten)
    matmuls = [rewritten.layer(f"encoder.layer.{i}.attention.self.matmul") for i in (0, 1)]
    assert [m.groups for m in matmuls] == [2, 4]  # the matmuls' heads follow Q/K/V
    assert rewritten.layer("encoder.layer.0.attention.output.dense").in_channels == 16
    assert rewritten.layer("encoder.layer.1.output.dense").in_channels == 40
    assert new.encoder.layer[0].attention.self.num_attention_heads == 2
    assert new.encoder.layer[0].attention.self.all_head_size == 16
    assert new(*inputs)[0].shape == model(*inputs)[0].shape
    assert rewritten.macs < workload.macs


def test_removed_heads_are_the_weakest_and_the_rest_computes_as_before():
    """Pruning heads equals zeroing their value projections in the unpruned model (their context is 0)."""
    model = _encoder()
    ids = _ids()
    workload = from_module(model, ids, name="tiny")
    plan = with_heads(Plan.for_workload(workload, "tiny"), workload, 2)
    pruned = apply_plan(plan, model)
    reference = apply_plan(Plan.for_workload(workload, "tiny"), model)  # a deep copy
    for block in reference.encoder.layer:
        attention = block.attention.self
        unit = attention.attention_head_size
        scores = sum(m.weight.abs().sum(1) for m in (attention.query, attention.key, attention.value))
        kept = torch.sort(-scores.reshape(-1, unit).sum(1), stable=True).indices[:2]
        dropped = sorted(set(range(4)) - set(kept.tolist()))
        with torch.no_grad():
            for head in dropped:
                attention.value.weight[head * unit:(head + 1) * unit] = 0
                attention.value.bias[head * unit:(head + 1) * unit] = 0
    with torch.no_grad():
        torch.testing.assert_close(pruned(ids), reference(ids), atol=1e-6, rtol=1e-5)
        assert not torch.allclose(pruned(ids), model(ids), atol=1e-3)  # something was removed


def test_minilm_heads_and_ffn_halve_the_macs_and_both_sides_agree():
    """On the real 22.7 M-parameter model (about 10 s idle: it is loaded, compressed and traced once)."""
    from tests.zoo.test_bert import _minilm_files

    _minilm_files()
    from nn2hw import zoo

    model = zoo.build("minilm_l6", pretrained=True).eval()
    workload = zoo.workload("minilm_l6")
    plan = with_heads(Plan.for_workload(workload, "minilm_l6"), workload, 6)
    for i in range(6):
        plan = with_cut(plan, workload, f"encoder.layer.{i}.intermediate.dense", 768)
    assert plan.input_dtype == "int64"
    rewritten = apply_plan(plan, workload)
    assert len(attention_groups(workload)) == 6
    assert rewritten.macs * 2 == workload.macs  # every linear and matmul MAC halves: 4TH^2/2 + 2THF/2 + 2T^2H/2
    new = apply_plan(plan, model, (1, 128))  # a shape: zeros of the plan's input dtype (token ids)
    assert signature(from_module(new, torch.zeros(1, 128, dtype=torch.int64), name="minilm_l6")) == \
        signature(rewritten)
    assert sum(p.numel() for p in new.parameters()) < sum(p.numel() for p in model.parameters())
    from nn2hw.compress import with_dropped_blocks

    shallower = apply_plan(with_dropped_blocks(Plan.for_workload(workload, "minilm_l6"), workload,
                                               ["encoder.layer.4", "encoder.layer.5"]), workload)
    assert shallower.macs * 3 == workload.macs * 2 and shallower.outputs == workload.outputs


def test_int8_linear_layers_export_to_int8_kernels(tmp_path):
    pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install "nn2hw[measure]"')
    from nn2hw.deploy import export_onnx

    model = _encoder()
    workload = from_module(model, (2, 12), dtype=torch.int64, name="tiny")
    plan = with_heads(Plan.for_workload(workload, "tiny"), workload, 2)
    plan = with_quantization(plan, workload, 8, "encoder.*", act_bits=8, model=model, calibration=_ids(4))
    result = export_onnx(model, tmp_path / "tiny8.onnx", plan=plan, workload=workload)
    linears = [layer.name for layer in workload.compute_layers if layer.kind.value == "linear"]
    assert result.checked and set(result.int8_layers) == set(linears) and not result.fp32_layers
    assert set(result.int8_kernels) == set(linears) and set(result.int8_kernels.values()) == {"QGemm"}
    assert result.max_abs_error <= result.tolerance


def test_heads_and_ffn_cut_export_and_run_on_onnx_runtime(tmp_path):
    pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install "nn2hw[measure]"')
    import onnx

    from nn2hw.deploy import export_onnx

    model = _encoder()
    workload = from_module(model, (2, 12), dtype=torch.int64, name="tiny")
    plan = with_heads(Plan.for_workload(workload, "tiny"), workload, 1)
    plan = with_cut(plan, workload, "encoder.layer.0.intermediate.dense", 8)
    result = export_onnx(model, tmp_path / "small.onnx", plan=plan, workload=workload)
    assert result.checked and result.max_abs_error <= result.tolerance
    shapes = {t.name: tuple(t.dims) for t in onnx.load(str(result.path)).graph.initializer}
    assert shapes["encoder.layer.0.attention.self.query.weight"] == (4, 16)  # 1 head of 4, physically
    assert shapes["encoder.layer.0.intermediate.dense.weight"] == (8, 16)


# --- bad input ---------------------------------------------------------------------------------------------
def _tiny_workload():
    model = _encoder()
    return from_module(model, (1, 12), dtype=torch.int64, name="tiny")


def test_a_plan_that_removes_every_head_is_refused():
    workload = _tiny_workload()
    plan = with_heads(Plan.for_workload(workload, "tiny"), workload, 0, "encoder.layer.1.*")
    with pytest.raises(PlanError, match="remove every head of the attention block") as exc:
        validate_plan(plan, workload)
    assert "at least 1 head" in exc.value.fix


@pytest.mark.parametrize(("build", "match"), [
    (lambda p, w: with_heads(p, w, 5), "has 4 heads; the plan keeps 5"),
    (lambda p, w: p.with_choice("encoder.layer.0.attention.self.query", heads=2), "together"),
    (lambda p, w: with_heads(p, w, 2, "encoder.layer.0.*").with_choice(
        "encoder.layer.0.attention.self.key", heads=3), "head counts differ"),
    (lambda p, w: p.with_choice("encoder.layer.0.intermediate.dense", heads=2), "not a query/key/value"),
    (lambda p, w: with_cut(p, w, "encoder.layer.0.attention.self.query", 8), "attention heads"),
])
def test_bad_head_plans_name_cause_and_fix(build, match):
    workload = _tiny_workload()
    plan = build(Plan.for_workload(workload, "tiny"), workload)
    with pytest.raises(PlanError, match=match) as exc:
        validate_plan(plan, workload)
    assert exc.value.fix


def test_with_heads_names_a_glob_that_matches_nothing():
    workload = _tiny_workload()
    with pytest.raises(PlanError, match="No attention block"):
        with_heads(Plan.for_workload(workload, "tiny"), workload, 2, "decoder.*")


def test_a_head_count_that_does_not_divide_the_hidden_size_is_a_config_error():
    with pytest.raises(ConfigError, match="does not divide hidden_size 16") as exc:
        BertConfig(**{**TINY, "num_attention_heads": 3})
    assert "divides the hidden size" in exc.value.fix


def test_an_attention_module_without_a_head_count_is_refused():
    import types

    model = _encoder()
    attention = model.encoder.layer[0].attention.self
    attention.n_heads = attention.num_attention_heads  # a forward that reads its head count elsewhere
    del attention.num_attention_heads
    attention._heads = types.MethodType(lambda self, x: x.view(x.shape[0], x.shape[1], self.n_heads, -1)
                                        .permute(0, 2, 1, 3), attention)
    workload = _tiny_workload()
    plan = with_heads(Plan.for_workload(workload, "tiny"), workload, 2, "encoder.layer.0.*")
    with pytest.raises(PlanError, match="head count attribute") as exc:
        apply_plan(plan, model)
    assert "num_attention_heads" in exc.value.fix


def test_a_shape_traces_a_token_id_model_with_the_plans_dtype():
    """apply_plan(plan, model, shape) fills the shape with the plan's input dtype (int64 token ids here)."""
    model = _encoder()
    workload = _tiny_workload()
    plan = with_heads(Plan.for_workload(workload, "tiny"), workload, 3)
    assert plan.input_dtype == "int64"
    new = apply_plan(plan, model, (1, 12))
    assert new.encoder.layer[1].attention.self.num_attention_heads == 3


def test_onnx_runtimes_fused_linear_kernels_map_back_to_their_layer():
    from nn2hw.deploy.names import parse_node_name

    parsed = parse_node_name("/encoder/layer.0/attention/output/dense/MatMul/MatMulAddFusion")
    assert parsed is not None and parsed.path == "encoder.layer.0.attention.output.dense" and parsed.op_type == "MatMul"
    # Q.K^T fused with its scaling (a FusedMatMul kernel): the first matmul of the attention module
    scores = parse_node_name("/encoder/layer.0/attention/self/MatMul/MatMulScaleFusion/")
    assert scores == ("encoder.layer.0.attention.self", "MatMul", 0)


# --- layer (block) dropping ------------------------------------------------------------------------------
def _module_layers(workload) -> list[tuple]:
    """The signature of module-named layers without their inputs (torch.fx renumbers functional ops
    after a dropped block, so their names differ between the two sides)."""
    return [s[:2] + s[3:] for s in signature(workload) if s[0].startswith(("embeddings", "encoder"))]


def test_dropping_an_encoder_layer_agrees_and_computes_the_shorter_network():
    import copy

    from nn2hw.compress import with_dropped_blocks

    torch.manual_seed(0)
    model = bert(1, 0, **{**TINY, "num_hidden_layers": 3}).eval()
    ids = _ids()
    workload = from_module(model, ids, name="tiny")
    plan = with_dropped_blocks(Plan.for_workload(workload, "tiny"), workload, ["encoder.layer.1"])
    rewritten = apply_plan(plan, workload)
    new = apply_plan(plan, model)
    assert _module_layers(from_module(new, ids, name="tiny")) == _module_layers(rewritten)
    assert not any(layer.name.startswith("encoder.layer.1.") for layer in rewritten.layers)
    assert rewritten.macs * 3 == workload.macs * 2  # each encoder layer costs the same; the rest has no MACs
    shorter = copy.deepcopy(model)
    del shorter.encoder.layer[1]
    with torch.no_grad():
        torch.testing.assert_close(new(ids), shorter(ids))


def test_dropping_and_cutting_combine_on_the_tiny_bert():
    from nn2hw.compress import with_dropped_blocks

    model, inputs, workload = _tiny_bert_case()
    plan = with_heads(Plan.for_workload(workload, "tiny-bert"), workload, 2, "encoder.layer.1.*")
    plan = with_dropped_blocks(plan, workload, ["encoder.layer.0"])
    rewritten = apply_plan(plan, workload)
    new = apply_plan(plan, model, inputs)
    assert _module_layers(from_module(new, inputs, name="tiny-bert")) == _module_layers(rewritten)
    assert rewritten.layer("encoder.layer.1.attention.self.matmul").groups == 2


@pytest.mark.parametrize(("blocks", "match"), [
    (["encoder.layer.*"], "drops every block of 'encoder.layer' \\(2 of 2\\)"),
    (["decoder.3"], "No repeated block"),
])
def test_bad_drop_plans_name_cause_and_fix(blocks, match):
    from nn2hw.compress import with_dropped_blocks

    workload = _tiny_workload()
    with pytest.raises(PlanError, match=match) as exc:
        validate_plan(with_dropped_blocks(Plan.for_workload(workload, "tiny"), workload, blocks), workload)
    assert exc.value.fix


def test_a_partly_marked_block_and_a_layer_outside_blocks_are_refused():
    workload = _tiny_workload()
    plan = Plan.for_workload(workload, "tiny").with_choice("encoder.layer.0.attention.self.query", drop=True)
    with pytest.raises(PlanError, match="needs drop=True on all its conv/linear layers"):
        validate_plan(plan, workload)
    with pytest.raises(PlanError, match="drop=True"):
        validate_plan(Plan.for_workload(workload, "tiny").with_choice("encoder.layer.0.output.dense", drop=False),
                      workload)


def test_blocks_of_a_resnet_drop_too_and_a_downsampling_block_is_refused():
    import copy

    from nn2hw import zoo
    from nn2hw.compress import with_dropped_blocks

    torch.manual_seed(0)
    model = zoo.build("resnet20", "cifar10", pretrained=False).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    workload = from_module(model, x, name="resnet20")
    plan = with_dropped_blocks(Plan.for_workload(workload, "resnet20"), workload, ["layer1.1"])
    new = apply_plan(plan, model, x)
    rewritten = apply_plan(plan, workload)
    def modules(w):
        return [s[:2] + s[3:] for s in signature(w) if "." in s[0]]  # fx renumbers functional ops: no inputs

    assert modules(rewritten) == modules(from_module(new, x, name="resnet20"))
    shorter = copy.deepcopy(model)
    del shorter.layer1[1]  # the block's trailing residual add and ReLU go with it
    with torch.no_grad():
        torch.testing.assert_close(new(x), shorter(x))
    with pytest.raises(PlanError, match="would change the shapes after it"):
        validate_plan(with_dropped_blocks(Plan.for_workload(workload, "resnet20"), workload, ["layer2.0"]),
                      workload)


# --- block-structured pruning -----------------------------------------------------------------------------
class TestBlockPruneContract(TransformContract):
    """The transform contract on a BERT encoder (its 32-wide output dense layers split into 16-column blocks)."""

    @pytest.fixture
    def transform(self):
        from nn2hw.compress import TRANSFORMS

        return TRANSFORMS.get("block_prune")

    @pytest.fixture
    def case(self):
        return _encoder(), _ids(1)


def test_block_pruning_keeps_the_strongest_rows_of_every_column_block():
    from nn2hw.compress import with_block_pruning

    model = _encoder()
    ids = _ids()
    workload = from_module(model, ids, name="tiny")
    plan = with_block_pruning(Plan.for_workload(workload, "tiny"), workload, 4, 0.25, "encoder.layer.0.intermediate.*")
    rewritten = apply_plan(plan, workload)
    new = apply_plan(plan, model)
    assert signature(from_module(new, ids, name="tiny")) == signature(rewritten)
    before, after = workload.layer("encoder.layer.0.intermediate.dense"), \
        rewritten.layer("encoder.layer.0.intermediate.dense")
    assert after.kept_rows == 8 and after.macs * 4 == before.macs and after.out_channels == 32  # zeros stay dense
    original = model.encoder.layer[0].intermediate.dense.weight.detach()
    pruned = new.encoder.layer[0].intermediate.dense.weight.detach()
    for block in range(4):
        columns = slice(4 * block, 4 * block + 4)
        kept = pruned[:, columns].abs().sum(1) != 0
        assert int(kept.sum()) == 8
        norms = original[:, columns].norm(dim=1)
        assert norms[kept].min() >= norms[~kept].max()  # the strongest rows stay
        torch.testing.assert_close(pruned[kept, columns], original[kept, columns])


def test_block_pruned_layers_export_with_their_zeros_listed(tmp_path):
    pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install "nn2hw[measure]"')
    from nn2hw.compress import with_block_pruning
    from nn2hw.deploy import export_onnx

    model = _encoder()
    workload = from_module(model, (2, 12), dtype=torch.int64, name="tiny")
    plan = with_block_pruning(Plan.for_workload(workload, "tiny"), workload, 8, 0.5, "encoder.*output.dense")
    result = export_onnx(model, tmp_path / "blocks.onnx", plan=plan, workload=workload)
    assert result.checked and set(result.masked_layers) == {
        f"encoder.layer.{i}.{part}.dense" for i in (0, 1) for part in ("attention.output", "output")}


@pytest.mark.parametrize(("fields", "match", "fix"), [
    ({"block_cols": 5, "block_rows": 8}, "blocks of 5 columns do not divide its 16 input columns", "dividing 16"),
    ({"block_cols": 16, "block_rows": 8}, "one column block spanning all 16 columns", "with_cut"),
    ({"block_cols": 4, "block_rows": 32}, "prunes nothing", "between 1 and 31"),
    ({"block_cols": 4}, "needs both block_cols and block_rows", "block_rows"),
])
def test_bad_block_plans_name_cause_and_fix(fields, match, fix):
    workload = _tiny_workload()
    plan = Plan.for_workload(workload, "tiny").with_choice("encoder.layer.0.intermediate.dense", **fields)
    with pytest.raises(PlanError, match=match) as exc:
        validate_plan(plan, workload)
    assert fix in exc.value.fix


def test_quantization_offers_widths_to_weighted_layers_only_never_to_attention_matmuls():
    """A matmul of two activations (Q.K^T, scores.V) has no weights: offering it a bit width made
    every quantizing search of a Transformer fail in calibration."""
    from nn2hw.compress import TRANSFORMS, SpaceContext
    from nn2hw.workload import OpKind

    _, _, workload = _tiny_bert_case()
    quantize = TRANSFORMS.get("quantize")
    offered = {layer.kind for layer in workload.layers
               if quantize.offer(workload, layer, [8, 4], SpaceContext()) is not None}
    assert OpKind.LINEAR in offered and OpKind.MATMUL not in offered
    matmul = next(layer for layer in workload.layers if layer.kind is OpKind.MATMUL)
    with pytest.raises(PlanError, match="not a module"):
        validate_plan(Plan.for_workload(workload, "tiny-bert").with_choice(matmul.name, weight_bits=8), workload)
