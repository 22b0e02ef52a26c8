"""Dataset records, augmentation, normalization and the dataset registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn2hw.data import DATASETS, ArrayDataset, Augment, Normalize, load_dataset
from nn2hw.errors import ConfigError, DatasetError, UnknownNameError
from nn2hw.testing.datasets import DatasetContract


def _data(n: int = 6, full: int | None = None) -> ArrayDataset:
    pixels = np.arange(n * 2 * 4 * 4, dtype=np.uint8).reshape(n, 2, 4, 4)
    return ArrayDataset("toy", "test", pixels, np.arange(n) % 3, ("a", "b", "c"), full or n, "memory")


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar10'"):
        load_dataset("cifar-10", "test")


def test_partial_follows_the_image_count():
    assert not _data().partial
    part = _data(6, full=10)
    assert part.partial and part.description == "toy test: PARTIAL test set (6 of 10 images)"
    assert _data().take(2).partial and len(_data().take(2)) == 2
    with pytest.raises(DatasetError, match="more than the split's"):
        _data(6, full=5)


def test_batches_scale_and_normalize():
    data = _data().normalized(Normalize((0.5, 0.25), (0.5, 2.0)))
    images, labels = data.batch(np.array([1, 0]))
    raw = torch.from_numpy(_data().pixels[[1, 0]]).float() / 255
    assert torch.allclose(images[:, 0], (raw[:, 0] - 0.5) / 0.5)
    assert torch.allclose(images[:, 1], (raw[:, 1] - 0.25) / 2)
    assert labels.tolist() == [1, 0] and labels.dtype == torch.int64
    assert [len(y) for _, y in data.batches(4)] == [4, 2]
    with pytest.raises(DatasetError, match="2 channels but the normalization has 1"):
        _data().normalized(Normalize((0.5,), (0.5,))).batch(np.array([0]))
    with pytest.raises(ConfigError, match="std"):
        Normalize((0.5,), (0.0,))


def test_random_crop_is_a_shift_of_the_zero_padded_image():
    images = torch.rand(64, 2, 5, 6)
    crops = Augment(crop_padding=2)(images, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(64):
        windows = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(padded[i, :, dy:dy + 5, dx:dx + 6],
                                                                                     crops[i])]
        assert windows, f"crop {i} is not a window of the padded image"
    assert not torch.equal(crops, images)  # some crops are shifted


def test_augmentation_is_seeded_and_flip_mirrors():
    images = torch.rand(32, 1, 4, 4)
    aug = Augment(crop_padding=1, flip=True)
    a = aug(images, torch.Generator().manual_seed(7))
    b = aug(images, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and not torch.equal(a, aug(images, torch.Generator().manual_seed(8)))
    flipped = Augment(flip=True)(images, torch.Generator().manual_seed(0))
    same = [torch.equal(flipped[i], images[i]) for i in range(32)]
    mirrored = [torch.equal(flipped[i], images[i].flip(2)) for i in range(32)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)


class TestEveryDataset(DatasetContract):
    @pytest.fixture(params=DATASETS.names())
    def dataset(self, request):
        return request.param
