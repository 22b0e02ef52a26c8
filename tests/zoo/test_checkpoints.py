"""Checkpoint resolution, download (against a real local HTTP server), checksums and strict loading."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from nn2hw import zoo
from nn2hw.errors import CheckpointError
from nn2hw.zoo import checkpoints, factory
from nn2hw.zoo.checkpoints import download_file, load_into, read_state_dict, resolve
from nn2hw.zoo.records import CheckpointSource
from tests.http_server import MemoryServer

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB: several download chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    s = MemoryServer({"weights.bin": PAYLOAD}, ranges=False)
    yield s
    s.close()


@pytest.fixture
def range_server():
    s = MemoryServer({"weights.bin": PAYLOAD}, ranges=True)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    """Each test gets its own cache and no NN2HW_DATA."""
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NN2HW_DATA", raising=False)


# --- download -----------------------------------------------------------------------------------
def test_download_checks_the_full_sha256_and_renames_atomically(server, tmp_path):
    target = tmp_path / "dl" / "weights.bin"
    assert download_file(server.url("weights.bin"), target, PAYLOAD_SHA, progress=False) == target
    assert target.read_bytes() == PAYLOAD
    assert not target.with_name("weights.bin.part").exists()


def test_download_accepts_a_matching_prefix(server, tmp_path):
    target = tmp_path / "weights.bin"
    download_file(server.url("weights.bin"), target, PAYLOAD_SHA[:8], progress=False)
    assert target.read_bytes() == PAYLOAD


def test_download_with_a_wrong_checksum_keeps_nothing(server, tmp_path):
    target = tmp_path / "weights.bin"
    wrong = "0" * 64
    with pytest.raises(CheckpointError) as err:
        download_file(server.url("weights.bin"), target, wrong, progress=False)
    assert wrong in str(err.value) and PAYLOAD_SHA in str(err.value)  # expected vs got
    assert not target.exists() and not target.with_name("weights.bin.part").exists()


def test_download_resumes_a_partial_file(range_server, tmp_path):
    target = tmp_path / "weights.bin"
    target.with_name("weights.bin.part").write_bytes(PAYLOAD[:300_000])
    download_file(range_server.url("weights.bin"), target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert range_server.requests == [("/weights.bin", "bytes=300000-")]


def test_download_starts_over_when_the_server_ignores_the_range(server, tmp_path):
    target = tmp_path / "weights.bin"
    target.with_name("weights.bin.part").write_bytes(b"stale bytes from another file")
    download_file(server.url("weights.bin"), target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD


def test_network_failure_tells_how_to_get_the_file_by_hand(tmp_path):
    with pytest.raises(CheckpointError) as err:  # port 9 on loopback: nothing listens
        download_file("http://127.0.0.1:9/weights.bin", tmp_path / "weights.bin", PAYLOAD_SHA, progress=False,
                      timeout_s=5)
    message = str(err.value)
    assert "Cannot download http://127.0.0.1:9/weights.bin" in message and "--checkpoint" in message


def test_http_error_is_named(server, tmp_path):
    with pytest.raises(CheckpointError, match="HTTP 404"):
        download_file(server.url("absent.bin"), tmp_path / "absent.bin", PAYLOAD_SHA, progress=False)


# --- resolve ------------------------------------------------------------------------------------
def _source(url: str = "", **kwargs) -> CheckpointSource:
    return CheckpointSource(url=url, file_name="weights.bin", sha256=PAYLOAD_SHA, **kwargs)


def test_resolve_downloads_once_then_uses_the_cache(server, tmp_path):
    source = _source(server.url("weights.bin"))
    first = resolve([source], progress=False)
    assert first == tmp_path / "cache" / "checkpoints" / "weights.bin" and first.read_bytes() == PAYLOAD
    assert resolve([source], progress=False) == first
    assert len(server.requests) == 1


def test_resolve_prefers_packaged_then_data_folder_then_cache(tmp_path, monkeypatch):
    data, packaged = tmp_path / "data", tmp_path / "packaged"
    for folder in (data / "zoo", packaged, tmp_path / "cache" / "checkpoints"):
        folder.mkdir(parents=True)
        (folder / "weights.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("NN2HW_DATA", str(data))
    monkeypatch.setattr(checkpoints, "PACKAGED_DIR", packaged)
    both = _source(local_path="zoo/weights.bin", packaged="weights.bin")
    assert resolve([both]) == packaged / "weights.bin"
    assert resolve([_source(local_path="zoo/weights.bin")]) == data / "zoo" / "weights.bin"
    assert resolve([_source(url="http://127.0.0.1:9/x")]) == tmp_path / "cache" / "checkpoints" / "weights.bin"


def test_resolve_rejects_a_local_file_with_the_wrong_checksum(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "weights.bin").write_bytes(PAYLOAD[:-1])
    monkeypatch.setenv("NN2HW_DATA", str(tmp_path / "data"))
    with pytest.raises(CheckpointError, match=f"expected sha256 {PAYLOAD_SHA}"):
        resolve([_source(local_path="weights.bin")])


def test_resolve_without_any_copy_or_url_says_where_it_looked():
    with pytest.raises(CheckpointError, match="was not found .*NN2HW_DATA"):
        resolve([_source(local_path="zoo/weights.bin")])


def test_explicit_checkpoint_is_checked_by_its_source_or_its_name(tmp_path):
    official = _source(url="https://example.org/weights.bin")
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve([official], tmp_path / "missing.pth")
    stamped = CheckpointSource(url="https://example.org/w-1234abcd.bin", file_name="w-1234abcd.bin",
                               sha256="1234abcd" + PAYLOAD_SHA[8:])
    published = tmp_path / "w-1234abcd.bin"  # the source's hash-stamped name: held to its full digest
    published.write_bytes(b"not the published bytes")
    with pytest.raises(CheckpointError, match=f"expected sha256 1234abcd{PAYLOAD_SHA[8:12]}"):
        resolve([stamped], published)
    generic = tmp_path / "weights.bin"  # a generic name says nothing: a user's own file may be called so
    generic.write_bytes(b"not the published bytes")
    assert resolve([official], generic) == generic
    hub_named = tmp_path / "model-deadbeef.pth"  # torch.hub style: the name embeds a sha256 prefix
    hub_named.write_bytes(PAYLOAD)
    with pytest.raises(CheckpointError, match="sha256 prefix"):
        resolve([], hub_named)
    own = tmp_path / "my_finetuned.pth"  # no published digest: only the key checks apply
    own.write_bytes(PAYLOAD)
    assert resolve([official], own) == own


# --- reading and strict loading -------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_state():
    return zoo.build("resnet20", "fashion-mnist").state_dict()


def test_read_unwraps_state_dict_and_strips_data_parallel_prefix(tmp_path, small_state):
    path = tmp_path / "wrapped.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in small_state.items()}, "best_prec1": 91.0}, path)
    state = read_state_dict(path)
    assert list(state) == list(small_state)


def test_corrupt_or_foreign_files_are_named(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        read_state_dict(garbage)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listing)
    with pytest.raises(CheckpointError, match="holds a list, not a state_dict"):
        read_state_dict(listing)


def test_mismatched_keys_and_shapes_are_named(small_state):
    model = zoo.build("resnet20", "fashion-mnist")
    state = dict(small_state)
    dropped = [k for k in state if k.startswith("layer3.2.")]
    for key in dropped:
        del state[key]
    state["extra.weight"] = torch.zeros(1)
    state["linear.weight"] = torch.zeros(10, 32)
    with pytest.raises(CheckpointError) as err:
        load_into(model, state, "resnet20 (fashion-mnist)")
    message = str(err.value)
    assert "does not fit resnet20 (fashion-mnist)" in message
    assert "10 missing keys (layer3.2.conv1.weight" in message and "and 5 more" in message
    assert "1 unexpected keys (extra.weight)" in message
    assert "linear.weight (10, 32) vs (10, 64)" in message


def test_old_batchnorm_format_without_counters_loads(small_state):
    model = zoo.build("resnet20", "fashion-mnist")
    load_into(model, {k: v for k, v in small_state.items() if "num_batches_tracked" not in k}, "resnet20")
    assert torch.equal(model.linear.weight, small_state["linear.weight"])


def test_build_loads_an_explicit_checkpoint(tmp_path, small_state):
    path = tmp_path / "resnet20_fmnist.pth"
    torch.save(small_state, path)
    model = zoo.build("resnet20", "fashion-mnist", checkpoint=path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in small_state.items())


def test_pretrained_without_sources_says_how_to_train():
    with pytest.raises(CheckpointError) as err:
        zoo.build("resnet32", "fashion-mnist", pretrained=True)
    message = str(err.value)
    assert "No pretrained weights exist for resnet32 (fashion-mnist)" in message
    assert "nn2hw zoo train resnet32 --dataset fashion-mnist" in message


def test_build_pretrained_downloads_verifies_and_loads(tmp_path, small_state, monkeypatch):
    """The whole path of build(pretrained=True): resolve -> download from HTTP -> checksum -> strict load."""
    saved = tmp_path / "served.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in small_state.items()}}, saved)
    blob = saved.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    served = MemoryServer({f"r20-{digest[:8]}.th": blob}, ranges=False)
    try:
        original = zoo.entry("resnet20")
        source = CheckpointSource(url=served.url(f"r20-{digest[:8]}.th"), file_name=f"r20-{digest[:8]}.th",
                                  sha256=digest)
        variant = dataclasses.replace(original.variant("fashion-mnist"), sources=(source,))
        monkeypatch.setattr(factory, "entry", lambda name: dataclasses.replace(original, variants=(variant,)))
        model = zoo.build("resnet20", "fashion-mnist", pretrained=True)
    finally:
        served.close()
    assert torch.equal(model.linear.weight, small_state["linear.weight"])
    assert (tmp_path / "cache" / "checkpoints" / source.file_name).read_bytes() == blob
