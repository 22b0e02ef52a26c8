"""The fine-tune and test loops: metric arithmetic, partial flags, determinism, restored state."""

from __future__ import annotations

import math

import pytest
import torch

from nn2hw import evaluate
from nn2hw.errors import ConfigError, ModelError
from nn2hw.evaluate import FinetuneSettings, Metrics
from tests.evaluate.nets import Lookup, TinyNet, bright_dark, indexed


def test_top1_top5_by_hand():
    # 10 classes; the scores rank class c at position (c - label) mod 10 for image i, shifted by i.
    labels = [0, 1, 2, 3, 4, 5, 6, 7]
    table = torch.zeros(8, 10)
    for i, label in enumerate(labels):
        rank = i  # the true class is the rank-th best guess of image i
        order = [c for c in range(10) if c != label]
        order.insert(rank, label)
        table[i, order] = torch.arange(10, 0, -1, dtype=torch.float)
    metrics = evaluate.test(Lookup(table), indexed(labels, 10), batch_size=3, threads=1, progress=False)
    assert metrics.top1 == pytest.approx(100 * 1 / 8)  # only image 0 has its label first
    assert metrics.top5 == pytest.approx(100 * 5 / 8)  # images 0..4 have it in the first five
    assert (metrics.n_images, metrics.partial) == (8, False)


def test_fewer_than_five_classes_gives_top5_of_100():
    table = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    metrics = evaluate.test(Lookup(table), indexed([1, 1], 2), threads=1, progress=False)
    assert (metrics.top1, metrics.top5) == (50.0, 100.0)


def test_partial_data_gives_partial_metrics():
    table = torch.eye(4)
    metrics = evaluate.test(Lookup(table), indexed([0, 1, 2, 3], 4, full=10), threads=1, progress=False)
    assert metrics.partial and metrics.full_size == 10
    assert "PARTIAL test set (4 of 10 images)" in metrics.description
    assert metrics.as_mapping() == {"top1": 100.0, "top5": 100.0, "n_images": 4.0, "partial": 1.0}


def test_test_restores_mode_and_rejects_bad_outputs():
    model = TinyNet().train()
    evaluate.test(model, bright_dark(10), threads=1, progress=False)
    assert model.training

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.flatten()

    with pytest.raises(ModelError, match="expected \\[batch, classes\\]"):
        evaluate.test(Flat(), bright_dark(4), threads=1, progress=False)
    with pytest.raises(ConfigError, match="Batch size"):
        evaluate.test(model, bright_dark(4), batch_size=0)


def _tuned(seed: int, batches: int = 30) -> tuple[TinyNet, evaluate.FinetuneResult]:
    torch.manual_seed(123)
    model = TinyNet()
    result = evaluate.finetune(model, bright_dark(256), batches=batches, batch_size=16, lr=0.05, seed=seed,
                               threads=1, progress=False)
    return model, result


def test_finetune_is_deterministic_given_the_seed():
    (a, ra), (b, rb), (c, _) = _tuned(0), _tuned(0), _tuned(1)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert ra.last_loss == rb.last_loss
    assert any(not torch.equal(x, z) for x, z in zip(a.state_dict().values(), c.state_dict().values()))


def test_finetune_learns_and_reports():
    model, result = _tuned(0, batches=60)
    assert (result.batches, result.images) == (60, 960)
    assert all(p.is_contiguous() for p in model.parameters())  # channels-last only while training
    assert result.last_loss < result.first_loss
    assert evaluate.test(model, bright_dark(200, seed=5), threads=1, progress=False).top1 > 90.0


def test_after_step_sees_every_step_and_can_stop_the_fine_tune():
    seen: list[int] = []

    class Stop(Exception):
        pass

    def checkpoint(done: int) -> None:
        seen.append(done)
        if done == 3:
            raise Stop

    model = TinyNet().eval()
    with pytest.raises(Stop):
        evaluate.finetune(model, bright_dark(64), batches=10, batch_size=8, threads=1, progress=False,
                          after_step=checkpoint)
    assert seen == [1, 2, 3] and model.training is False  # the model's mode is restored on the way out


def test_finetune_restores_threads_and_determinism_flags():
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with evaluate.run_context(seed=None, threads=3):
        assert torch.get_num_threads() == 3 and torch.are_deterministic_algorithms_enabled()
    evaluate.finetune(TinyNet(), bright_dark(64), batches=2, batch_size=8, threads=1, progress=False)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)


def test_zero_batches_changes_nothing():
    model = TinyNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = evaluate.finetune(model, bright_dark(64), batches=0, threads=1, progress=False)
    assert result.batches == 0 and math.isnan(result.first_loss)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_divergence_and_bad_settings_are_clear_errors():
    with pytest.raises(ModelError, match="diverged"):
        evaluate.finetune(TinyNet(), bright_dark(64), batches=20, batch_size=8, lr=1e12, threads=1, progress=False)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        evaluate.finetune(TinyNet(), bright_dark(4), batches=1, batch_size=8, threads=1, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        FinetuneSettings(lr=float("nan"))
    with pytest.raises(ConfigError, match="batches"):
        FinetuneSettings(batches=-1)


def test_settings_key_is_canonical_and_complete():
    key = FinetuneSettings(precision="fp32").key
    assert key == ('{"augment":true,"batch_size":32,"batches":100,"distill":0.0,"lr":0.1,"momentum":0.9,'
                   '"precision":"fp32","schedule":"constant","seed":0,"temperature":4.0,'
                   '"weight_decay":0.0001}')  # HotNAS (ref. 2.8)
    assert FinetuneSettings(seed=1).key != key
    assert FinetuneSettings(schedule="cosine").key != key != FinetuneSettings(distill=0.5).key


def test_cosine_schedule_decays_and_distillation_pulls_towards_the_teacher():
    torch.manual_seed(7)
    teacher = TinyNet()
    data = bright_dark(256)
    x, _ = data.batch(torch.arange(64).numpy())

    def gap(model):
        with torch.no_grad():
            return torch.nn.functional.kl_div(torch.log_softmax(model(x), 1), torch.softmax(teacher(x), 1),
                                              reduction="batchmean").item()

    def tuned(**kw):
        torch.manual_seed(123)
        model = TinyNet()
        evaluate.finetune(model, data, batches=40, batch_size=16, lr=0.05, seed=0, threads=1, progress=False, **kw)
        return model

    plain, distilled = tuned(), tuned(teacher=teacher, distill=0.9, temperature=2.0)
    assert gap(distilled) < gap(plain)  # the student moved towards its teacher's outputs
    cosine = tuned(schedule="cosine")
    assert any(not torch.equal(a, b) for a, b in zip(plain.state_dict().values(), cosine.state_dict().values()))
    with pytest.raises(ConfigError, match="teacher"):
        tuned(distill=0.5)
    with pytest.raises(ConfigError, match="schedule"):
        FinetuneSettings(schedule="step")
    with pytest.raises(ConfigError, match="Distillation weight"):
        FinetuneSettings(distill=1.5)


def test_metrics_record_is_frozen():
    metrics = Metrics(90.0, 99.0, 100, False)
    with pytest.raises(AttributeError):
        metrics.top1 = 1.0  # type: ignore[misc]
