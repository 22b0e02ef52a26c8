"""RT3 families trained as one set of weights (issue 10 part 5): with the search's own fine-tune,
the variants of every level are fine-tuned jointly as slices of one set of the base model's
weights; the family records that set and each variant's slices, and every bundle's weights are
exactly its slices of it. The Fashion-MNIST ResNet-20 on the analytical ZCU102 template; candidates
scored without training on 256 validation images, the family's final fine-tune 12 batches, the
base and the variants reported on the first 1,000 test images (``report_images``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nn2hw import zoo
from nn2hw.api import search
from nn2hw.bundle import load_family
from nn2hw.errors import CheckpointError, ConfigError
from nn2hw.evaluate import FinetuneSettings
from nn2hw.search import SearchSettings, Spec
from nn2hw.search.context import prepare
from nn2hw.search.settings import FINAL_FINETUNE
from tests.data.helpers import real_fmnist

pytestmark = [pytest.mark.data, pytest.mark.slow]  # five test passes over 1,000 images and a joint fine-tune
BASE = {"model": "resnet20", "dataset": "fashion-mnist", "hardware": "fpga:zcu102"}


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    real_fmnist("test")  # skips with the reason when Fashion-MNIST is absent
    ctx = prepare(SearchSettings(**BASE, spec=Spec(latency_ms=1.0), out=str(tmp_path_factory.mktemp("b"))),
                  evaluator=lambda m: {"top1": 0.0})
    base, lean = ctx.base_cost.latency_ms, ctx.bound_cost.latency_ms
    levels = tuple(round(lean + f * (base - lean), 6) for f in (0.3, 0.55, 0.8))
    out = tmp_path_factory.mktemp("family")
    result = search(**BASE, latency_levels_ms=levels, strategy="random", trials=8, seed=0, progress=False,
                    finetune=FinetuneSettings(batches=0), search_images=256, report_images=1000,
                    final_finetune=replace(FINAL_FINETUNE, batches=12), out=str(out))
    return result, load_family(out)


def test_every_bundle_is_its_slices_of_the_one_set_of_weights(family_run):
    _, family = family_run
    assert family.shared_weights == "family/shared-weights.pt" and "jointly" in family.weights
    owners = [v for v in family.variants if v.shares_weights_with is None]
    assert len(owners) >= 2, "the levels should need different networks"
    for v in family.variants:
        model, _, _ = family.load(v)
        computed = family.shared_parameters(v)
        params = dict(model.named_parameters())
        assert set(computed) == set(params)  # every parameter is a slice of the set: none is a variant's own
        for name, value in computed.items():
            assert torch.equal(value, params[name]), name


def test_the_shared_set_was_trained_and_the_scores_are_the_trained_networks(family_run):
    result, family = family_run
    record = torch.load(family.folder / family.shared_weights, weights_only=True)
    pretrained = dict(zoo.build("resnet20", "fashion-mnist", pretrained=True).named_parameters())
    assert not torch.equal(record["state"]["conv1.weight"], pretrained["conv1.weight"])
    tightest = family.variants[0]
    assert result.solution.metrics["top1"] == tightest.metrics["top1"]
    assert (tightest.metrics["n_images"], tightest.metrics["partial"]) == (1000, True)
    assert result.splits["report"] == "fashion-mnist test (first 1000)"
    assert (result.settings["report_images"], result.settings["family_weights"]) == (1000, "joint")
    assert any("fine-tuned jointly" in note for note in result.notes)
    for v in family.variants:
        assert 10 < v.metrics["top1"] <= 100


def test_a_family_without_shared_weights_says_so(family_run):
    _, family = family_run
    separate = replace(family, shared_weights=None)
    with pytest.raises(CheckpointError, match="not trained as one set of weights"):
        separate.shared_parameters(family.variants[0])


def test_the_cli_offers_the_family_weights_the_settings_know():
    from nn2hw.cli.search import FAMILY_WEIGHTS as CLI_FAMILY_WEIGHTS
    from nn2hw.search.settings import FAMILY_WEIGHTS

    assert CLI_FAMILY_WEIGHTS == FAMILY_WEIGHTS


def test_unknown_family_weights_are_refused():
    with pytest.raises(ConfigError, match="Unknown family weights 'shared'"):
        SearchSettings(**BASE, spec=Spec(latency_ms=1.0), family_weights="shared")


def test_damaged_shared_weights_are_refused_naming_the_file(family_run, tmp_path):
    _, family = family_run
    damaged = tmp_path / "shared-weights.pt"
    damaged.write_bytes(b"not a torch file")
    moved = replace(family, folder=tmp_path, shared_weights="shared-weights.pt")
    with pytest.raises(CheckpointError, match="is not the family's shared weights"):
        moved.shared_parameters(family.variants[0])
