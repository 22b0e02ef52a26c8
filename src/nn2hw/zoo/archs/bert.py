"""BERT-family encoders (Devlin et al. 2019) with Hugging Face ``BertModel``'s state-dict keys.

``embeddings.*``, ``encoder.layer.<i>.*`` and ``pooler.*`` are named as in Hugging Face's
``BertModel``, so a ``bert-base-uncased``, MiniLM or other BERT checkpoint loads with
``load_state_dict(strict=True)`` once ``nn2hw.zoo.text.hf_state_dict`` has dropped what is not
part of the encoder (pre-training heads, the constant ``position_ids`` buffer).

The network takes token ids ``[batch, tokens]`` (int64); the attention mask is the ids that are
not padding (``pad_token_id``), which is what a BERT tokenizer's mask is, so one tensor carries a
padded batch. Its output is the sentence embedding of sentence-transformers (mean of the token
states over the mask, L2-normalized when ``normalize``), or, with ``num_classes`` > 0, a linear
classifier's logits on the (unnormalized) mean. Attention is written as explicit matrix products
per head, so the workload extractor sees the two attention matmuls with the heads as groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nn2hw.errors import CheckpointError, ConfigError, ModelError


@dataclass(frozen=True)
class BertConfig:
    """The sizes of a BERT encoder, with Hugging Face ``config.json``'s field names."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "layer_norm_eps":
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                    raise ConfigError(f"BERT layer_norm_eps must be a positive number, got {value!r}.",
                                      "Use the value of the checkpoint's config.json (1e-12 for BERT).")
            elif isinstance(value, bool) or not isinstance(value, int) or value < (0 if field.name ==
                                                                                   "pad_token_id" else 1):
                raise ConfigError(f"BERT {field.name} must be a positive integer, got {value!r}.",
                                  "Use the value of the checkpoint's config.json.")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"BERT num_attention_heads {self.num_attention_heads} does not divide hidden_size "
                f"{self.hidden_size}: heads would have {self.hidden_size / self.num_attention_heads:g} features.",
                "Choose a head count that divides the hidden size (e.g. 12 heads of 32 for hidden 384).")
        if self.pad_token_id >= self.vocab_size:
            raise ConfigError(f"BERT pad_token_id {self.pad_token_id} is outside the vocabulary "
                              f"({self.vocab_size} tokens).", "Use the checkpoint's pad_token_id.")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> BertConfig:
        """The sizes in a Hugging Face ``config.json`` (other fields ignored); a non-BERT activation,
        position scheme or missing size is a ``ConfigError``."""
        if config.get("hidden_act", "gelu") != "gelu":
            raise ConfigError(f"The checkpoint uses activation {config.get('hidden_act')!r}; this encoder "
                              "implements BERT's exact (erf) GELU only.", "Use a BERT-family checkpoint.")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"The checkpoint uses {config.get('position_embedding_type')!r} position embeddings; "
                              "this encoder implements absolute ones only.", "Use a BERT-family checkpoint.")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names - {"pad_token_id", "layer_norm_eps", "type_vocab_size"} if n not in config)
        if missing:
            raise ConfigError(f"The BERT config lacks {', '.join(missing)}.",
                              "Give the config.json saved with the checkpoint.")
        return cls(**{k: v for k, v in config.items() if k in names})


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings (token type 0 for single sentences), LayerNorm, dropout.

    Positions are ``arange(tokens)`` built in ``forward`` (Hugging Face slices a buffer, which
    torch.fx cannot trace); checkpoints' ``position_ids`` buffer is that same constant."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]  # token type 0
        embeddings = embeddings + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Query/key/value projections, split into heads, scaled dot product with the additive mask (none:
    every token attends to every token, as in a ViT), merge."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(0.1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_attention_heads, self.attention_head_size).permute(0, 2, 1, 3)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        query, key, value = (self._heads(f(hidden_states)) for f in (self.query, self.key, self.value))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        probs = self.dropout(F.softmax(scores if mask is None else scores + mask, dim=-1))
        context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        return context.view(context.shape[0], context.shape[1], -1)


class BertSelfOutput(nn.Module):
    """Output projection, dropout, residual add, LayerNorm (post-norm, as BERT)."""

    def __init__(self, config: BertConfig, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.self(hidden_states, mask), hidden_states)


