"""The label-free fidelity metric: mean cosine similarity of a model's embeddings to the original's."""

from __future__ import annotations

import copy

import pytest
import torch

from nn2hw.errors import ConfigError, ModelError
from nn2hw.evaluate.evaluator import EmbeddingFidelityEvaluator, checked_metrics, evaluator_id
from nn2hw.evaluate.loops import cosine_similarities, embed
from tests.evaluate.text_helpers import texts, tiny_bert


@pytest.fixture
def data(tmp_path):
    return texts(tmp_path, 40, seed=7, split="test")


def test_an_identical_model_scores_1_and_a_perturbed_one_less(data):
    reference = tiny_bert(0, seed=1)
    evaluator = EmbeddingFidelityEvaluator(reference, data=data, progress=False)
    same = checked_metrics(evaluator(copy.deepcopy(reference)))
    assert same["cosine"] == pytest.approx(100.0, abs=1e-4) and same["cosine_min"] == pytest.approx(100.0, abs=1e-4)
    assert same["n_images"] == 40 and same["partial"] == 0.0
    scores = []
    for scale in (0.05, 0.5):
        perturbed = copy.deepcopy(reference)
        with torch.no_grad():
            layer = perturbed.encoder.layer[1].intermediate.dense
            layer.weight.add_(scale * torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(0)))
        scores.append(evaluator(perturbed)["cosine"])
    assert 100.0 > scores[0] > scores[1]  # more noise, less faithful (in percent: 100 x the mean cosine)
    assert evaluator(reference)["cosine"] == pytest.approx(100.0, abs=1e-4)  # the reference itself is left intact


def test_embeddings_are_the_models_outputs_in_order_in_eval_mode(data):
    model = tiny_bert(0, seed=2).train()
    ids, _ = data.batch(torch.arange(len(data)).numpy())
    with torch.no_grad():
        direct = model.eval()(ids)
    model.train()
    got = embed(model, data, batch_size=16, progress=False)
    assert model.training and torch.allclose(got, direct, atol=1e-6)


def test_mismatched_outputs_and_bad_settings_are_refused(data):
    with pytest.raises(ModelError, match="differ in shape"):
        cosine_similarities(torch.ones(3, 4), torch.ones(3, 5))
    with pytest.raises(ConfigError, match="max_texts"):
        EmbeddingFidelityEvaluator(tiny_bert(), data=data, max_texts=0)
    few = EmbeddingFidelityEvaluator(tiny_bert(), data=data, max_texts=10, reference_id="sha256:x", progress=False)
    assert few(tiny_bert())["n_images"] == 10 and few(tiny_bert())["partial"] == 1.0
    whole = EmbeddingFidelityEvaluator(tiny_bert(), data=data, reference_id="sha256:x")
    assert evaluator_id(few) != evaluator_id(whole) and few.cache_fields[0] == "cosine %"
