"""Issue 13 part 1: a search scores candidates on a validation split carved from the training data,
fine-tunes on the rest, and measures the base model and the winner once on the test split; every
number of report.json and trials.csv names its split, and none is both selected and reported on
the test split unless the user said so (``--select-on-test``), which the report then says."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from nn2hw.cli import main
from nn2hw.errors import ConfigError, DatasetError
from nn2hw.evaluate import FinetuneSettings
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import prepare

pytestmark = pytest.mark.data


def _splits(out) -> tuple[dict, list[dict]]:
    report = json.loads((out / "report.json").read_text())
    with (out / "trials.csv").open() as f:
        return report, list(csv.DictReader(f))


def test_candidates_are_scored_on_validation_and_the_result_reported_once_on_test(shared_data, tmp_path):
    """A real (tiny) search with the default evaluator: about 40 s, most of it the two measurements
    on the 10,000 test images that finalize makes."""
    settings = SearchSettings(model="resnet20", dataset="fashion-mnist", spec=Spec(latency_ms=0.3), strategy="random",
                              trials=1, finetune=FinetuneSettings(batches=1, lr=0.003),
                              final_finetune=FinetuneSettings(batches=1, lr=0.003), search_images=64,
                              out=str(tmp_path / "run"), threads=1)
    ctx = prepare(settings)
    scoring = ctx.members[0].evaluator
    assert (scoring.split, scoring.train_split, len(scoring.test_data())) == ("validation", "fit", 64)
    run_search(settings, progress=False, log=lambda _: None)
    report, trials = _splits(tmp_path / "run")
    splits = report["splits"]
    assert splits["candidates"].startswith("fashion-mnist validation: PARTIAL validation set (64 of 5000 images)")
    assert (splits["report"], splits["fine_tune"], splits["selected_on_test"]) == (
        "fashion-mnist test", "fashion-mnist fit", False)
    assert report["baseline"]["split"] == report["solution"]["split"] == "fashion-mnist test"
    assert report["baseline"]["n_images"] == report["solution"]["n_images"] == 10000
    assert {row["scored_on"] for row in trials if row["top1"]} == {"validation"}
    assert not splits["candidates"].startswith(splits["report"])  # nothing selected and reported on test
    assert not any("SELECTED ON TEST" in note for note in report["notes"])


def test_a_dataset_without_training_data_here_needs_select_on_test(shared_data, tmp_path):
    settings = SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", spec=Spec(latency_ms=1.0),
                              out=str(tmp_path / "a"))
    try:
        prepare(settings)
    except DatasetError as exc:
        assert "training split" in exc.cause and "--select-on-test" in exc.fix
    else:
        pytest.skip("the CIFAR-10 training batches are installed here: the validation split can be carved")
    code = main(["search", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial",
                 "--latency-ms", "1.0", "--trials", "1", "--quiet", "--out", str(tmp_path / "b")])
    assert code == 2


def test_select_on_test_scores_on_the_test_split_and_the_report_says_so(shared_data, tmp_path, capsys):
    """No fine-tune (CIFAR-10 has no training data here): candidates and the result on the partial test split."""
    out = tmp_path / "run"
    code = main(["search", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial",
                 "--select-on-test", "--latency-ms", "0.4", "--hardware", "fpga:zcu102", "--strategy", "random",
                 "--trials", "1", "--finetune-batches", "0", "--final-batches", "0", "--search-images", "64",
                 "--quiet", "--out", str(out), "--threads", "1"])
    assert code == 0, capsys.readouterr()
    report, trials = _splits(out)
    assert report["splits"]["selected_on_test"] is True
    assert report["splits"]["candidates"].startswith("cifar10 test-partial")
    assert any(note.startswith("SELECTED ON TEST") for note in report["notes"])
    assert {row["scored_on"] for row in trials if row["top1"]} == {"test-partial"}
    assert "SELECTED ON TEST" in (out / "summary.html").read_text()


@pytest.mark.parametrize("value", [0, -5, 2.5, True])
def test_report_images_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match="report_images must be a positive integer"):
        SearchSettings(model="resnet20", dataset="fashion-mnist", spec=Spec(latency_ms=1.0), report_images=value)


def test_report_images_says_which_part_of_the_split_is_reported():
    settings = SearchSettings(model="resnet20", dataset="fashion-mnist", spec=Spec(latency_ms=1.0), report_images=500)
    assert settings.report_split("fashion-mnist", "test") == "fashion-mnist test (first 500)"
    assert replace(settings, report_images=None).report_split("fashion-mnist", "test") == "fashion-mnist test"
