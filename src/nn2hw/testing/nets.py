"""Tiny reference networks beyond CNNs: a BERT-style encoder, a NAS-Bench-201 cell network and a ViT.

Each is built in the structure of its published implementation (Hugging Face ``BertModel``, a
timm-style ViT; NAS-Bench-201's ``TinyNetwork`` is the zoo's own, ``nn2hw.zoo.archs.nb201``) but a
few thousand parameters small, so that extraction by torch.fx, hooks and both ONNX exporters runs in
seconds. ``bert()``, ``nb201()`` and ``vit()`` return ``(model in eval mode, example inputs)``,
the inputs a tuple of tensors in ``forward``'s order.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# --- BERT (Hugging Face BertModel structure) -------------------------------------------------------


class BertEmbeddings(nn.Module):
    """Word + token-type + position embeddings, LayerNorm, dropout.

    The position ids are a constant for a given length, so every extractor sees the position
    embedding as a constant added to the activations (an ``act`` layer), not as a lookup.
    """

    def __init__(self, vocab: int, hidden: int, max_positions: int, type_vocab: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        position_ids = torch.arange(input_ids.size(1), device=input_ids.device)[None]  # HF slices a buffer: fx cannot
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Query/key/value projections, head split, scaled dot product with an additive mask, head merge."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.num_attention_heads = heads
        self.attention_head_size = hidden // heads
        self.all_head_size = hidden
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.size()[:-1] + (self.num_attention_heads, self.attention_head_size))
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mixed_query_layer = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query_layer)
        scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        scores = scores / math.sqrt(self.attention_head_size)
        scores = scores + attention_mask
        probs = self.dropout(F.softmax(scores, dim=-1))
        context = torch.matmul(probs, value_layer).permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.all_head_size,))


class BertSelfOutput(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden, heads)
        self.output = BertSelfOutput(hidden)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden_states))


class BertOutput(BertSelfOutput):
    def __init__(self, intermediate: int, hidden: int) -> None:
        super().__init__(hidden)
        self.dense = nn.Linear(intermediate, hidden)


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.attention = BertAttention(hidden, heads)
        self.intermediate = BertIntermediate(hidden, intermediate)
        self.output = BertOutput(intermediate, hidden)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertModel(nn.Module):
    """A BERT encoder: ``forward(input_ids, attention_mask, token_type_ids)`` -> (sequence, pooled)."""

    def __init__(self, vocab: int = 100, hidden: int = 32, layers: int = 2, heads: int = 4, intermediate: int = 64,
                 max_positions: int = 16, type_vocab: int = 2) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, hidden, max_positions, type_vocab)
        self.encoder = BertEncoder(layers, hidden, heads, intermediate)
        self.pooler = BertPooler(hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = attention_mask[:, None, None, :].to(dtype=torch.float32)
        mask = (1.0 - mask) * torch.finfo(torch.float32).min
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), mask)
        return sequence_output, self.pooler(sequence_output)


def bert(batch: int = 1, tokens: int = 8, **sizes: int) -> tuple[BertModel, tuple[torch.Tensor, ...]]:
    """A 2-layer BERT (hidden 32, 4 heads of 8, intermediate 64) and (input_ids, attention_mask,
    token_type_ids) of ``batch`` x ``tokens`` int64 values (the last two tokens masked out)."""
    model = BertModel(**sizes).eval()
    ids = torch.randint(0, model.embeddings.word_embeddings.num_embeddings, (batch, tokens),
                        generator=torch.Generator().manual_seed(0))
    mask = torch.ones(batch, tokens, dtype=torch.int64)
    mask[:, -2:] = 0
    return model, (ids, mask, torch.zeros(batch, tokens, dtype=torch.int64))


# --- NAS-Bench-201: the zoo's TinyNetwork, small ---------------------------------------------------

NB201_GENOTYPE = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
"""Every edge operation once (a conv of each size, a pool, a skip, a ``none``)."""


def nb201(batch: int = 1, size: int = 16) -> tuple[nn.Module, tuple[torch.Tensor]]:
    """NAS-Bench-201's TinyNetwork (``nn2hw.zoo.archs.nb201``) of ``NB201_GENOTYPE``, C = 8 and one
    cell per stage, and a ``size`` x ``size`` image."""
    from nn2hw.zoo.archs.nb201 import nb201_network

    generator = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 3, size, size, generator=generator)
    model = nb201_network(NB201_GENOTYPE, channels=8, cells=1).eval()
    with torch.no_grad():  # the zoo zeroes the classifier's bias, which the ONNX path then reads as no bias
        model.classifier.bias.uniform_(-0.1, 0.1, generator=generator)
    return model, (image,)


# --- ViT ---------------------------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = (f(x).reshape(n, t, self.heads, self.head_dim).permute(0, 2, 1, 3) for f in (self.q, self.k, self.v))
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, t, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm encoder block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """Patch conv, flatten + transpose to tokens, class token, position embedding, blocks, norm, head."""

    def __init__(self, image: int = 16, patch: int = 4, dim: int = 32, depth: int = 2, heads: int = 4, mlp: int = 64,
                 num_classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit(batch: int = 1, **sizes: int) -> tuple[VisionTransformer, tuple[torch.Tensor]]:
    """A 2-block ViT (16x16 image, 4x4 patches: 17 tokens of 32, 4 heads of 8, MLP 64) and an image."""
    model = VisionTransformer(**sizes).eval()
    image = sizes.get("image", 16)
    return model, (torch.randn(batch, 3, image, image, generator=torch.Generator().manual_seed(0)),)
