"""The Fashion-MNIST ViT (``vit_fmnist``): its structure, the packaged weights (strict load, checksum,
predictions on real test images), the Transformer transforms on it, and bad sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn2hw import evaluate, zoo
from nn2hw.compress import apply_plan, validate_plan, with_cut, with_dropped_blocks, with_heads, with_quantization
from nn2hw.compress.head_prune import attention_groups
from nn2hw.errors import CheckpointError, ConfigError, PlanError
from nn2hw.plan import Plan
from nn2hw.testing.transforms import signature
from nn2hw.workload import from_module
from nn2hw.zoo.archs.vit import vit
from nn2hw.zoo.catalog import FASHION_MNIST_CHECKPOINTS
from nn2hw.zoo.checkpoints import where_found
from tests.data.helpers import real_fmnist

NAME, DATASET = "vit_fmnist", "fashion-mnist"
FIRST_PREDICTIONS = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 6, 8, 0, 2, 5, 7, 5, 1, 4, 6, 6, 9, 4, 8, 8]
"""The packaged weights' classes for the first 32 test images (28 of them right), recorded when they were packaged."""


@pytest.fixture(scope="module")
def workload():
    return zoo.workload(NAME, DATASET)


@pytest.fixture(scope="module")
def trained():
    return zoo.build(NAME, DATASET, pretrained=True).eval()


def _plan(workload):
    return Plan.for_workload(workload, NAME, DATASET)


def _compute_rows(workload):
    """The signature rows of the conv/linear/matmul layers, without their inputs' names: torch.fx numbers
    functional ops (``getitem_25``) by their order, so a dropped block renames those after it when the
    model is traced again."""
    names = {layer.name for layer in workload.compute_layers}
    return [row[:2] + row[3:] for row in signature(workload) if row[0] in names]


def test_the_encoder_is_bert_layers_with_4_attention_blocks(workload):
    model = zoo.build(NAME, DATASET)
    assert sum(p.numel() for p in model.parameters()) == 139_018
    assert type(model.encoder.layer[0]).__module__ == "nn2hw.zoo.archs.bert"  # reused, not a twin
    groups = attention_groups(workload)
    assert len(groups) == 4 and {g.unit for g in groups} == {16} and {g.channels for g in groups} == {64}
    matmuls = [layer for layer in workload.layers if layer.name.endswith("attention.self.matmul")]
    assert len(matmuls) == 4 and {m.groups for m in matmuls} == {4}
    # 49 patches + the class token, 64 wide: patch conv, per layer Q/K/V/O 4*T*H*H, FFN 2*T*H*F,
    # attention 2*T*T*H, the head 64*10
    tokens, hidden, ffn = 50, 64, 128
    per_layer = 4 * tokens * hidden * hidden + 2 * tokens * hidden * ffn + 2 * tokens * tokens * hidden
    assert workload.macs == 49 * hidden * 16 + 4 * per_layer + hidden * 10
    assert workload.group_of("patch_embed").fixed_by == ("cat (concat of a constant)",)  # the width stays whole
    assert not workload.unsupported


def test_the_packaged_weights_load_strictly_and_score_what_the_record_says(trained):
    variant = zoo.entry(NAME).variant(DATASET)
    file_name, digest, top1 = FASHION_MNIST_CHECKPOINTS[NAME]
    assert variant.test_top1 == top1 >= 86.0 and variant.sources[0].sha256 == digest
    assert (variant.sources[0].packaged, where_found(variant.sources[0])) == (file_name, "packaged")
    data = zoo.prepare(real_fmnist("test"), NAME)
    first = evaluate.test(trained, data.take(1000), progress=False)
    assert first.n_images == 1000 and abs(first.top1 - top1) <= 3.0  # the record is over all 10,000
    images, labels = data.batch(np.arange(32))
    with torch.no_grad():
        predicted = trained(images).argmax(1)
    assert predicted.tolist() == FIRST_PREDICTIONS
    assert int((predicted == labels).sum()) == 28


def test_a_checkpoint_of_another_shape_names_the_keys(tmp_path):
    path = tmp_path / "small.pt"
    torch.save(vit(1, 10, image_size=28, patch_size=7, hidden_size=64, num_hidden_layers=3,
                   num_attention_heads=4, intermediate_size=128).state_dict(), path)
    with pytest.raises(CheckpointError) as raised:
        zoo.build(NAME, DATASET, checkpoint=path)
    message = str(raised.value)
    assert "encoder.layer.3" in message and "position_embeddings" in message


def test_heads_ffn_and_layer_drop_agree_on_both_sides(trained, workload):
    plan = with_heads(_plan(workload), workload, 2)
    plan = with_cut(plan, workload, "encoder.layer.0.intermediate.dense", 64)
    plan = with_dropped_blocks(plan, workload, ["encoder.layer.3"])
    rewritten = apply_plan(plan, workload)
    new = apply_plan(plan, trained)
    image = torch.zeros(1, 1, 28, 28)
    traced = from_module(new, image, name=NAME)
    assert _compute_rows(traced) == _compute_rows(rewritten) and traced.macs == rewritten.macs
    assert [layer.attention.self.num_attention_heads for layer in new.encoder.layer[:3]] == [2, 2, 2]
    assert rewritten.layer("encoder.layer.0.output.dense").in_channels == 64
    assert not any(layer.name.startswith("encoder.layer.3.") for layer in rewritten.layers)
    assert rewritten.macs < workload.macs * 0.6
    with torch.no_grad():
        assert new(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_int8_linear_layers_apply(trained, workload):
    plan = with_quantization(_plan(workload), workload, 8, "encoder.*")
    quantized = apply_plan(plan, trained)
    image = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert quantized(image).argmax(1).tolist() == trained(image).argmax(1).tolist()
        assert not torch.equal(quantized(image), trained(image))


def test_plans_that_drop_every_layer_or_cut_the_hidden_width_are_refused(workload):
    with pytest.raises(PlanError, match="every block"):
        validate_plan(with_dropped_blocks(_plan(workload), workload, ["encoder.layer.*"]), workload)
    with pytest.raises(PlanError, match=r"'patch_embed' cannot be cut: its channels are fixed by cat"):
        validate_plan(with_cut(_plan(workload), workload, "patch_embed", 48), workload)


@pytest.mark.parametrize("sizes, match", [
    ({"patch_size": 5}, "does not divide image_size 28"),
    ({"num_attention_heads": 5}, "does not divide hidden_size"),
    ({"patch_size": 0}, "positive integer"),
])
def test_bad_sizes_are_refused_with_the_fix(sizes, match):
    options = {"image_size": 28, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "intermediate_size": 128, **sizes}
    with pytest.raises(ConfigError, match=match):
        vit(1, 10, **options)
