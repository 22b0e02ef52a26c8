"""``nn2hw zoo train``: recipe, per-epoch resume that reproduces an uninterrupted run, refusals, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from nn2hw import api, zoo
from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.evaluate import train as training
from nn2hw.evaluate.train import TrainRecipe, recipe_for
from tests.data.helpers import install_fake_fmnist, write_files

RECIPE = TrainRecipe(epochs=2, batch_size=16, warmup_epochs=1)


@pytest.fixture
def fmnist(monkeypatch, tmp_path):
    files = install_fake_fmnist(monkeypatch, tmp_path, 48)
    write_files(tmp_path / "data" / "fashion-mnist", files)
    return tmp_path


def test_learning_rate_warms_up_then_decays_to_zero():
    recipe = TrainRecipe(epochs=4, lr=0.2, warmup_epochs=1)
    lrs = [recipe.lr_at(step, 10) for step in range(40)]
    assert lrs[0] == pytest.approx(0.02) and lrs[9] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.002
    assert recipe_for("resnet20").epochs == 30 and recipe_for("resnet20", seed=3, lr=None).seed == 3


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(fmnist, monkeypatch):
    straight = api.train("resnet20", recipe=RECIPE, out=fmnist / "a.pt", progress=False)
    real_epoch = training._train_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.train("resnet20", recipe=RECIPE, out=fmnist / "b.pt", progress=False)
    assert (fmnist / "b.pt.state").is_file() and not (fmnist / "b.pt").exists()
    with pytest.raises(ConfigError, match="unfinished training"):
        api.train("resnet20", recipe=RECIPE, out=fmnist / "b.pt", progress=False)
    with pytest.raises(ConfigError, match="different training"):
        api.train("resnet20", recipe=TrainRecipe(epochs=3, batch_size=16), out=fmnist / "b.pt", resume=True,
                  progress=False)
    monkeypatch.setattr(training, "_train_epoch", real_epoch)
    resumed = api.train("resnet20", recipe=RECIPE, out=fmnist / "b.pt", resume=True, progress=False)
    a, b = torch.load(straight.path), torch.load(resumed.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.sha256 == straight.sha256 and not (fmnist / "b.pt.state").exists()
    assert [h.epoch for h in resumed.history] == [1, 2] and resumed.metrics.n_images == 48


def test_only_fashion_mnist_is_trained_here(fmnist):
    with pytest.raises(ConfigError, match="fashion-mnist, wordnet-supersense only"):
        api.train("resnet20", "cifar10", RECIPE, out=fmnist / "c.pt")
    with pytest.raises(ConfigError, match="epochs"):
        TrainRecipe(epochs=0)


def test_cli_trains_and_reports(capsys, fmnist):
    out = fmnist / "cli.pt"
    code = main(["zoo", "train", "vgg_fmnist", "--dataset", "fashion-mnist", "--epochs", "2", "--batch-size", "16",
                 "--out", str(out), "--json", str(fmnist / "cli.json")])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "vgg_fmnist epoch 2/2" in text and "on 48 test images after 2 epochs" in text
    record = json.loads((fmnist / "cli.json").read_text())
    assert record["sha256"] in text and record["n_images"] == 48 and len(record["history"]) == 2
    model = zoo.build("vgg_fmnist", "fashion-mnist", checkpoint=out)  # a plain state_dict, strict keys
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in torch.load(out).items())
