"""Datasets as frozen records: images in [0, 1], labels, and whether the split is complete.

A ``Dataset`` hands out batches of float tensors ``[B, C, H, W]``; the per-model normalization
(mean/std from the zoo variant) is attached with ``normalized`` so that the evaluator never has to
know which model a dataset was prepared for. ``partial`` is derived from ``full_size``: a dataset
holding fewer images than its split has is partial, and every metric computed on it says so.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from nn2hw._checks import check_batch_size
from nn2hw.errors import ConfigError, DatasetError
from nn2hw.registry import Registry
from nn2hw.splits import FIT, VALIDATION, Holdout


@dataclass(frozen=True)
class Normalize:
    """Per-channel ``(x - mean) / std`` on images scaled to [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ConfigError(f"Normalization mean {self.mean} and std {self.std} differ in length.",
                              "Give one mean and one std per image channel.")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"Normalization std {self.std} has a value <= 0.", "Use positive std values.")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != len(self.mean):
            raise DatasetError(
                f"The images have {images.shape[1]} channels but the normalization has {len(self.mean)}.",
                "Evaluate the model on a dataset with the input channels of its zoo variant.",
            )
        mean = torch.tensor(self.mean, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std


@dataclass(frozen=True)
class Augment:
    """Training augmentation: random crop after zero padding, and random horizontal flip.

    Applied to a whole batch with an explicit ``torch.Generator`` so that a seeded run draws the
    same crops and flips every time (and a resumed training the same as an uninterrupted one).
    """

    crop_padding: int = 0
    flip: bool = False

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding:
            images = _random_crop(images, self.crop_padding, generator)
        if self.flip:
            flip = torch.rand(images.shape[0], generator=generator) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
        return images


NO_AUGMENT = Augment()


def _random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset per image."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(-1, c, -1, w + 2 * padding)
    picked = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(-1, c, h, -1)
    return picked.gather(3, cols)


class Dataset(ABC):
    """A labelled image split. Subclasses are frozen dataclasses with the fields below."""

    name: str
    split: str
    classes: tuple[str, ...]
    full_size: int
    source: str
    normalize: Normalize | None
    augment: Augment

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def labels(self) -> np.ndarray:
        """All labels (int64, one per image, in order)."""

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as the model sees it."""

    @abstractmethod
    def images(self, indices: np.ndarray) -> torch.Tensor:
        """Float32 images ``[len(indices), C, H, W]`` scaled to [0, 1], not normalized."""

    @abstractmethod
    def take(self, count: int) -> Dataset:
        """The first ``count`` images (a partial dataset when fewer than ``full_size``)."""

    @abstractmethod
    def subset(self, indices: np.ndarray, split: str) -> Dataset:
        """The images at ``indices`` as a complete split named ``split`` (a carved validation split)."""

    @property
    def partial(self) -> bool:
        """True when this dataset holds fewer images than its split has."""
        return len(self) < self.full_size

    @property
    def description(self) -> str:
        """'cifar10 test-partial: PARTIAL test set (1017 of 10000 images)' or 'fashion-mnist test: 10000 images'."""
        if self.partial:
            kind = "test" if self.split.startswith("test") else self.split
            return f"{self.name} {self.split}: PARTIAL {kind} set ({len(self)} of {self.full_size} images)"
        return f"{self.name} {self.split}: {len(self)} images"

    def normalized(self, normalize: Normalize | None) -> Dataset:
        """A copy whose batches are normalized with ``normalize`` (None: left in [0, 1])."""
        # every concrete Dataset is a frozen dataclass; the abstract base cannot say so to mypy
        return dataclasses.replace(self, normalize=normalize)  # type: ignore[type-var]

    def with_augment(self, augment: Augment) -> Dataset:
        """A copy that uses ``augment`` for training batches."""
        return dataclasses.replace(self, augment=augment)  # type: ignore[type-var]  # as in normalized

    def batch(self, indices: np.ndarray, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-ready ``(images, labels)``; with a ``generator`` the training augmentation is applied."""
        indices = np.asarray(indices, dtype=np.int64)
        images = self.images(indices)
        if generator is not None:
            images = self.augment(images, generator)
        if self.normalize is not None:
            images = self.normalize(images)
        return images, torch.from_numpy(self.labels[indices])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation batches in order, without augmentation."""
        check_batch_size(batch_size)
        for start in range(0, len(self), batch_size):
            yield self.batch(np.arange(start, min(start + batch_size, len(self))))


@dataclass(frozen=True, eq=False)
class ArrayDataset(Dataset):
    """A split held in memory: ``pixels`` uint8 ``[N, C, H, W]`` and ``targets`` int64 ``[N]``."""

    name: str
    split: str
    pixels: np.ndarray = field(repr=False)
    targets: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    full_size: int
    source: str
    normalize: Normalize | None = None
    augment: Augment = NO_AUGMENT

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4 or self.pixels.dtype != np.uint8:
            raise DatasetError(f"{self.name} {self.split}: pixels must be uint8 [N, C, H, W], got "
                               f"{self.pixels.dtype} {self.pixels.shape}.", "Rebuild the arrays from the files.")
        if len(self.targets) != len(self.pixels):
            raise DatasetError(f"{self.name} {self.split}: {len(self.pixels)} images but {len(self.targets)} labels.",
                               "The files do not belong together; fetch the split again.")
        if len(self.pixels) > self.full_size:
            raise DatasetError(f"{self.name} {self.split}: {len(self.pixels)} images, more than the split's "
                               f"{self.full_size}.", "Fetch the official files again.")

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def labels(self) -> np.ndarray:
        return self.targets

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape[1:])

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.pixels[indices]).float().div_(255.0)

    def take(self, count: int) -> ArrayDataset:
        return dataclasses.replace(self, pixels=self.pixels[:count], targets=self.targets[:count])

    def subset(self, indices: np.ndarray, split: str) -> ArrayDataset:
        return dataclasses.replace(self, split=split, pixels=self.pixels[indices], targets=self.targets[indices],
                                   full_size=len(indices))




class DatasetSource(Protocol):
    """What a registered dataset provides: its splits and a loader."""

    @property
    def name(self) -> str: ...

    @property
    def splits(self) -> tuple[str, ...]: ...

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of an image dataset; () for texts (their model's tokenizer gives them a shape)."""

    def load(self, split: str, data_dir: Path | None, download: bool) -> Dataset: ...


def default_holdout(source: DatasetSource) -> Holdout | None:
    """The validation split a source without one of its own carves from its training split: its
    ``holdout`` attribute (optional; None: none is carved by default)."""
    found = getattr(source, "holdout", None)
    return found if isinstance(found, Holdout) else None


def selection_splits(name: str) -> tuple[str, ...]:
    """Every split ``load_dataset`` gives for ``name``: its own, plus ``validation`` and ``fit``."""
    own = DATASETS.get(name).splits
    return (*own, *(s for s in (VALIDATION, FIT) if s not in own))


DATASETS: Registry[DatasetSource] = Registry("dataset", "nn2hw list datasets", builtins="nn2hw.data",
                                             group="nn2hw.datasets")


def load_dataset(name: str, split: str, data_dir: str | Path | None = None, download: bool = False,
                 holdout: Holdout | None = None) -> Dataset:
    """Load split ``split`` of the registered dataset ``name``.

    ``data_dir`` (when given) is the only folder looked at; otherwise each dataset searches its
    documented locations (see ``docs/datasets.md``). With ``download=True`` a missing dataset is
    fetched from its official URL into the cache (or ``data_dir``) with its checksum verified.
    ``validation`` and ``fit`` of a dataset without a validation split of its own are carved from
    its training split by ``holdout`` (default: the dataset's own, e.g. 5,000 Fashion-MNIST images).
    """
    source = DATASETS.get(name)
    folder = Path(data_dir).expanduser() if data_dir is not None else None
    if split not in selection_splits(name):
        raise ConfigError(f"Dataset {name!r} has no split {split!r}.",
                          f"Use one of: {', '.join(selection_splits(name))}.")
    if split in (VALIDATION, FIT):
        if VALIDATION in source.splits:
            if holdout is not None:
                raise ConfigError(f"Dataset {name!r} has a validation split of its own; a validation size "
                                  f"({holdout.size!r}) applies only to datasets that carve one from their training "
                                  "split.", "Leave the validation size unset for this dataset.")
            return source.load(VALIDATION if split == VALIDATION else "train", folder, download)
        return _carved(source, split, folder, download, holdout or default_holdout(source))
    return source.load(split, folder, download)


def _carved(source: DatasetSource, split: str, folder: Path | None, download: bool,
            holdout: Holdout | None) -> Dataset:
    """``split`` (validation or fit) cut from the source's training split by ``holdout``."""
    if holdout is None or "train" not in source.splits:
        raise ConfigError(f"Dataset {source.name!r} has no validation split and no training split to carve one "
                          "from.", "Select on its test split explicitly (nn2hw search --select-on-test; every "
                          "accuracy is then marked selected-on-test), or register a validation split for it.")
    train = source.load("train", folder, download)
    return train.subset(holdout.indices(len(train), split), split)
