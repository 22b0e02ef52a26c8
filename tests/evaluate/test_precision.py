"""The fine-tune's precision (issue 13 part 4): names checked, ``auto`` resolved with its reason,
bf16 autocast deterministic and learning, and an explicit bf16 without CPU support running fp32
and saying so. bf16 is forced on by patching the detection (torch emulates bf16 where the CPU
lacks it), so these run on any CPU; speed is measured in benchmarks/finetune_speed.py, not here."""

from __future__ import annotations

import warnings

import pytest
import torch

from nn2hw import evaluate
from nn2hw.errors import ConfigError
from nn2hw.evaluate import FinetuneSettings, loops, settings
from nn2hw.evaluate.evaluator import FinetuneEvaluator
from nn2hw.evaluate.settings import resolve_precision
from tests.evaluate.nets import TinyNet, bright_dark


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(settings, "bf16_support", lambda: (True, "native bf16 (patched)"))


@pytest.fixture
def fp32_cpu(monkeypatch):
    monkeypatch.setattr(settings, "bf16_support", lambda: (False, "no native bf16 (patched)"))
    monkeypatch.setattr(loops, "_warned", set())


def _tuned(precision: str, seed: int = 0, **kw) -> tuple[TinyNet, evaluate.FinetuneResult]:
    torch.manual_seed(123)
    model = TinyNet()
    result = evaluate.finetune(model, bright_dark(256), batches=30, batch_size=16, lr=0.05, seed=seed, threads=1,
                               progress=False, precision=precision, **kw)
    return model, result


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_an_unknown_precision_names_the_choices():
    for bad in ("fp16", "BF16", ""):
        with pytest.raises(ConfigError, match="Use auto, bf16 or fp32"):
            FinetuneSettings(precision=bad)
    with pytest.raises(ConfigError, match="precision 'half'"):
        evaluate.finetune(TinyNet(), bright_dark(64), batches=1, batch_size=8, progress=False, precision="half")
    with pytest.raises(ConfigError, match="precision"):
        evaluate.test(TinyNet(), bright_dark(8), progress=False, precision="int8")


def test_auto_resolves_to_a_precision_with_its_reason():
    ran, reason = resolve_precision("auto")
    assert ran in ("bf16", "fp32") and "bf16" in reason  # says whether the CPU computes bf16
    assert resolve_precision("fp32") == ("fp32", "fp32 was asked for")
    assert FinetuneSettings(precision="auto").key == FinetuneSettings(precision=ran).key  # what ran is the key


def test_auto_follows_the_cpu(bf16_cpu):
    assert resolve_precision("auto")[0] == resolve_precision("bf16")[0] == "bf16"
    assert '"precision":"bf16"' in FinetuneSettings().key
    assert FinetuneSettings(precision="fp32").key != FinetuneSettings().key


def test_bf16_fine_tune_is_deterministic_learns_and_differs_from_fp32(bf16_cpu):
    (a, ra), (b, rb), (c, _) = _tuned("bf16"), _tuned("bf16"), _tuned("bf16", seed=1)
    assert ra.precision == rb.precision == "bf16"
    assert _same(a, b) and ra.last_loss == rb.last_loss  # same seed, same weights
    assert not _same(a, c)
    assert ra.last_loss < ra.first_loss  # it learns
    fp32, rf = _tuned("fp32")
    assert rf.precision == "fp32" and not _same(a, fp32)  # autocast ran: the arithmetic differs
    for p in a.parameters():
        assert p.dtype == torch.float32  # weights stay fp32
    metrics = evaluate.test(a, bright_dark(128, seed=1), threads=1, progress=False)
    assert metrics.top1 > 80.0


def test_bf16_distillation_is_deterministic(bf16_cpu):
    torch.manual_seed(7)
    teacher = TinyNet()
    kw = {"teacher": teacher, "distill": 0.5, "temperature": 2.0}
    (a, ra), (b, _) = _tuned("bf16", **kw), _tuned("bf16", **kw)
    assert _same(a, b) and ra.precision == "bf16" and ra.last_loss < ra.first_loss
    assert next(teacher.parameters()).is_contiguous()  # the teacher's layout is restored


def test_bf16_without_cpu_support_runs_fp32_and_says_so_once(fp32_cpu):
    assert resolve_precision("auto") == ("fp32", "fp32 (no native bf16 (patched))")
    assert resolve_precision("bf16")[1] == "fp32 (bf16 was asked for, but no native bf16 (patched))"
    with pytest.warns(RuntimeWarning, match="bf16 was asked for, but no native bf16"):
        asked, result = _tuned("bf16")
    assert result.precision == "fp32"
    assert _same(asked, _tuned("fp32")[0])  # exactly the fp32 run
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        _tuned("bf16")
    assert not [w for w in again if issubclass(w.category, RuntimeWarning)]  # said once


def test_the_evaluator_passes_its_precision(monkeypatch):
    seen = {}
    real = loops.finetune

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(loops, "finetune", spy)
    evaluator = FinetuneEvaluator("bright-dark", settings=FinetuneSettings(batches=2, batch_size=8, precision="fp32"),
                                  train_data=bright_dark(32), test_data=bright_dark(16, seed=1), threads=1,
                                  progress=False)
    evaluator(TinyNet())
    assert seen["precision"] == "fp32"


def test_bf16_evaluation_agrees_with_fp32(bf16_cpu):
    model, _ = _tuned("fp32")
    data = bright_dark(256, seed=2)
    fp32 = evaluate.test(model, data, threads=1, progress=False)
    bf16 = evaluate.test(model, data, threads=1, progress=False, precision="bf16")
    assert abs(bf16.top1 - fp32.top1) <= 1.0
