"""A tiny BERT and a tiny labelled text set (with a word-level tokenizer.json) for fast text tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nn2hw.data.text import TextDataset, Tokenize
from nn2hw.zoo.archs.bert import bert

pytest.importorskip("tokenizers", reason='needs tokenizers: pip install "nn2hw[text]"')

WORDS = ("a", "dog", "cat", "bird", "apple", "bread", "soup", "car", "boat", "train", "small", "big", "red", "old")
TINY = {"vocab_size": len(WORDS) + 4, "hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4,
        "intermediate_size": 32, "max_position_embeddings": 24}
CLASSES = (("dog", "cat", "bird"), ("apple", "bread", "soup"), ("car", "boat", "train"))


def tiny_bert(num_classes: int = 0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return bert(1, num_classes, **TINY)


def write_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer.json: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, then WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                                      ("[SEP]", 3)])
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def texts(folder: Path, count: int, seed: int, split: str = "train", tokens: int = 12) -> TextDataset:
    """``count`` seeded phrases of 1-3 words whose class is the kind of noun they contain."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), count)
    fillers = ("a", "small", "big", "red", "old")
    phrases = tuple(" ".join([*rng.choice(fillers, rng.integers(0, 3)), str(rng.choice(CLASSES[label]))])
                    for label in labels)
    data = TextDataset("tiny-text", split, phrases, labels.astype(np.int64), ("animal", "food", "vehicle"), count,
                       "generated")
    return data.tokenized(Tokenize(write_tokenizer(folder), tokens))
