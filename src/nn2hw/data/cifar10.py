"""CIFAR-10 from the official python batches, plus the evaluation-only ``test-partial`` split.

Splits: ``train`` (data_batch_1..5, 50,000 images), ``test`` (test_batch, 10,000) and
``test-partial`` (``partial/cifar10_test_first1017.npz``: the first 1017 official test images,
recovered from a truncated copy of test_batch). ``test-partial`` is always flagged partial
(1017 of 10000 images) and its accuracy is never the full test figure.

Searched folders, in order: ``data_dir`` (only it, when given), ``$NN2HW_DATA/cifar10``, then the
download cache ``$NN2HW_CACHE/cifar10``. Each folder holds ``cifar-10-batches-py/`` (the folder the
official archive extracts to) and optionally ``partial/``; a ``data_dir`` may also be the
``cifar-10-batches-py`` folder itself. Sizes and MD5s are the official ones (the same values as
torchvision publishes), checked on every load.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nn2hw.data._files import DataFile, HowToGet, locate, missing_error, read_verified, require_folder
from nn2hw.data.base import DATASETS, ArrayDataset, Augment, Dataset
from nn2hw.data.download import download as fetch
from nn2hw.errors import DatasetError
from nn2hw.paths import cache_root, search_dirs
from nn2hw.splits import Holdout

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_FOLDER = "cifar-10-batches-py"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGES_PER_BATCH = 10_000
TEST_SIZE = 10_000

# Official sizes and MD5s (../shared/data/cifar10/SOURCE.md; identical to torchvision's list).
TRAIN_FILES = (
    DataFile("data_batch_1", 31035704, "c99cafc152244af753f735de768cd75f"),
    DataFile("data_batch_2", 31035320, "d4bba439e000b95fd0a9bffe97cbabec"),
    DataFile("data_batch_3", 31035999, "54ebc095f3ab1f0389bbae665268c751"),
    DataFile("data_batch_4", 31035696, "634d18415352ddfa80567beed471001a"),
    DataFile("data_batch_5", 31035623, "482c414d41f54cd18b22e5b47cb7c3cb"),
)
TEST_FILES = (DataFile("test_batch", 31035526, "40351d587109b95175f43aff81a1287e"),)
# Derived file (its provenance is in ../shared/data/cifar10/SOURCE.md).
PARTIAL_FILE = DataFile("cifar10_test_first1017.npz", 3134730, "7e333d5863a577d5e734f7f2a2b9cf39")
PARTIAL_FOLDER = "partial"

HOW = HowToGet(
    "CIFAR-10",
    f"Download {URL} (MD5 {ARCHIVE_MD5}) and extract it so that {BATCH_FOLDER}/ sits in the data folder, or "
    "rerun with --download (download=True) to fetch and verify it into the cache. Copies of the batches found "
    "in public git repositories are truncated and do not work. Without the full files, evaluate on "
    "--split test-partial (1017 images, reported as partial).",
)
PARTIAL_HOW = HowToGet(
    "CIFAR-10 partial test",
    f"Set NN2HW_DATA to the shared data folder (it holds cifar10/{PARTIAL_FOLDER}/{PARTIAL_FILE.name}) or pass "
    "--data-dir with that cifar10 folder; for the full test set use --split test with the official archive.",
)


@dataclass(frozen=True)
class Cifar10:
    """The registered ``cifar10`` dataset source."""

    name: str = "cifar10"
    splits: tuple[str, ...] = ("train", "test", "test-partial")
    image_shape: tuple[int, int, int] = (3, 32, 32)
    augment: Augment = Augment(crop_padding=4, flip=True)
    holdout: Holdout = Holdout(5000)
    """The validation split a search scores on: 5,000 of the 50,000 training images."""

    def load(self, split: str, data_dir: Path | None, download: bool) -> Dataset:
        if not download:
            require_folder(data_dir, HOW)
        roots = [data_dir] if data_dir is not None else search_dirs(self.name)
        if split == "test-partial":
            return self._partial(roots)
        files = TRAIN_FILES if split == "train" else TEST_FILES
        folders = [folder for root in roots for folder in _batch_folders(root)]
        found = locate(files, folders)
        if found is None and download:
            target = data_dir if data_dir is not None else cache_root() / self.name
            download_archive(target)
            found = locate(files, [target / BATCH_FOLDER])
        if found is None:
            raise missing_error(split, files, folders, HOW)
        folder, paths = found
        parts = [_parse_batch(read_verified(paths[f.name], f, HOW), paths[f.name]) for f in files]
        pixels = np.concatenate([p for p, _ in parts]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([lab for _, lab in parts])
        full = IMAGES_PER_BATCH * len(files)
        return ArrayDataset(self.name, split, pixels, labels, CLASSES, full, str(folder), augment=self.augment)

    def _partial(self, roots: list[Path]) -> Dataset:
        folders = [folder for root in roots for folder in (root / PARTIAL_FOLDER, root)]
        found = locate([PARTIAL_FILE], folders)
        if found is None:
            raise missing_error("test-partial", [PARTIAL_FILE], folders, PARTIAL_HOW)
        _folder, paths = found
        path = paths[PARTIAL_FILE.name]
        with np.load(io.BytesIO(read_verified(path, PARTIAL_FILE, PARTIAL_HOW))) as archive:
            data, labels = archive["data"], archive["labels"].astype(np.int64)
        pixels = data.reshape(-1, 3, 32, 32)
        # The file keeps all 10000 test labels; images exist for the first len(data) only.
        return ArrayDataset(self.name, "test-partial", pixels, labels[: len(pixels)], CLASSES, TEST_SIZE,
                            str(path), augment=self.augment)


def _batch_folders(root: Path) -> list[Path]:
    """A root holds ``cifar-10-batches-py/``, or is that folder itself."""
    return [root / BATCH_FOLDER, root] if root.name != BATCH_FOLDER else [root]


def _parse_batch(raw: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 [N, 3072], labels int64 [N]) from one verified python batch."""
    try:
        batch = pickle.loads(raw, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path} is not a CIFAR-10 python batch ({exc}).", HOW.instructions) from None
    return data, labels


def download_archive(target: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Download the official archive into ``target``, verify it and extract ``cifar-10-batches-py/``.

    Extraction goes to a temporary folder next to the target and each file is then renamed into
    place, so an interrupted run leaves no half-written batch. The archive is deleted afterwards.
    """
    url, md5 = url or URL, md5 or ARCHIVE_MD5
    target.mkdir(parents=True, exist_ok=True)
    archive = fetch(url, target / "cifar-10-python.tar.gz", md5)
    final = target / BATCH_FOLDER
    with tempfile.TemporaryDirectory(dir=target, prefix=".extract-") as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(BATCH_FOLDER + "/")]
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DatasetError(f"Cannot extract {archive}: {exc}.", f"Delete it and download {url} again.") from None
        if not members:
            raise DatasetError(f"{archive} holds no {BATCH_FOLDER}/ folder.", f"Download {url} again.")
        final.mkdir(exist_ok=True)
        for extracted in sorted((Path(tmp) / BATCH_FOLDER).iterdir()):
            os.replace(extracted, final / extracted.name)
    archive.unlink()
    return final


DATASETS.register("cifar10", Cifar10())
