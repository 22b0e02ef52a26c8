"""The splits a search selects on and fine-tunes on, and how a validation split is carved.

Torch-free: the search's settings name them without loading torch; ``nn2hw.data.load_dataset``
carves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nn2hw._checks import is_int
from nn2hw.errors import ConfigError

VALIDATION = "validation"
"""The split a search scores candidates on: a dataset's own, or carved from its training split."""
FIT = "fit"
"""The training images a search fine-tunes on: the training split less the carved validation images
(the whole training split of a dataset with a validation split of its own)."""


@dataclass(frozen=True)
class Holdout:
    """How a dataset without a validation split of its own sets one aside: ``size`` training images
    (an integer >= 1) or that fraction of them (a number in (0, 1)), drawn by a seeded permutation,
    so the same files always give the same validation and ``fit`` splits."""

    size: int | float
    seed: int = 0

    def __post_init__(self) -> None:
        count = is_int(self.size) and self.size >= 1
        fraction = isinstance(self.size, float) and 0.0 < self.size < 1.0
        if not (count or fraction):
            raise ConfigError(f"A validation size of {self.size!r} is neither a number of images (>= 1) nor a "
                              "fraction of the training split (between 0 and 1).",
                              "Give e.g. --validation-size 5000 or --validation-size 0.1.")

    def count(self, train_size: int) -> int:
        """Validation images out of ``train_size``; an error when none or no training image would remain."""
        count = int(self.size) if is_int(self.size) else round(train_size * float(self.size))
        if not 1 <= count < train_size:
            raise ConfigError(f"A validation split of {count} images out of {train_size} training images leaves "
                              f"{'no validation image' if count < 1 else 'no image to fine-tune on'}.",
                              f"Give --validation-size between 1 and {train_size - 1} (images) or a fraction such "
                              "as 0.1.")
        return count

    def indices(self, train_size: int, split: str) -> np.ndarray:
        """The sorted training-split indices of ``split`` (``VALIDATION`` or ``FIT``)."""
        order = np.random.default_rng(self.seed).permutation(train_size)
        count = self.count(train_size)
        return np.sort(order[:count] if split == VALIDATION else order[count:])

    def describe(self, train_size: int) -> str:
        """'5000 of the 60000 training images (seed 0)'."""
        return f"{self.count(train_size)} of the {train_size} training images (seed {self.seed})"
