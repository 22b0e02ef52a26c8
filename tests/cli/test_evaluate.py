"""``nn2hw evaluate`` end to end through ``nn2hw.cli.main``: output, JSON names, plans and bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from nn2hw import zoo
from nn2hw.cli import main
from nn2hw.compress import with_quantization
from nn2hw.evaluate import FinetuneEvaluator
from nn2hw.plan import Plan
from tests.data.helpers import install_fake_fmnist, write_files


@pytest.fixture
def fmnist(monkeypatch, tmp_path):
    """A 40-image fake Fashion-MNIST under NN2HW_DATA (sizes and MD5s patched to match)."""
    files = install_fake_fmnist(monkeypatch, tmp_path, 40)
    write_files(tmp_path / "data" / "fashion-mnist", files)
    return tmp_path


@pytest.fixture
def weights(tmp_path):
    """A seeded random-init ResNet-20 (Fashion-MNIST variant) state_dict file."""
    torch.manual_seed(0)
    path = tmp_path / "r20.pt"
    torch.save(zoo.build("resnet20", "fashion-mnist").state_dict(), path)
    return path


def run(capsys, *argv):
    code = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_checkpoint_plan_finetune_and_json(capsys, fmnist, weights, tmp_path):
    workload = zoo.workload("resnet20", "fashion-mnist")
    plan = with_quantization(Plan.for_workload(workload, "resnet20", "fashion-mnist"), workload, 8)
    plan_path = plan.save(tmp_path / "plan.json")
    target = tmp_path / "out" / "result.json"
    code, out, err = run(capsys, "--model", "resnet20", "--dataset", "fashion-mnist", "--checkpoint", str(weights),
                         "--plan", str(plan_path), "--finetune-batches", "2", "--finetune-batch-size", "8",
                         "--threads", "1", "--json", str(target))
    assert code == 0, err
    assert f"resnet20 + plan {plan.key} on fashion-mnist test, fine-tuned 2 batches: top-1" in out
    assert "40 images" in out and "PARTIAL" not in out
    data = json.loads(target.read_text())
    assert {"top1", "top5", "n_images", "partial", "dataset", "split", "model"} <= set(data)
    assert (data["n_images"], data["partial"], data["dataset"], data["split"], data["model"]) == (
        40, False, "fashion-mnist", "test", "resnet20")
    assert 0.0 <= data["top1"] <= data["top5"] <= 100.0 and data["plan_key"] == plan.key


@pytest.mark.data
@pytest.mark.slow  # ResNet-20 on 1017 CIFAR-10 images
def test_partial_split_is_labelled(capsys, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))  # the accuracy store lives under the cache root
    target = tmp_path / "r20.json"
    code, out, err = run(capsys, "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial",
                         "--json", str(target))
    assert code == 0, err
    assert "top-1 91.64 %" in out and "1017 images" in out  # shared data SOURCE.md: 91.64 %
    assert "PARTIAL test set (1017 of 10000 images)" in out
    data = json.loads(target.read_text())
    assert (data["partial"], data["n_images"], data["split"]) == (True, 1017, "test-partial")


def test_a_measurement_is_made_once_and_kept_with_its_versions(capsys, fmnist, weights, tmp_path, monkeypatch):
    args = ("--model", "resnet20", "--dataset", "fashion-mnist", "--threads", "1")
    code, first, err = run(capsys, *args, "--checkpoint", str(weights))
    assert code == 0, err

    def measure_again(self, model, *args, **kwargs):
        raise AssertionError("measured twice")

    monkeypatch.setattr(FinetuneEvaluator, "evaluate", measure_again)
    code, again, err = run(capsys, *args, "--checkpoint", str(weights))
    assert code == 0, err
    assert again == first  # the stored measurement, reported the same way
    other = tmp_path / "other.pt"
    torch.manual_seed(1)
    torch.save(zoo.build("resnet20", "fashion-mnist").state_dict(), other)
    with pytest.raises(AssertionError, match="measured twice"):  # other weights: another measurement
        run(capsys, *args, "--checkpoint", str(other))
    with sqlite3.connect(fmnist / "cache" / "accuracy.sqlite") as conn:
        rows = conn.execute("SELECT status, versions FROM nn2hw_measurements").fetchall()
    assert len(rows) == 1 and rows[0][0] == "done" and json.loads(rows[0][1])["torch"] == torch.__version__


def test_bad_input_is_one_clear_error(capsys, fmnist, weights, tmp_path):
    code, _, err = run(capsys, "--model", "resnet2O", "--dataset", "fashion-mnist")
    assert code == 2 and "Unknown model 'resnet2O'" in err and "resnet20" in err
    code, _, err = run(capsys, "--model", "mobilenetv2_fmnist", "--dataset", "cifar10")
    assert code == 2 and "no 'cifar10' variant" in err
    code, _, err = run(capsys, "--model", "resnet20", "--dataset", "fashion-mnist", "--split", "test-partial")
    assert code == 2 and "no split 'test-partial'" in err
    code, _, err = run(capsys, "--model", "resnet20", "--dataset", "fashion-mnist", "--data-dir",
                       str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err and "apt-get install dataset-fashion-mnist" in err


def test_wrong_checkpoint_and_foreign_plan_are_named(capsys, fmnist, weights, tmp_path):
    state = torch.load(weights)
    del state["linear.bias"]
    state["extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    code, _, err = run(capsys, "--model", "resnet20", "--dataset", "fashion-mnist", "--checkpoint", str(broken))
    assert code == 2 and "linear.bias" in err and "extra.weight" in err
    other = Plan("resnet32", "fashion-mnist").save(tmp_path / "plan32.json")
    code, _, err = run(capsys, "--model", "resnet20", "--dataset", "fashion-mnist", "--checkpoint", str(weights),
                       "--plan", str(other))
    assert code == 2 and "made for 'resnet32'" in err
    ghost = Plan("resnet20", "fashion-mnist").with_choice("layer9.0.conv1", weight_bits=8).save(tmp_path / "g.json")
    code, _, err = run(capsys, "--model", "resnet20", "--dataset", "fashion-mnist", "--checkpoint", str(weights),
                       "--plan", str(ghost))
    assert code == 2 and "no layer 'layer9.0.conv1'" in err
