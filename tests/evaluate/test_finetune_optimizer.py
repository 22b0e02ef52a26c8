"""The fine-tune's optimizer: SGD with momentum (HotNAS, the default) or AdamW (how Transformers are
fine-tuned): AdamW's first step moves every weight by about lr (Adam normalizes the gradient), decay
reaches conv/linear weights only, an unknown optimizer is refused, and the settings' key holds the
optimizer only when it is not the default (so the keys of every earlier fine-tune stay valid)."""

from __future__ import annotations

import json

import pytest
import torch

from nn2hw import evaluate
from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.evaluate import FinetuneSettings
from nn2hw.evaluate.loops import decay_groups
from tests.evaluate.nets import TinyNet, bright_dark


def _step(optimizer: str, lr: float) -> torch.Tensor:
    """Each parameter's change after one step (no decay, no momentum)."""
    torch.manual_seed(123)
    model = TinyNet()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    evaluate.finetune(model, bright_dark(64), batches=1, batch_size=16, lr=lr, momentum=0.0, weight_decay=0.0,
                      threads=1, progress=False, precision="fp32", optimizer=optimizer)
    return torch.cat([p.detach().flatten() for p in model.parameters()]) - before


def test_adamw_moves_each_weight_with_a_gradient_by_lr_and_sgd_by_lr_times_its_gradient():
    adamw, sgd = _step("adamw", 1e-3), _step("sgd", 1e-3)
    moved = adamw.abs() > 0
    assert moved.float().mean() > 0.5
    assert torch.allclose(adamw[moved].abs(), torch.full_like(adamw[moved], 1e-3), rtol=1e-2)  # Adam's first step
    assert not torch.allclose(sgd[moved].abs(), torch.full_like(sgd[moved], 1e-3), rtol=1e-2)


def test_decay_reaches_conv_and_linear_weights_only():
    model = TinyNet()
    decayed, kept = decay_groups(list(model.parameters()), 0.01)
    assert decayed["weight_decay"] == 0.01 and kept["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(model.parameters()))


def test_the_key_holds_the_optimizer_only_when_not_sgd_and_an_unknown_one_is_refused():
    assert "optimizer" not in json.loads(FinetuneSettings().key)
    assert json.loads(FinetuneSettings(optimizer="adamw").key)["optimizer"] == "adamw"
    with pytest.raises(ConfigError, match="sgd or adamw"):
        FinetuneSettings(optimizer="adam")


def test_the_search_cli_refuses_an_unknown_optimizer(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["search", "--model", "resnet20", "--dataset", "fashion-mnist", "--latency-ms", "1",
              "--finetune-optimizer", "lamb"])
    assert exited.value.code == 2 and "adamw" in capsys.readouterr().err
