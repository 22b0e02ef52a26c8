"""Fine-tuning a text encoder with ``nn2hw.evaluate.train``: the text recipe, freezing all but the top
blocks, length-grouped batches without the padding columns, validation selection, and the delta it saves."""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import pytest
import torch

from nn2hw.errors import ConfigError
from nn2hw.evaluate import train as training
from nn2hw.evaluate.loops import test, trim_padding
from nn2hw.evaluate.train import TrainRecipe, freeze_below_top, recipe_for
from tests.evaluate.text_helpers import texts, tiny_bert

safetensors = pytest.importorskip("safetensors.torch", reason='needs safetensors: pip install "nn2hw[text]"')
from nn2hw.zoo.checkpoints import delta_bytes, read_delta  # noqa: E402  (after the skip)

RECIPE = TrainRecipe(epochs=3, batch_size=8, lr=1e-2, momentum=0.0, weight_decay=0.01, warmup_epochs=0.5,
                     optimizer="adamw", schedule="linear", init="pretrained", train_layers=1, seq_len=12,
                     save_dtype="float16")
BASE = "ab" * 32


def test_the_text_recipe_warms_up_then_decays_linearly_to_zero():
    recipe = recipe_for("minilm_l6")
    assert (recipe.optimizer, recipe.schedule, recipe.init, recipe.seq_len) == ("adamw", "linear", "pretrained", 64)
    assert recipe.train_layers >= 1 and recipe.delta and recipe_for("resnet20").optimizer == "sgd"
    lrs = [RECIPE.lr_at(step, 10) for step in range(30)]
    assert lrs[0] == pytest.approx(RECIPE.lr / 5) and lrs[4] == pytest.approx(RECIPE.lr)
    assert np.allclose(np.diff(lrs[5:]), -RECIPE.lr / 25) and lrs[-1] == pytest.approx(RECIPE.lr / 25)
    with pytest.raises(ConfigError, match="optimizer 'adam' is not one of sgd, adamw"):
        TrainRecipe(optimizer="adam")
    with pytest.raises(ConfigError, match="train_layers"):
        TrainRecipe(train_layers=-1)


def test_freezing_keeps_only_the_top_blocks_and_the_head_trainable():
    model = tiny_bert(3)
    frozen = freeze_below_top(model, 1)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(n.startswith(("encoder.layer.2.", "classifier.")) for n in trained)
    assert model.embeddings in frozen and model.encoder.layer[1] in frozen and model.encoder.layer[2] not in frozen
    with pytest.raises(ConfigError, match=r"outside 1\.\.3"):
        freeze_below_top(tiny_bert(3), 4)
    with pytest.raises(ConfigError, match="encoder.layer"):
        freeze_below_top(torch.nn.Linear(2, 2), 1)


def test_dropping_padding_columns_changes_no_output(tmp_path):
    model = tiny_bert(3).eval()
    ids, _ = texts(tmp_path, 16, seed=1).batch(np.arange(16))
    trimmed = trim_padding(ids, model)
    assert trimmed.shape[1] < ids.shape[1] and (ids[:, trimmed.shape[1]:] == 0).all()
    with torch.no_grad():
        assert torch.allclose(model(ids), model(trimmed), atol=1e-6)
    images = torch.rand(2, 1, 4, 4)
    assert trim_padding(images, model) is images and trim_padding(ids, torch.nn.Linear(2, 2)) is ids


def test_text_batches_group_lengths_and_cover_each_text_once(tmp_path):
    data = texts(tmp_path, 800, seed=2)
    batches = training._epoch_batches(data, dataclasses.replace(RECIPE, batch_size=16), 50,
                                      torch.Generator().manual_seed(0))
    seen = np.concatenate(batches)
    assert len(batches) == 50 and len(np.unique(seen)) == 800
    spread = np.mean([np.ptp([len(data.texts[i]) for i in b]) for b in batches])
    shuffled = np.mean([np.ptp([len(data.texts[i]) for i in b]) for b in np.split(np.arange(800), 50)])
    assert spread < shuffled / 3  # similar lengths together: fewer padding tokens


def _fit(tmp_path, out_name: str, **changes):
    base = tiny_bert(3, seed=0)
    start = {k: v.clone() for k, v in base.state_dict().items()}
    result = training.train(base, "tiny", texts(tmp_path, 240, seed=3), texts(tmp_path, 60, 4, "test"),
                            dataclasses.replace(RECIPE, **changes), tmp_path / out_name, progress=False,
                            validation_data=texts(tmp_path, 60, 5, "validation"),
                            pack_delta=partial(delta_bytes, base_sha256=BASE, label="tiny tiny-text"))
    return base, start, result


def test_fine_tuning_saves_a_half_precision_delta_and_tests_it_as_saved(tmp_path):
    model, start, result = _fit(tmp_path, "delta.safetensors")
    delta = read_delta(result.path)
    assert delta is not None and delta.base_sha256 == BASE and delta.label == "tiny tiny-text"
    assert sorted(delta.tensors) == sorted(k for k in start if k.startswith(("encoder.layer.2.", "classifier.")))
    assert all(t.dtype == torch.float16 for t in delta.tensors.values())
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in start.items() if k not in delta.tensors)  # frozen: untouched
    assert all(torch.equal(state[k], v.float()) for k, v in delta.tensors.items())  # tested as saved
    assert [h.test_top1 for h in result.history] == [None] * 3 and all(h.validation_top1 for h in result.history)
    assert result.metrics.n_images == 60 and result.metrics.top1 > 60  # 3 classes: chance is 33 %
    assert result.metrics == test(model, texts(tmp_path, 60, 4, "test"), progress=False)


def test_the_best_validation_epoch_is_kept_and_resume_reproduces_it(tmp_path, monkeypatch):
    _, _, straight = _fit(tmp_path, "a.safetensors")
    real_epoch = training._train_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "b.safetensors")
    monkeypatch.setattr(training, "_train_epoch", real_epoch)
    base = tiny_bert(3, seed=0)
    resumed = training.train(base, "tiny", texts(tmp_path, 240, seed=3), texts(tmp_path, 60, 4, "test"), RECIPE,
                             tmp_path / "b.safetensors", resume=True, progress=False,
                             validation_data=texts(tmp_path, 60, 5, "validation"),
                             pack_delta=partial(delta_bytes, base_sha256=BASE, label="tiny tiny-text"))
    assert resumed.sha256 == straight.sha256 and resumed.history == tuple(
        dataclasses.replace(h, seconds=r.seconds) for h, r in zip(straight.history, resumed.history, strict=True))


def test_a_delta_recipe_needs_a_base_to_be_a_delta_of(tmp_path):
    with pytest.raises(ConfigError, match="saves a delta"):
        training.train(tiny_bert(3), "tiny", texts(tmp_path, 16, 3), texts(tmp_path, 8, 4, "test"), RECIPE,
                       tmp_path / "x.safetensors", progress=False)
    with pytest.raises(ConfigError, match="does not end in .safetensors"):
        training.train(tiny_bert(3), "tiny", texts(tmp_path, 16, 3), texts(tmp_path, 8, 4, "test"), RECIPE,
                       tmp_path / "x.pt", progress=False, pack_delta=partial(delta_bytes, base_sha256=BASE, label="t"))
