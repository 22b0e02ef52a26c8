"""Fashion-MNIST from the IDX files (gzip-compressed or raw).

Splits: ``train`` (60,000 images) and ``test`` (10,000), 1x28x28 grayscale, 10 classes.
Searched folders, in order: ``data_dir`` (only it, when given), ``$NN2HW_DATA/fashion-mnist``,
the Debian package location ``/usr/share/datasets/fashion-mnist`` (``apt-get install
dataset-fashion-mnist``), then the download cache ``$NN2HW_CACHE/fashion-mnist``.

Checksums: the official README (github.com/zalandoresearch/fashion-mnist) publishes the MD5 of each
``.gz`` file; downloads are checked against those. Debian recompresses the files, so on load the
MD5 of the *uncompressed* IDX bytes is checked instead (values as published alongside the
official ones by several loaders, and matching the decompressed official files).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nn2hw.data._files import DataFile, HowToGet, locate, missing_error, read_verified, require_folder
from nn2hw.data.base import DATASETS, ArrayDataset, Augment, Dataset
from nn2hw.data.download import download as fetch
from nn2hw.errors import DatasetError
from nn2hw.paths import cache_root, data_root
from nn2hw.splits import Holdout

BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)  # Debian dataset-fashion-mnist
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# name -> (uncompressed size, MD5 of the uncompressed IDX, MD5 of the official .gz download)
_FILES = {
    "train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a", "bef4ecab320f06d8554ea6380940ec79"),
    "t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310"),
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZE = {"train": 60_000, "test": 10_000}
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801

HOW = HowToGet(
    "Fashion-MNIST",
    "Install the Debian package (apt-get install dataset-fashion-mnist, which puts the files in "
    "/usr/share/datasets/fashion-mnist), download the four .gz files from " + BASE_URL + " "
    "(listed with their MD5s at github.com/zalandoresearch/fashion-mnist) into the data folder, or rerun with "
    "--download (download=True).",
)


def data_file(name: str) -> DataFile:
    size, raw_md5, _ = _FILES[name]
    return DataFile(name, size, raw_md5, gz_ok=True)


def search_folders() -> list[Path]:
    """$NN2HW_DATA/fashion-mnist, the Debian location, then the cache (documented order)."""
    root = data_root()
    return ([root / "fashion-mnist"] if root else []) + list(SYSTEM_DIRS) + [cache_root() / "fashion-mnist"]


@dataclass(frozen=True)
class FashionMnist:
    """The registered ``fashion-mnist`` dataset source."""

    name: str = "fashion-mnist"
    splits: tuple[str, ...] = ("train", "test")
    image_shape: tuple[int, int, int] = (1, 28, 28)
    augment: Augment = Augment(crop_padding=2, flip=True)
    holdout: Holdout = Holdout(5000)
    """The validation split a search scores on: 5,000 of the 60,000 training images."""

    def load(self, split: str, data_dir: Path | None, download: bool) -> Dataset:
        if not download:
            require_folder(data_dir, HOW)
        files = [data_file(n) for n in SPLIT_FILES[split]]
        folders = [data_dir] if data_dir is not None else search_folders()
        found = locate(files, folders)
        if found is None and download:
            target = data_dir if data_dir is not None else cache_root() / self.name
            for spec in files:
                fetch(BASE_URL + spec.name + ".gz", target / (spec.name + ".gz"), _FILES[spec.name][2])
            found = locate(files, [target])
        if found is None:
            raise missing_error(split, files, folders, HOW)
        folder, paths = found
        images_path, labels_path = (paths[f.name] for f in files)
        pixels, labels = _load_pair(images_path, labels_path, _stamp(images_path), _stamp(labels_path))
        return ArrayDataset(self.name, split, pixels, labels, CLASSES, SPLIT_SIZE[split], str(folder),
                            augment=self.augment)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _load_pair(images_path: Path, labels_path: Path, *_stamps: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Verified (pixels uint8 [N, 1, 28, 28], labels int64 [N]); cached per file version (size, mtime)."""
    images = parse_idx(read_verified(images_path, data_file(_canonical(images_path)), HOW), IDX_IMAGES, images_path)
    labels = parse_idx(read_verified(labels_path, data_file(_canonical(labels_path)), HOW), IDX_LABELS, labels_path)
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels.",
                           HOW.instructions)
    pixels = images.reshape(len(images), 1, *images.shape[1:])
    pixels.flags.writeable = False
    labels = labels.astype(np.int64)
    labels.flags.writeable = False
    return pixels, labels


def _canonical(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def parse_idx(raw: bytes, magic: int, path: Path | str = "<bytes>") -> np.ndarray:
    """A uint8 IDX array: big-endian magic (0x0803 images, 0x0801 labels), dims, then the data."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetError(f"{path} is not an IDX file of the expected kind (magic {magic:#010x}).",
                           "Check that images and labels files were not swapped or renamed. " + HOW.instructions)
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise DatasetError(f"{path} holds {len(raw) - header} data bytes but its header announces {dims}.",
                           "The file is damaged; get a fresh copy. " + HOW.instructions)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


DATASETS.register("fashion-mnist", FashionMnist())
