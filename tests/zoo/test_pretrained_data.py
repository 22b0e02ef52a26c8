"""The shared CIFAR-10 checkpoints load through the zoo (checksum + strict keys) and really work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn2hw import zoo
from nn2hw.zoo.checkpoints import file_sha256, resolve

pytestmark = pytest.mark.data
CIFAR_RESNETS = ["resnet20", "resnet32", "resnet44", "resnet56"]


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """Prove the files come from NN2HW_DATA, not from a cache or a download."""
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", CIFAR_RESNETS)
def test_shared_checkpoint_resolves_verifies_and_loads_strictly(shared_data, name):
    source = zoo.entry(name).variant("cifar10").sources[0]
    path = resolve([source])
    assert path == shared_data / source.local_path
    assert file_sha256(path) == source.sha256  # the full digest, from SOURCE.md
    model = zoo.build(name, "cifar10", pretrained=True)  # load_state_dict(strict=True) inside
    assert float(model.bn1.running_var.mean()) != 1.0  # running statistics came from the file


def test_resnet20_classifies_real_cifar10_images(shared_data):
    # first 8 images of the genuine test set (NN2HW_DATA/cifar10/partial, see its SOURCE.md)
    batch = np.load(shared_data / "cifar10" / "partial" / "cifar10_test_first1017.npz")
    images = torch.from_numpy(batch["data"][:8]).float().div(255).view(8, 3, 32, 32)
    labels = torch.from_numpy(batch["labels"][:8]).long()
    variant = zoo.entry("resnet20").variant("cifar10")
    mean, std = torch.tensor(variant.mean).view(1, 3, 1, 1), torch.tensor(variant.std).view(1, 3, 1, 1)
    model = zoo.build("resnet20", pretrained=True).eval()
    with torch.no_grad():
        predicted = model((images - mean) / std).argmax(1)
    assert int((predicted == labels).sum()) >= 6