class BertIntermediate(nn.Module):
    """The FFN's first linear and GELU (exact, erf-based, as BERT's ``gelu``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertSelfOutput(config, config.intermediate_size)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        attended = self.attention(hidden_states, mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layer:
            hidden_states = layer(hidden_states, mask)
        return hidden_states


class BertPooler(nn.Module):
    """BERT's [CLS] pooler (dense + tanh). Kept so checkpoints load strictly; the mean-pooled
    outputs below do not use it, so it appears in no workload."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertSentenceEncoder(nn.Module):
    """A BERT encoder with mean pooling: ``forward(input_ids)`` -> embeddings ``[B, hidden]`` (L2-normalized
    when ``normalize``), or ``[B, num_classes]`` logits when ``num_classes`` > 0."""

    def __init__(self, config: BertConfig, num_classes: int = 0, normalize: bool = True) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ConfigError(f"num_classes must be 0 (an embedding model) or a positive integer, got {num_classes!r}.",
                              "Use 0 for sentence embeddings, the class count for a classifier.")
        self.config = config
        self.normalize = normalize
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(config.hidden_size, num_classes)) \
            if num_classes else None
        self.apply(_init_weights)

    def check_tokens(self, tokens: int) -> None:
        """A ``ModelError`` when a sequence is longer than the position table."""
        if tokens > self.config.max_position_embeddings:
            raise ModelError(f"A sequence of {tokens} tokens is longer than the model's position table "
                             f"({self.config.max_position_embeddings} positions).",
                             f"Use a sequence length of at most {self.config.max_position_embeddings} "
                             "(--seq-len; the tokenizer truncates longer texts).")

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hugging Face BERT keys -> ours, and nothing else: the ``bert.`` prefix of ``BertFor*``
        files removed; their pre-training heads (``cls.*``) dropped; TF-era LayerNorm names
        (``gamma``/``beta``) renamed; the ``embeddings.position_ids`` / ``token_type_ids`` buffers
        dropped after checking they hold the constants ``forward`` builds. Anything else that does
        not match is left for the strict load to name."""
        adapted: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            key = key.removeprefix("bert.")
            if key.startswith("cls."):
                continue
            if key == "embeddings.position_ids":
                if not torch.equal(value.reshape(-1), torch.arange(value.numel(), dtype=value.dtype)):
                    raise CheckpointError("The checkpoint's embeddings.position_ids are not 0, 1, 2, ...: it uses "
                                          "a position scheme this encoder does not implement.",
                                          "Use a BERT-family checkpoint with absolute positions.")
                continue
            if key == "embeddings.token_type_ids" and not value.any():
                continue
            if ".LayerNorm." in key:
                key = key.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(".LayerNorm.beta", ".LayerNorm.bias")
            adapted[key] = value
        return adapted

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if isinstance(input_ids.shape[1], int):  # a concrete run (torch.fx traces with a symbolic length)
            self.check_tokens(input_ids.shape[1])
        keep = (input_ids != self.config.pad_token_id).to(torch.float32)
        mask = (1.0 - keep[:, None, None, :]) * torch.finfo(torch.float32).min
        states = self.encoder(self.embeddings(input_ids), mask)
        weights = keep.unsqueeze(-1)  # the masked mean as two means over the positions (pools in the workload)
        pooled = (states * weights).mean(1) / weights.mean(1).clamp(min=1e-9 / input_ids.shape[1])
        if self.classifier is not None:
            return self.classifier(pooled)
        return F.normalize(pooled, p=2.0, dim=1) if self.normalize else pooled


def _init_weights(module: nn.Module) -> None:
    """BERT's initialization: normal(0, 0.02) linears and embeddings, unit LayerNorms, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def bert(in_channels: int, num_classes: int, *, normalize: bool = True, **sizes: Any) -> BertSentenceEncoder:
    """The zoo builder: ``in_channels`` must be 1 (one token id per position); ``sizes`` are
    ``BertConfig`` fields (Hugging Face names)."""
    if in_channels != 1:
        raise ConfigError(f"A BERT encoder takes one token id per position, not {in_channels} channels.",
                          "Feed it token ids [batch, tokens].")
    return BertSentenceEncoder(BertConfig(**sizes), num_classes, normalize)
