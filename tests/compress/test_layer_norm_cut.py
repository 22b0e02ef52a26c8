"""Channel cuts through a LayerNorm's width (issue 10): a plan may cut a hidden width; the torch side slices
each LayerNorm's scale and shift to the kept channels (its statistics then cover those channels, as the
workload describes), every layer that writes or reads the stream keeps the same channels. A width a
stored constant spans (a position embedding) is pinned in the workload; a model whose code reads the
width where the workload cannot see it (a reshape sized by it) is refused with a ``PlanError`` when the
plan is applied. The space never offers such a cut (nor any the torch side cannot
slice: a GroupNorm, a LayerNorm over space too). Seconds: tiny networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nn2hw.compress import SpaceContext, apply_plan, validate_plan
from nn2hw.compress._slicing import filter_scores, top_filters
from nn2hw.compress.channel_cut import with_cut
from nn2hw.errors import PlanError
from nn2hw.plan import Plan
from nn2hw.space import build_space
from nn2hw.testing import nets
from nn2hw.testing.transforms import signature
from nn2hw.workload import Workload, from_module
from nn2hw.zoo.archs.bert import BertConfig, BertEncoder


class Stream(nn.Module):
    """A pre-norm residual stream of width 12 over 5 tokens: in, x + fc(norm1(x)), norm2, mean, head. The
    input is [B, 6 features, 5 tokens], transposed (a 3-D input is read with its channels on axis 1)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc_in, self.norm1, self.fc = nn.Linear(6, 12), nn.LayerNorm(12), nn.Linear(12, 12)
        self.norm2, self.head = nn.LayerNorm(12), nn.Linear(12, 3)
        for norm in (self.norm1, self.norm2):  # not the identity init, so a wrong slice shows
            nn.init.normal_(norm.weight)
            nn.init.normal_(norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_in(x.transpose(1, 2))
        h = h + self.fc(self.norm1(h))
        return self.head(self.norm2(h).mean(1))


class MeanPooledViT(nn.Module):
    """A ViT of the zoo's BERT layers without a class token or position embeddings: patches, LayerNorm,
    encoder, the tokens' mean, a classifier. Its hidden width is read by modules only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        config = BertConfig(vocab_size=1, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=32, type_vocab_size=1)
        self.patch_embed = nn.Conv2d(1, 16, 4, 4)
        self.LayerNorm = nn.LayerNorm(16)
        self.encoder = BertEncoder(config)
        self.classifier = nn.Linear(16, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(images).flatten(2).transpose(1, 2)
        return self.classifier(self.encoder(self.LayerNorm(tokens)).mean(1))


class PositionedViT(nets.VisionTransformer):
    """``nets.vit`` mean-pooled, its position embeddings added as a constant and its attention output
    reshaped to the input's width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]
        return self.head(self.norm(self.blocks(x)).mean(1))


class WidthSizedViT(MeanPooledViT):
    """``MeanPooledViT`` whose code sizes a reshape by its hidden width (16), not by its input."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(images).flatten(2).transpose(1, 2)
        tokens = tokens.reshape(tokens.shape[0], -1, 16)
        return self.classifier(self.encoder(self.LayerNorm(tokens)).mean(1))


def _traced(model: nn.Module, *inputs: torch.Tensor) -> Workload:
    return from_module(model.eval(), inputs, name="net")


def _plan(workload: Workload, layer: str, width: int) -> Plan:
    return with_cut(Plan.for_workload(workload, "net"), workload, layer, width)


def _unnamed(workload: Workload) -> list[tuple]:
    return [row[1:2] + row[3:] for row in signature(workload)]


def test_a_cut_stream_keeps_one_set_of_channels_in_every_layer_and_norm():
    model, x = Stream().eval(), torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(1))
    workload = _traced(model, x)
    group = workload.group_of("fc_in")
    assert group.layers == ("fc_in", "fc") and {"norm1", "norm2"} <= set(group.followers) and group.cuttable
    plan = _plan(workload, "fc_in", 7)
    new = apply_plan(plan, model, (x,))
    assert new.norm1.normalized_shape == new.norm2.normalized_shape == (7,) and new.norm1.weight.shape == (7,)
    assert _unnamed(_traced(new, x)) == _unnamed(apply_plan(plan, workload))  # both sides: 7-wide LayerNorms

    kept = top_filters(filter_scores(model.fc_in.weight) + filter_scores(model.fc.weight), 7)  # the group's
    m = model
    h = F.linear(x.transpose(1, 2), m.fc_in.weight[kept], m.fc_in.bias[kept])
    h = h + F.linear(F.layer_norm(h, (7,), m.norm1.weight[kept], m.norm1.bias[kept], m.norm1.eps),
                     m.fc.weight[kept][:, kept], m.fc.bias[kept])
    expected = F.linear(F.layer_norm(h, (7,), m.norm2.weight[kept], m.norm2.bias[kept], m.norm2.eps).mean(1),
                        m.head.weight[:, kept], m.head.bias)
    with torch.no_grad():
        torch.testing.assert_close(new(x), expected)


def test_a_mean_pooled_vit_of_bert_layers_cuts_its_hidden_width_on_both_sides():
    model, image = MeanPooledViT().eval(), torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    workload = _traced(model, image)
    group = workload.group_of("patch_embed")
    assert group.cuttable and "LayerNorm" in group.followers and len(group.layers) == 5  # the residual stream
    plan = _plan(workload, "patch_embed", 12)
    after = apply_plan(plan, workload)
    new = apply_plan(plan, model, (image,))
    assert _unnamed(_traced(new, image)) == _unnamed(after) and after.macs < workload.macs
    norms = [m for m in new.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 5 and all(m.normalized_shape == (12,) for m in norms)
    with torch.no_grad():
        assert new(image).shape == (1, 10)


def test_a_hidden_width_a_stored_constant_spans_is_pinned():
    _, image = nets.vit()
    workload = _traced(PositionedViT().eval(), *image)
    assert workload.group_of("patch_embed").fixed_by == ("add (a stored constant across the channels)",)
    with pytest.raises(PlanError, match="fixed by add"):
        validate_plan(_plan(workload, "patch_embed", 24), workload)


def test_a_hidden_width_the_code_reads_elsewhere_is_refused_when_applied():
    model = WidthSizedViT().eval()
    image = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    workload = _traced(model, image)
    assert workload.group_of("patch_embed").cuttable  # the workload sees a reshape that keeps the shape
    with pytest.raises(PlanError, match="does not run") as err:
        apply_plan(_plan(workload, "patch_embed", 12), model, (image,))
    assert "LayerNorm" in err.value.cause and "a reshape sized by it" in err.value.cause
    assert "Leave that width unchanged" in err.value.fix


def _cuts(model: nn.Module, *inputs: torch.Tensor) -> set[str]:
    """The first layer of every channel cut the space offers ``model`` (channel cuts on every layer)."""
    workload = _traced(model, *inputs)
    labels = {layer.name: "any" for layer in workload.compute_layers}
    space = build_space(workload, labels, Plan.for_workload(workload, "net"), remedies={"any": ("channel_cut",)},
                        context=SpaceContext())
    return {d.layers[0] for d in space.dimensions}


def test_the_space_offers_no_hidden_width_and_still_the_ffn_widths():
    offered = _cuts(MeanPooledViT(), torch.randn(1, 1, 16, 16))
    assert "patch_embed" not in offered  # the residual stream, read by LayerNorms
    assert offered == {"encoder.layer.0.intermediate.dense", "encoder.layer.1.intermediate.dense"}
    assert _cuts(Stream(), torch.randn(1, 6, 5)) == set()


class Normed(nn.Module):
    """conv -> norm -> conv: a GroupNorm, or a LayerNorm over channels and space (NCHW)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.conv1, self.norm, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), norm, nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.norm(self.conv1(x)))


@pytest.mark.parametrize("norm", [nn.GroupNorm(2, 8), nn.LayerNorm([8, 6, 6])], ids=["group", "layer-chw"])
def test_norms_nn2hw_cannot_slice_are_neither_offered_nor_applied(norm):
    model, x = Normed(norm).eval(), torch.randn(1, 3, 6, 6)
    assert "conv1" not in _cuts(model, x)
    workload = _traced(model, x)
    with pytest.raises(PlanError, match="'norm'.*cannot slice"):
        validate_plan(_plan(workload, "conv1", 4), workload)
