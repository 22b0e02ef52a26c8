"""Zoo records: what a model is, which inputs it takes and where its weights come from.

Plain frozen dataclasses with no torch, so that listing the zoo, resolving a dataset variant or
printing checkpoint sources costs nothing. Building the network is ``nn2hw.zoo.build``'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nn2hw.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)

_HEX = re.compile(r"[0-9a-f]+")
_NAME_PREFIX = re.compile(r"-([0-9a-f]{8,})\.[A-Za-z0-9]+$")  # torch.hub: "<name>-<sha256 prefix>.<ext>"


def hash_prefix_of(file_name: str) -> str:
    """The sha256 prefix a torch.hub-style file name embeds ('resnet18-f37072fd.pth' -> 'f37072fd'), or ''."""
    match = _NAME_PREFIX.search(file_name)
    return match.group(1) if match else ""


@dataclass(frozen=True)
class CheckpointSource:
    """One published checkpoint file and how to get it.

    ``sha256`` is the full hex digest when it is known (``checksum_note`` says where it was
    found); otherwise it is empty and the file is verified by the sha256 prefix that its name
    embeds (torch.hub convention). ``local_path`` is relative to ``NN2HW_DATA``; ``packaged``
    names a file shipped inside ``nn2hw/zoo/checkpoints/``. ``transform`` documents what loading
    does to the stored object before ``load_state_dict(strict=True)``.
    """

    url: str
    file_name: str
    sha256: str = ""
    checksum_note: str = ""
    local_path: str = ""
    packaged: str = ""
    transform: str = ""

    def __post_init__(self) -> None:
        if not self.file_name or "/" in self.file_name or "\\" in self.file_name:
            raise ConfigError(f"Checkpoint file name {self.file_name!r} must be a bare file name.",
                              "Give the name only; put folders in local_path.")
        if self.sha256 and (len(self.sha256) != 64 or not _HEX.fullmatch(self.sha256)):
            raise ConfigError(f"Checkpoint {self.file_name}: sha256 must be 64 lowercase hex digits, "
                              f"got {self.sha256!r}.", "Give the full digest, or leave it empty to verify by "
                              "the prefix in the file name.")
        prefix = hash_prefix_of(self.file_name)
        if not self.sha256 and not prefix:
            raise ConfigError(f"Checkpoint {self.file_name} has neither a sha256 nor a hash prefix in its name, "
                              "so it could not be verified.", "Record its full sha256.")
        if self.sha256 and prefix and not self.sha256.startswith(prefix):
            raise ConfigError(f"Checkpoint {self.file_name}: sha256 {self.sha256} does not start with the "
                              f"prefix {prefix} in its file name.", "Check the recorded digest.")
        if not self.url and not self.local_path and not self.packaged:
            raise ConfigError(f"Checkpoint {self.file_name} has no URL, local path or packaged file.",
                              "Say where the file can be found.")

    @property
    def expected_hash(self) -> str:
        """What a file must hash to: the full digest, else the file-name prefix (a leading match)."""
        return self.sha256 or hash_prefix_of(self.file_name)

    @property
    def full_hash(self) -> bool:
        return bool(self.sha256)


@dataclass(frozen=True)
class ZooVariant:
    """A model trained (or to be trained) on one dataset: input, classes, normalization, weights."""

    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocessing: str
    sources: tuple[CheckpointSource, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        object.__setattr__(self, "sources", tuple(self.sources))
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"A zoo variant needs a dataset name, got {self.dataset!r}.",
                              "Name a registered dataset (`nn2hw list datasets`).")
        if len(self.input_shape) != 3 or any(not isinstance(s, int) or s < 1 for s in self.input_shape):
            raise ConfigError(f"Input shape {self.input_shape} is not (C, H, W) of positive integers.",
                              "Give the input as (channels, height, width).")
        if len(self.mean) != self.input_shape[0] or len(self.std) != self.input_shape[0]:
            raise ConfigError(f"{self.dataset}: mean/std need one value per input channel "
                              f"({self.input_shape[0]}).", "Give per-channel statistics.")

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def pretrained(self) -> bool:
        """Whether any published or packaged weights exist for this variant."""
        return bool(self.sources)


@dataclass(frozen=True)
class ZooEntry:
    """A registered architecture with its dataset variants.

    ``factory`` is ``'module:function'``; the function takes ``in_channels``, ``num_classes`` and
    the keyword ``options`` and returns the ``nn.Module``. The first variant is the default.
    """

    name: str
    family: str
    description: str
    factory: str
    variants: tuple[ZooVariant, ...]
    options: tuple[tuple[str, Any], ...] = ()
    notes: str = ""
    references: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "references", tuple(self.references))
        if not self.variants:
            raise ConfigError(f"Zoo entry {self.name!r} has no dataset variant.", "Give at least one variant.")
        datasets = [v.dataset for v in self.variants]
        if len(set(datasets)) != len(datasets):
            raise ConfigError(f"Zoo entry {self.name!r} lists a dataset twice: {datasets}.",
                              "Give one variant per dataset.")
        if ":" not in self.factory:
            raise ConfigError(f"Zoo entry {self.name!r}: factory {self.factory!r} is not 'module:function'.",
                              "Name the builder as 'package.module:function'.")

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(v.dataset for v in self.variants)

    @property
    def default_dataset(self) -> str:
        return self.variants[0].dataset

    def variant(self, dataset: str | None = None) -> ZooVariant:
        """The variant for ``dataset`` (the default one when ``None``)."""
        if dataset is None:
            return self.variants[0]
        for v in self.variants:
            if v.dataset == dataset:
                return v
        from nn2hw.errors import UnknownNameError
        from nn2hw.registry import suggest

        raise UnknownNameError(
            f"Model {self.name!r} has no {dataset!r} variant.{suggest(dataset, list(self.datasets))}",
            f"Use --dataset {' or '.join(self.datasets)}; `nn2hw zoo list` shows every model's datasets.",
        )
