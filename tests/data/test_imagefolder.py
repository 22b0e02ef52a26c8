"""ImageFolder trees (ImageNet layout) decoded with Pillow: resize 256, centre crop 224."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn2hw.data import load_dataset, load_image_folder
from nn2hw.errors import DatasetError

Image = pytest.importorskip("PIL.Image", reason="Pillow (the 'imagenet' extra) is not installed")


def _tree(root: Path, sizes=((300, 260), (260, 400))) -> Path:
    for cls, colour in (("n01440764", (255, 0, 0)), ("n01443537", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, colour).save(root / cls / f"img{i}.png")
    return root


def test_classes_are_sorted_folders_and_images_are_cropped(tmp_path):
    data = load_image_folder(_tree(tmp_path / "val"))
    assert data.classes == ("n01440764", "n01443537") and data.labels.tolist() == [0, 0, 1, 1]
    images, _labels = data.batch(np.arange(4))
    assert images.shape == (4, 3, 224, 224) and not data.partial
    assert images[0, 0].mean().item() == pytest.approx(1.0) and images[0, 2].mean().item() == pytest.approx(0.0)
    assert images[3, 2].mean().item() == pytest.approx(1.0)


def test_imagenet_split_folders(tmp_path):
    _tree(tmp_path / "imagenet" / "val")
    _tree(tmp_path / "imagenet" / "train", sizes=((256, 256),))
    assert len(load_dataset("imagenet", "test", tmp_path / "imagenet")) == 4
    assert len(load_dataset("imagenet", "train", tmp_path / "imagenet")) == 2


def test_missing_and_empty_trees_are_explained(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="does not exist") as info:
        load_dataset("imagenet", "test", tmp_path / "nowhere")
    assert "<data-dir>/<split>/<class>/<image>" in info.value.fix
    (tmp_path / "imagenet" / "train" / "n0").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no test split"):
        load_dataset("imagenet", "test", tmp_path / "imagenet")
    with pytest.raises(DatasetError, match="hold no images"):
        load_dataset("imagenet", "train", tmp_path / "imagenet")
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_dataset("imagenet", "test", tmp_path, download=True)
    monkeypatch.delenv("NN2HW_DATA", raising=False)
    with pytest.raises(DatasetError, match="NN2HW_DATA is not set"):
        load_dataset("imagenet", "test")


def test_damaged_image_is_named(tmp_path):
    root = _tree(tmp_path / "val")
    (root / "n01440764" / "img0.png").write_bytes(b"not a png")
    data = load_image_folder(root)
    with pytest.raises(DatasetError, match="Cannot decode the image .*img0.png"):
        data.batch(np.arange(1))
