"""Gradient-norm clipping in the fine-tune (what a built-in space's networks, trained from scratch
with fixed-point layers, fine-tune with): each step moves the weights by at most lr x the clip norm
(plus momentum and decay), a negative norm is refused, and the settings' key holds it only when set
(so the keys of every earlier fine-tune stay valid)."""

from __future__ import annotations

import json

import pytest
import torch

from nn2hw import evaluate
from nn2hw.errors import ConfigError
from nn2hw.evaluate import FinetuneSettings
from tests.evaluate.nets import TinyNet, bright_dark


def _moved(clip: float) -> float:
    """The weights' total change after one plain SGD step at lr 1 (no momentum, no decay)."""
    torch.manual_seed(123)
    model = TinyNet()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    evaluate.finetune(model, bright_dark(64), batches=1, batch_size=16, lr=1.0, momentum=0.0, weight_decay=0.0,
                      threads=1, progress=False, precision="fp32", clip_grad_norm=clip)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((after - before).norm())


def test_a_clipped_step_moves_the_weights_by_at_most_lr_times_the_norm():
    unclipped = _moved(0.0)
    assert unclipped > 1e-3
    assert _moved(1e-4) == pytest.approx(1e-4, rel=1e-3)  # lr 1 x norm 1e-4
    assert _moved(1e6) == pytest.approx(unclipped)  # a norm above the gradient's changes nothing


def test_the_key_holds_the_clip_only_when_set_and_a_negative_one_is_refused():
    assert "clip_grad_norm" not in json.loads(FinetuneSettings().key)
    assert json.loads(FinetuneSettings(clip_grad_norm=5.0).key)["clip_grad_norm"] == 5.0
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="clip_grad_norm"):
            FinetuneSettings(clip_grad_norm=bad)
