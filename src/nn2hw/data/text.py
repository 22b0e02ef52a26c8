"""Text datasets: labelled texts, turned into token ids by the tokenizer of the model they feed.

A ``TextDataset`` holds strings and labels; like an image dataset gets its model's normalization,
a text dataset gets its model's tokenizer attached (``tokenized(Tokenize(path, tokens))``, done by
``nn2hw.zoo.prepare``), and its batches are then int64 token ids ``[B, tokens]`` (padded with the
tokenizer's pad id, truncated to ``tokens``). Tokenization goes through the ``tokenizers``
package (a ``tokenizer.json`` file); it is imported only when a tokenizer is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nn2hw.data.base import NO_AUGMENT, Augment, Dataset, Normalize
from nn2hw.errors import CheckpointError, ConfigError, DatasetError

TEXT_EXTRA = 'pip install "nn2hw[text]"'


@functools.lru_cache(maxsize=4)
def _load(path: Path, _stamp: tuple[int, int]) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("Tokenizing text needs the tokenizers package, which is not installed.",
                          f"Install it with {TEXT_EXTRA}.") from None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception on a bad file
        raise CheckpointError(f"{path} is not a readable tokenizer.json ({exc}).",
                              "Replace it with the tokenizer.json saved with the model (a Hugging Face "
                              "tokenizers file), or download it again.") from None


def load_tokenizer(path: str | Path) -> Any:
    """The ``tokenizers.Tokenizer`` stored in ``path`` (cached per file version)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Tokenizer file {path} does not exist.",
                              "Give the tokenizer.json saved with the model, or let the zoo find it "
                              "(`nn2hw zoo info MODEL` names where it looks).")
    stat = path.stat()
    return _load(path.resolve(), (stat.st_size, stat.st_mtime_ns))


@dataclass(frozen=True)
class Tokenize:
    """A tokenizer file and the fixed token count of the model's input."""

    path: Path
    tokens: int

    def __post_init__(self) -> None:
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 2:
            raise ConfigError(f"The token count must be an integer >= 2 ([CLS] and [SEP]), got {self.tokens!r}.",
                              "Use e.g. --seq-len 128.")

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """int64 token ids ``[len(texts), tokens]``: truncated to ``tokens``, padded to it."""
        tokenizer = load_tokenizer(self.path)
        padding = tokenizer.padding or {}
        pad_id = padding.get("pad_id", tokenizer.token_to_id("[PAD]") or 0)
        tokenizer.enable_truncation(max_length=self.tokens)
        tokenizer.enable_padding(length=self.tokens, pad_id=pad_id, pad_token=padding.get("pad_token", "[PAD]"))
        encoded = tokenizer.encode_batch(list(texts))
        return torch.tensor([e.ids for e in encoded], dtype=torch.int64).reshape(len(encoded), self.tokens)


@dataclass(frozen=True, eq=False)
class TextDataset(Dataset):
    """A split of labelled texts; batches are token ids once a ``Tokenize`` is attached."""

    name: str
    split: str
    texts: tuple[str, ...] = field(repr=False)
    targets: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    full_size: int
    source: str
    tokenize: Tokenize | None = None
    normalize: Normalize | None = None
    augment: Augment = NO_AUGMENT

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.targets):
            raise DatasetError(f"{self.name} {self.split}: {len(self.texts)} texts but {len(self.targets)} labels.",
                               "Rebuild the split from its source files.")
        if len(self.texts) > self.full_size:
            raise DatasetError(f"{self.name} {self.split}: {len(self.texts)} texts, more than the split's "
                               f"{self.full_size}.", "Rebuild the split from its source files.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labels(self) -> np.ndarray:
        return self.targets

    @property
    def image_shape(self) -> tuple[int, ...]:  # type: ignore[override]  # (tokens,) for a text input
        """(tokens,) once a tokenizer is attached, else () (texts have no fixed shape)."""
        return (self.tokenize.tokens,) if self.tokenize is not None else ()

    def images(self, indices: np.ndarray) -> torch.Tensor:
        """Token ids ``[len(indices), tokens]`` (int64); the model's tokenizer must be attached."""
        if self.tokenize is None:
            raise DatasetError(f"{self.name} holds texts and no tokenizer is attached, so it has no model inputs.",
                               "Prepare it for a model first: nn2hw.zoo.prepare(data, MODEL) (the CLI does "
                               "this), or data.tokenized(Tokenize(tokenizer_json, tokens)).")
        return self.tokenize([self.texts[i] for i in np.asarray(indices, dtype=np.int64)])

    def tokenized(self, tokenize: Tokenize | None) -> TextDataset:
        """A copy whose batches are token ids made by ``tokenize``."""
        return dataclasses.replace(self, tokenize=tokenize)

    def take(self, count: int) -> TextDataset:
        return dataclasses.replace(self, texts=self.texts[:count], targets=self.targets[:count])

    def subset(self, indices: np.ndarray, split: str) -> TextDataset:
        return dataclasses.replace(self, split=split, texts=tuple(self.texts[int(i)] for i in indices),
                                   targets=self.targets[indices], full_size=len(indices))
