"""The fine-tunes' recipe: a zoo entry's measured recovery recipe is the search's default for that
model (API and CLI alike), and whatever the user gives wins."""

from __future__ import annotations

import pytest

import nn2hw.api
from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.search.settings import FINAL_FINETUNE, SEARCH_FINETUNE_LR, finetune_recipe, recipe_settings
from nn2hw.zoo import Recovery, entry


def test_the_vit_recovers_with_its_measured_adamw_recipe():
    recovery = entry("vit_fmnist").recovery
    assert recovery is not None and (recovery.optimizer, recovery.lr) == ("adamw", 1e-3)
    recipe = finetune_recipe("vit_fmnist")
    assert (recipe.optimizer, recipe.lr, recipe.from_model) == ("adamw", 1e-3, True)
    assert "transformer_recovery.py" in recipe.source


@pytest.mark.parametrize(("model", "space_kind", "given", "expected"), [
    ("resnet20", "hotstart", {}, ("sgd", SEARCH_FINETUNE_LR, False)),       # no recipe: the search's default
    ("resnet20", "hotstart", {"optimizer": "adamw"}, ("adamw", SEARCH_FINETUNE_LR, False)),
    ("vit_fmnist", "hotstart", {"optimizer": "sgd"}, ("sgd", SEARCH_FINETUNE_LR, False)),  # its rate is adamw's
    ("vit_fmnist", "hotstart", {"lr": 5e-4}, ("adamw", 5e-4, False)),       # a given rate keeps its optimizer
    ("vit_fmnist", "hotstart", {"optimizer": "adamw"}, ("adamw", 1e-3, True)),
    ("fbnet", "fbnet", {}, ("sgd", 0.05, False)),                           # from scratch: no pretrained recipe
])
def test_given_values_win_and_the_rest_is_filled(model, space_kind, given, expected):
    recipe = finetune_recipe(model, space_kind, **given)
    assert (recipe.optimizer, recipe.lr, recipe.from_model) == expected


def test_api_settings_take_the_recipe_only_for_fine_tunes_not_given():
    filled = recipe_settings("vit_fmnist", {"trials": 3})
    assert filled["trials"] == 3
    assert (filled["finetune"].optimizer, filled["finetune"].lr, filled["finetune"].batches) == ("adamw", 1e-3, 100)
    final = filled["final_finetune"]
    assert (final.optimizer, final.lr) == ("adamw", 1e-3)
    assert (final.batches, final.schedule, final.distill) == (FINAL_FINETUNE.batches, "cosine", FINAL_FINETUNE.distill)
    kept = recipe_settings("vit_fmnist", {"final_finetune": FINAL_FINETUNE})
    assert kept["final_finetune"] is FINAL_FINETUNE and kept["finetune"].optimizer == "adamw"
    assert recipe_settings("resnet20", {"trials": 3}) == {"trials": 3}
    assert recipe_settings("vit_fmnist", {"space_kind": "fbnet"}) == {"space_kind": "fbnet"}


def _captured_search(monkeypatch, argv: list[str], capsys) -> tuple[dict, str]:
    seen: dict = {}

    class Stop(Exception):
        pass

    def fake_search(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(nn2hw.api, "search", fake_search)
    with pytest.raises(Stop):
        main(["search", "--dataset", "fashion-mnist", "--latency-ms", "1", *argv])
    return seen, capsys.readouterr().err


def test_the_cli_uses_the_models_recipe_and_says_so(monkeypatch, capsys):
    seen, err = _captured_search(monkeypatch, ["--model", "vit_fmnist"], capsys)
    assert (seen["finetune"].optimizer, seen["finetune"].lr) == ("adamw", 1e-3)
    assert (seen["final_finetune"].optimizer, seen["final_finetune"].lr) == ("adamw", 1e-3)
    assert "fine-tunes: adamw at lr 0.001, vit_fmnist's measured recovery recipe" in err
    seen, err = _captured_search(monkeypatch, ["--model", "vit_fmnist", "--finetune-optimizer", "sgd",
                                               "--finetune-lr", "0.01"], capsys)
    assert (seen["finetune"].optimizer, seen["final_finetune"].lr) == ("sgd", 0.01) and "recovery recipe" not in err
    seen, err = _captured_search(monkeypatch, ["--model", "resnet20"], capsys)
    assert (seen["finetune"].optimizer, seen["finetune"].lr) == ("sgd", SEARCH_FINETUNE_LR) and "fine-tunes:" not in err


def test_a_recipe_without_a_rate_or_evidence_is_refused():
    with pytest.raises(ConfigError, match="positive learning rate"):
        Recovery("adamw", 0.0, "measured")
    with pytest.raises(ConfigError, match="evidence"):
        Recovery("adamw", 1e-3, "")
