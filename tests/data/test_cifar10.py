"""CIFAR-10: the partial test split from the shared data, official-file checks, archive download."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nn2hw.data import cifar10, load_dataset
from nn2hw.data._files import DataFile
from nn2hw.errors import DatasetError
from tests.data.helpers import cifar_batch_bytes, md5
from tests.http_server import serve


def test_partial_split_is_always_partial(shared_data):
    data = load_dataset("cifar10", "test-partial")
    assert (len(data), data.full_size, data.partial, data.image_shape) == (1017, 10000, True, (3, 32, 32))
    assert data.description == "cifar10 test-partial: PARTIAL test set (1017 of 10000 images)"
    # The first ten official test labels (../shared/data/cifar10/SOURCE.md).
    assert data.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert data.take(100).partial and len(data.take(100)) == 100


def test_partial_split_found_from_a_data_dir(shared_data):
    assert len(load_dataset("cifar10", "test-partial", shared_data / "cifar10")) == 1017
    assert len(load_dataset("cifar10", "test-partial", shared_data / "cifar10" / "partial")) == 1017


def test_full_test_split_missing_in_shared_data_explains_how_to_get_it(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path))
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", "test")
    assert "lacks test_batch" in info.value.cause
    assert cifar10.URL in info.value.fix and cifar10.ARCHIVE_MD5 in info.value.fix
    assert "--download" in info.value.fix and "test-partial" in info.value.fix


def test_truncated_batch_is_detected_and_explained(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"\0" * (10 * 256 * 1024))  # cut like the copies found in git repositories
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", "test", tmp_path)
    assert "truncated: 2621440 of 31035526 bytes" in info.value.cause
    assert "256 KiB boundary" in info.value.cause and cifar10.URL in info.value.fix


@pytest.fixture
def small_batch(monkeypatch) -> bytes:
    """A 20-image test batch standing in for the official one (its size/MD5 replace the official)."""
    raw = cifar_batch_bytes(20)
    monkeypatch.setattr(cifar10, "TEST_FILES", (DataFile("test_batch", len(raw), md5(raw)),))
    monkeypatch.setattr(cifar10, "IMAGES_PER_BATCH", 20)
    return raw


def test_python_batch_layout_is_decoded(small_batch, tmp_path):
    (tmp_path / "test_batch").write_bytes(small_batch)
    data = load_dataset("cifar10", "test", tmp_path)  # a data_dir may be the batches folder itself
    assert len(data) == 20 and not data.partial
    images, labels = data.batch(np.arange(2))
    import pickle

    batch = pickle.loads(small_batch, encoding="bytes")
    row = batch[b"data"][1]  # 1024 R, then 1024 G, then 1024 B, each row-major 32x32
    assert images[1, 2, 31, 0].item() == pytest.approx(row[2 * 1024 + 31 * 32] / 255.0)
    assert labels.tolist() == batch[b"labels"][:2]


def test_checksum_mismatch_is_reported(small_batch, tmp_path):
    altered = bytearray(small_batch)
    altered[-100] ^= 0xFF
    (tmp_path / "test_batch").write_bytes(bytes(altered))
    with pytest.raises(DatasetError, match="does not match the official test_batch"):
        load_dataset("cifar10", "test", tmp_path)


def _archive(raw: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("cifar-10-batches-py/test_batch", raw), ("cifar-10-batches-py/readme.html", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_download_extracts_the_archive_atomically(small_batch, tmp_path, monkeypatch):
    served = tmp_path / "server"
    served.mkdir()
    archive = _archive(small_batch)
    (served / "cifar-10-python.tar.gz").write_bytes(archive)
    with serve(served) as url:
        monkeypatch.setattr(cifar10, "URL", url + "cifar-10-python.tar.gz")
        monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5(archive))
        data = load_dataset("cifar10", "test", tmp_path / "target", download=True)
    assert len(data) == 20
    target = tmp_path / "target"
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-batches-py"]  # archive and temp folder gone
    assert (target / "cifar-10-batches-py" / "test_batch").read_bytes() == small_batch


def test_download_of_a_damaged_archive_leaves_nothing(small_batch, tmp_path, monkeypatch):
    served = tmp_path / "server"
    served.mkdir()
    archive = _archive(small_batch)
    (served / "cifar-10-python.tar.gz").write_bytes(archive[: len(archive) // 2])
    with serve(served) as url:
        monkeypatch.setattr(cifar10, "URL", url + "cifar-10-python.tar.gz")
        monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5(archive))
        with pytest.raises(DatasetError, match="MD5 .* not the published"):
            load_dataset("cifar10", "test", tmp_path / "target", download=True)
    assert list((tmp_path / "target").iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DatasetError, match="Cannot download http://127.0.0.1:9/") as info:
        load_dataset("cifar10", "train", tmp_path, download=True)
    assert "--data-dir" in info.value.fix
    assert not any(Path(tmp_path).iterdir())
