"""Vision Transformer (Dosovitskiy et al. 2021) for small images, built from the BERT encoder's layers.

Non-overlapping ``patch_size`` x ``patch_size`` patches are embedded by one strided conv
(``patch_embed``) and flattened to tokens; a learned class token is put first and learned position
embeddings are added, then a LayerNorm and dropout (as BERT's embeddings do), then
``encoder.layer.<i>``: ``nn2hw.zoo.archs.bert``'s ``BertLayer`` (post-norm, exact GELU) with no
attention mask, every token attending to every token. A linear ``classifier`` reads the class
token's final state.

Reusing the BERT layers gives the ViT the module structure the Transformer transforms act on:
``head_prune`` (``attention.self.query/key/value`` and the head count ``num_attention_heads``),
``channel_cut`` of the FFN width (``intermediate.dense``), ``layer_drop`` (``encoder.layer.<i>``)
and ``quantize`` of every linear layer. The hidden width itself is not cut: the class token, a
constant joined to the patches, pins it (the encoder's LayerNorms normalize over all of it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.zoo.archs.bert import BertConfig, BertEncoder, _init_weights


def patch_tokens(image_size: int, patch_size: int) -> int:
    """The patch count of a square image cut into square patches; a ``ConfigError`` unless the patch
    size divides the image size."""
    for name, value in (("image_size", image_size), ("patch_size", patch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"ViT {name} must be a positive integer, got {value!r}.",
                              "Use e.g. image_size=28, patch_size=4 for Fashion-MNIST.")
    if image_size % patch_size:
        raise ConfigError(f"ViT patch_size {patch_size} does not divide image_size {image_size}: the last patches "
                          "would be cut off.", "Choose a patch size that divides the image (28: 4, 7 or 14).")
    return (image_size // patch_size) ** 2


class VisionTransformer(nn.Module):
    """``forward(images [B, C, image_size, image_size])`` -> logits ``[B, num_classes]``; ``config``
    sizes the encoder."""

    def __init__(self, config: BertConfig, in_channels: int, image_size: int, patch_size: int,
                 num_classes: int) -> None:
        super().__init__()
        patches = patch_tokens(image_size, patch_size)
        self.patch_embed = nn.Conv2d(in_channels, config.hidden_size, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, patches + 1, config.hidden_size))
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(0.1)
        self.encoder = BertEncoder(config)
        self.classifier = nn.Linear(config.hidden_size, num_classes)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.position_embeddings, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(images).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1)
        states = self.encoder(self.dropout(self.LayerNorm(tokens + self.position_embeddings)))
        return self.classifier(states[:, 0])


def vit(in_channels: int, num_classes: int, *, image_size: int, patch_size: int, **sizes: Any) -> VisionTransformer:
    """The zoo builder: ``sizes`` are ``BertConfig`` fields (``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``intermediate_size``, ``layer_norm_eps``); its token-id fields are unused
    (one position per patch and one for the class token)."""
    config = BertConfig(vocab_size=1, type_vocab_size=1,
                        max_position_embeddings=patch_tokens(image_size, patch_size) + 1, **sizes)
    return VisionTransformer(config, in_channels, image_size, patch_size, num_classes)
