"""ImageNet-style ImageFolder trees: ``<root>/<split>/<class>/<image>``, decoded with Pillow.

Classes are the sub-folder names in sorted order (label = index), as ImageNet tools expect.
Images are decoded on demand for each batch: RGB, shorter side resized to ``resize`` (bilinear),
centre crop ``crop`` x ``crop`` (the standard 256/224 evaluation preprocessing). Pillow is the
optional ``imagenet`` extra (``pip install 'nn2hw[imagenet]'``).

The registered ``imagenet`` dataset looks in ``data_dir`` (only it, when given), else in
``$NN2HW_DATA/imagenet``; split ``train`` is ``train/`` and split ``test`` is ``val/`` (ImageNet's
labelled evaluation set; a ``test/`` folder is used when there is no ``val/``). ImageNet cannot be
downloaded automatically (it needs a registered account), so ``download=True`` explains that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nn2hw.data.base import DATASETS, Augment, Dataset, Normalize
from nn2hw.errors import DatasetError
from nn2hw.paths import data_root
from nn2hw.splits import Holdout

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"})
SPLIT_FOLDERS = {"train": ("train",), "test": ("val", "test")}
FIX = ("Arrange the images as <data-dir>/<split>/<class>/<image> (split folders train/ and val/, one folder per "
       "class) and pass --data-dir, or set NN2HW_DATA to a folder holding imagenet/. ImageNet itself needs an "
       "account at image-net.org; any ImageFolder tree of your own works the same way.")

@dataclass(frozen=True, eq=False)
class ImageFolderDataset(Dataset):
    """Images listed from class folders and decoded lazily, one batch at a time."""

    name: str
    split: str
    paths: tuple[Path, ...] = field(repr=False)
    targets: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    full_size: int
    source: str
    resize: int = 256
    crop: int = 224
    normalize: Normalize | None = None
    augment: Augment = Augment(flip=True)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> np.ndarray:
        return self.targets

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.crop, self.crop)

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return torch.stack([self._decode(self.paths[int(i)]) for i in indices])

    def take(self, count: int) -> ImageFolderDataset:
        return dataclasses.replace(self, paths=self.paths[:count], targets=self.targets[:count])

    def subset(self, indices: np.ndarray, split: str) -> ImageFolderDataset:
        return dataclasses.replace(self, split=split, paths=tuple(self.paths[int(i)] for i in indices),
                                   targets=self.targets[indices], full_size=len(indices))

    def _decode(self, path: Path) -> torch.Tensor:
        image_module = _pillow()
        try:
            with image_module.open(path) as image:
                image = image.convert("RGB")
                width, height = image.size
                scale = self.resize / min(width, height)
                size = (max(self.crop, round(width * scale)), max(self.crop, round(height * scale)))
                image = image.resize(size, image_module.Resampling.BILINEAR)
                left, top = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
                image = image.crop((left, top, left + self.crop, top + self.crop))
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"Cannot decode the image {path}: {exc}.",
                               "Remove or replace the damaged file (or re-extract the dataset).") from None
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("Decoding ImageFolder images needs Pillow, which is not installed.",
                           "pip install 'nn2hw[imagenet]' (or pip install pillow).") from None
    return Image


def load_image_folder(folder: str | Path, name: str = "imagefolder", split: str = "test", resize: int = 256,
                      crop: int = 224) -> ImageFolderDataset:
    """An ``ImageFolderDataset`` of ``folder/<class>/<image>`` (every image file found, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"The image folder {folder} does not exist.", FIX)
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise DatasetError(f"{folder} has no class sub-folders.", FIX)
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DatasetError(f"The class folders of {folder} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))}).",
                           FIX)
    _pillow()
    return ImageFolderDataset(name, split, tuple(paths), np.asarray(labels, dtype=np.int64), classes, len(paths),
                              str(folder), resize=resize, crop=crop)


@dataclass(frozen=True)
class ImageNet:
    """The registered ``imagenet`` dataset source (an ImageFolder tree)."""

    name: str = "imagenet"
    splits: tuple[str, ...] = ("train", "test")
    image_shape: tuple[int, int, int] = (3, 224, 224)
    holdout: Holdout = Holdout(10_000)
    """The validation split a search scores on: 10,000 training images (the ``test`` split is val/)."""

    def load(self, split: str, data_dir: Path | None, download: bool) -> Dataset:
        if download:
            raise DatasetError("ImageNet cannot be downloaded automatically (its licence needs an account).",
                               FIX)
        root = data_dir if data_dir is not None else (shared / "imagenet" if (shared := data_root()) else None)
        if root is None:
            raise DatasetError("No ImageNet folder given and NN2HW_DATA is not set.", FIX)
        if not root.is_dir():
            raise DatasetError(f"The ImageNet folder {root} does not exist.", FIX)
        for sub in SPLIT_FOLDERS[split]:
            if (root / sub).is_dir():
                return load_image_folder(root / sub, self.name, split)
        wanted = " or ".join(f"{root / sub}/" for sub in SPLIT_FOLDERS[split])
        raise DatasetError(f"The ImageNet folder {root} has no {split} split: {wanted} is missing.", FIX)


DATASETS.register("imagenet", ImageNet())
