"""Two-part checkpoints: pretrained base weights + a small delta of the fine-tuned tensors, checksummed
and tied to each other; and explicit files with generic names (no digest borrowed by name)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from nn2hw import zoo
from nn2hw.errors import CheckpointError, ConfigError
from nn2hw.zoo.checkpoints import delta_bytes, load_base, load_weights, read_delta, resolve
from nn2hw.zoo.records import CheckpointSource, ZooVariant
from tests.evaluate.text_helpers import tiny_bert

safetensors_torch = pytest.importorskip("safetensors.torch", reason='needs safetensors: pip install "nn2hw[text]"')

TOKENIZER = CheckpointSource(url="", file_name="tokenizer.json", sha256="0" * 64, local_path="zoo/tiny/tokenizer.json")
TUNED = ("encoder.layer.2.", "classifier.")


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """(variant, base encoder, fine-tuned classifier, delta path): files under NN2HW_DATA/zoo/tiny."""
    monkeypatch.setenv("NN2HW_DATA", str(tmp_path))
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "zoo" / "tiny"
    folder.mkdir(parents=True)
    encoder = tiny_bert(0, seed=1)
    safetensors_torch.save_file(encoder.state_dict(), str(folder / "model.safetensors"))
    base = CheckpointSource(url="", file_name="model.safetensors", sha256=_digest(folder / "model.safetensors"),
                            local_path="zoo/tiny/model.safetensors")
    tuned = tiny_bert(3, seed=2)
    tuned.load_state_dict(encoder.state_dict(), strict=False)
    with torch.no_grad():
        tuned.encoder.layer[2].output.dense.weight.add_(0.1)
    delta = {k: v.half() for k, v in tuned.state_dict().items() if k.startswith(TUNED)}
    data = delta_bytes(delta, base.sha256, "tiny tiny-text")
    name = f"tiny-tuned-{hashlib.sha256(data).hexdigest()[:8]}.safetensors"
    (folder / name).write_bytes(data)
    source = CheckpointSource(url="", file_name=name, sha256=hashlib.sha256(data).hexdigest(),
                              local_path=f"zoo/tiny/{name}", base_sha256=base.sha256)
    variant = ZooVariant("tiny-text", (12,), 3, (), (), "word ids", (source,), input_dtype="int64",
                         tokenizer=TOKENIZER, base=base)
    return variant, encoder, tuned, folder / name


def test_a_delta_is_applied_on_top_of_its_base(parts):
    variant, encoder, tuned, _ = parts
    model = load_weights(tiny_bert(3, seed=9), variant, None, "tiny (tiny-text)")
    got, base = model.state_dict(), encoder.state_dict()
    for key, value in tuned.state_dict().items():
        expected = value.half().float() if key.startswith(TUNED) else base[key]
        assert torch.equal(got[key], expected), key


def test_a_delta_on_other_base_weights_is_refused(parts, tmp_path):
    variant = parts[0]
    other = tmp_path / "other.safetensors"
    other.write_bytes(delta_bytes({"classifier.1.bias": torch.zeros(3)}, "cd" * 32, "tiny tiny-text"))
    with pytest.raises(CheckpointError, match="do not belong together") as err:
        load_weights(tiny_bert(3), variant, other, "tiny (tiny-text)")
    assert "cdcdcd" in err.value.cause and "made for tiny tiny-text" in err.value.fix
    with pytest.raises(ConfigError, match="is a delta on base weights with sha256 cdcd"):
        ZooVariant("tiny-text", (12,), 3, (), (), "word ids",
                   (CheckpointSource(url="", file_name="d.safetensors", sha256="ef" * 32, local_path="d.safetensors",
                                     base_sha256="cd" * 32),), input_dtype="int64", tokenizer=TOKENIZER,
                   base=variant.base)


def test_a_delta_needs_a_base_and_a_full_file_loads_as_before(parts, tmp_path):
    variant, _, tuned, delta_path = parts
    no_base = ZooVariant("tiny-text", (12,), 3, (), (), "word ids", (), input_dtype="int64", tokenizer=TOKENIZER)
    with pytest.raises(CheckpointError, match="has no base weights to apply it to"):
        load_weights(tiny_bert(3), no_base, delta_path, "tiny (tiny-text)")
    full = tmp_path / "full.safetensors"
    safetensors_torch.save_file(tuned.state_dict(), str(full))
    assert read_delta(full) is None and read_delta(delta_path) is not None
    model = load_weights(tiny_bert(3), variant, full, "tiny (tiny-text)")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in tuned.state_dict().items())


def test_fine_tuning_starts_from_the_base_with_a_fresh_head(parts):
    variant, encoder, _, _ = parts
    model = tiny_bert(3, seed=5)
    head = model.classifier[1].weight.clone()
    load_base(model, variant, "tiny (tiny-text)")
    assert torch.equal(model.classifier[1].weight, head)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in encoder.state_dict().items())
    other = torch.nn.ModuleDict({"encoder": tiny_bert(3).encoder, "extra": torch.nn.Linear(2, 2)})
    with pytest.raises(CheckpointError, match=r"2 missing keys \(extra.weight, extra.bias\)"):
        load_base(other, variant, "tiny")  # only the head may be absent from the base


def test_a_generic_file_name_is_not_held_to_a_published_digest(tmp_path):
    sources = zoo.entry("minilm_l6").variant().sources
    own = tmp_path / "model.safetensors"  # the name MiniLM's file has, but the user's own weights
    own.write_bytes(b"my fine-tuned weights")
    assert resolve(sources, own) == own
    stamped = tmp_path / "resnet18-f37072fd.pth"
    stamped.write_bytes(b"not the published file")
    with pytest.raises(CheckpointError, match="Checksum mismatch"):
        resolve(zoo.entry("resnet18").variant().sources, stamped)
