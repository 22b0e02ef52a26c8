"""The Transformer classifier recovers as the CNNs do: the search's final fine-tune distills from the
unmodified model, and a fine-tune of token ids runs on each batch without its all-padding columns (the
padding mask makes that exact), the teacher seeing the same ids. Seconds: a tiny BERT classifier."""

from __future__ import annotations

import copy

import numpy as np
import torch

from nn2hw.data.text import TextDataset
from nn2hw.evaluate import FinetuneEvaluator, finetune
from nn2hw.search import SearchSettings, Spec
from nn2hw.search.context import member_evaluator
from nn2hw.zoo.archs.bert import BertConfig, BertSentenceEncoder

TOKENS = 16


def _ids(texts):
    """Token ids padded (id 0) to TOKENS: one id per word, then [SEP]-like 2."""
    rows = [[1, *(3 + len(word) % 40 for word in text.split()), 2] for text in texts]
    return torch.tensor([row + [0] * (TOKENS - len(row)) for row in rows], dtype=torch.int64)


def _data():
    texts = tuple(" ".join(["word"] * (1 + i % 4)) for i in range(16))
    return TextDataset("tiny", "train", texts, np.arange(16) % 3, ("a", "b", "c"), 16, "test", tokenize=_ids)


def test_a_token_classifier_fine_tunes_distilled_on_trimmed_batches():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=TOKENS)
    student = BertSentenceEncoder(config, num_classes=3)
    teacher = copy.deepcopy(student).eval()
    seen: list[int] = []
    teacher.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    before = student.encoder.layer[0].intermediate.dense.weight.detach().clone()
    result = finetune(student, _data(), batches=3, batch_size=4, lr=0.05, teacher=teacher, distill=0.5,
                      progress=False, precision="fp32")
    assert result.batches == 3 and np.isfinite(result.last_loss)
    assert len(seen) == 3 and max(seen) <= 6 < TOKENS  # at most 4 words + 2 markers: the padding columns went
    assert not torch.equal(before, student.encoder.layer[0].intermediate.dense.weight)


def test_the_minilm_search_final_fine_tune_distills_from_the_unmodified_classifier():
    settings = SearchSettings(model="minilm_l6", dataset="wordnet-supersense", hardware="cpu",
                              spec=Spec(latency_ms=10.0))
    teacher = torch.nn.Identity()  # stands for the unmodified classifier finalize passes
    final = member_evaluator(settings, settings.members[0], None, settings.final_finetune, teacher)
    assert isinstance(final, FinetuneEvaluator) and final.teacher is teacher
    assert final.settings.distill > 0 and final.settings.batches > 0 and final.split == "test"
