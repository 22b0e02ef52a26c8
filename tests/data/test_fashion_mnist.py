"""Fashion-MNIST: IDX parsing, the documented search order, checks on load, download, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn2hw.data import fashion_mnist, load_dataset
from nn2hw.data.fashion_mnist import parse_idx
from nn2hw.errors import DatasetError
from tests.data.helpers import fake_fmnist, install_fake_fmnist, real_fmnist, write_files
from tests.http_server import serve


@pytest.fixture
def fake(monkeypatch, tmp_path) -> dict[str, bytes]:
    """A 12-image fake Fashion-MNIST whose sizes/MD5s replace the official ones; no other folder searched."""
    return install_fake_fmnist(monkeypatch, tmp_path, 12)


def test_raw_and_gz_files_load_the_same(fake, tmp_path):
    a = load_dataset("fashion-mnist", "test", write_files(tmp_path / "a", fake, compress=True))
    b = load_dataset("fashion-mnist", "test", write_files(tmp_path / "b", fake, compress=False))
    assert len(a) == 12 and a.image_shape == (1, 28, 28) and not a.partial
    assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.labels, b.labels)
    expected = np.frombuffer(fake["t10k-images-idx3-ubyte"], np.uint8, offset=16).reshape(12, 1, 28, 28)
    assert np.array_equal(a.pixels, expected)


def test_search_order_data_then_system_then_cache(fake, tmp_path):
    write_files(tmp_path / "cache" / "fashion-mnist", fake)
    assert load_dataset("fashion-mnist", "train").source == str(tmp_path / "cache" / "fashion-mnist")
    write_files(tmp_path / "system", fake)
    assert load_dataset("fashion-mnist", "train").source == str(tmp_path / "system")
    write_files(tmp_path / "data" / "fashion-mnist", fake)
    assert load_dataset("fashion-mnist", "train").source == str(tmp_path / "data" / "fashion-mnist")


def test_the_debian_location_is_a_searched_default():
    assert Path("/usr/share/datasets/fashion-mnist") in fashion_mnist.SYSTEM_DIRS
    assert Path("/usr/share/datasets/fashion-mnist") in fashion_mnist.search_folders()


def test_absent_data_dir_is_named(fake, tmp_path):
    with pytest.raises(DatasetError, match="folder .*nowhere does not exist") as info:
        load_dataset("fashion-mnist", "test", tmp_path / "nowhere")
    assert "apt-get install dataset-fashion-mnist" in info.value.fix and "--download" in info.value.fix


def test_incomplete_folder_names_the_missing_file_and_how_to_get_it(fake, tmp_path):
    folder = write_files(tmp_path / "half", fake, only=("t10k-images-idx3-ubyte",))
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", "test", folder)
    assert "lacks t10k-labels-idx1-ubyte" in info.value.cause
    assert "t10k-images" not in info.value.cause.split("lacks")[1]
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in info.value.fix
    assert "apt-get install dataset-fashion-mnist" in info.value.fix


def test_nothing_anywhere_lists_every_searched_folder(fake, tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", "train")
    for folder in (tmp_path / "data" / "fashion-mnist", tmp_path / "system", tmp_path / "cache" / "fashion-mnist"):
        assert f"{folder} (absent)" in info.value.cause


def test_truncated_gzip_and_truncated_raw_are_reported(fake, tmp_path):
    folder = write_files(tmp_path / "cut", fake)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-9])
    with pytest.raises(DatasetError, match="damaged or truncated gzip"):
        load_dataset("fashion-mnist", "test", folder)
    raw = write_files(tmp_path / "raw", fake, compress=False)
    (raw / "t10k-images-idx3-ubyte").write_bytes(fake["t10k-images-idx3-ubyte"][:1000])
    with pytest.raises(DatasetError, match=r"truncated: 1000 of 9424 bytes"):
        load_dataset("fashion-mnist", "test", raw)


def test_checksum_mismatch_is_reported(fake, tmp_path):
    folder = write_files(tmp_path / "bad", fake, compress=False)
    data = bytearray(fake["t10k-images-idx3-ubyte"])
    data[500] ^= 0xFF
    (folder / "t10k-images-idx3-ubyte").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="does not match the official t10k-images-idx3-ubyte.*MD5"):
        load_dataset("fashion-mnist", "test", folder)


def test_parse_idx_rejects_wrong_kind_and_bad_length():
    images = fake_fmnist(2)["t10k-images-idx3-ubyte"]
    with pytest.raises(DatasetError, match="not an IDX file of the expected kind"):
        parse_idx(images, fashion_mnist.IDX_LABELS)
    with pytest.raises(DatasetError, match="header announces"):
        parse_idx(images + b"\0", fashion_mnist.IDX_IMAGES)


def test_download_from_a_local_server_into_the_cache(fake, tmp_path, monkeypatch):
    served = write_files(tmp_path / "server", fake)
    with serve(served) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        data = load_dataset("fashion-mnist", "test", download=True)
    cache = tmp_path / "cache" / "fashion-mnist"
    assert data.source == str(cache) and len(data) == 12
    assert sorted(p.name for p in cache.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_with_a_wrong_checksum_keeps_nothing(fake, tmp_path, monkeypatch):
    served = write_files(tmp_path / "server", fake)
    monkeypatch.setitem(fashion_mnist._FILES, "t10k-images-idx3-ubyte",
                        (*fashion_mnist._FILES["t10k-images-idx3-ubyte"][:2], "0" * 32))
    with serve(served) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetError, match="not the published 0{32}"):
            load_dataset("fashion-mnist", "test", tmp_path / "target", download=True)
    assert list((tmp_path / "target").iterdir()) == []


def test_real_test_split():
    data = real_fmnist("test")
    assert (len(data), data.full_size, data.partial, data.image_shape) == (10000, 10000, False, (1, 28, 28))
    assert np.bincount(data.labels).tolist() == [1000] * 10  # the official test set is balanced
    assert data.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # first labels of t10k-labels-idx1-ubyte


def test_real_train_split():
    data = real_fmnist("train")
    assert (len(data), data.partial) == (60000, False)
    assert np.bincount(data.labels).tolist() == [6000] * 10
