"""What a zoo model expects of its inputs, applied to a dataset: its variant's normalization,
after checking that the images have the shape the variant takes; for a sequence model, its
tokenizer at the sequence length."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nn2hw.errors import ConfigError, DatasetError
from nn2hw.zoo.factory import entry

if TYPE_CHECKING:
    from nn2hw.data import Dataset
    from nn2hw.data.text import Tokenize


def tokenizer(model_name: str, dataset: str | None = None, seq_len: int | None = None, *,
              download: bool = True) -> Tokenize:
    """The tokenizer of a sequence model's variant at ``seq_len`` tokens (its default when ``None``):
    its ``tokenizer.json`` found, or downloaded, and checked like its weights."""
    from nn2hw.data.text import Tokenize
    from nn2hw.zoo.checkpoints import resolve

    variant = entry(model_name).variant(dataset)
    if variant.tokenizer is None:
        raise ConfigError(f"{model_name} ({variant.dataset}) takes images, not text: it has no tokenizer.",
                          "Tokenize text for a sequence model (`nn2hw zoo list` shows each model's input).")
    return Tokenize(resolve((variant.tokenizer,), download=download), variant.shape_for(seq_len)[0])


def prepare(data: Dataset, model_name: str, seq_len: int | None = None, *, variant_name: str | None = None
            ) -> Dataset:
    """``data`` with the zoo normalization of ``model_name`` attached, after checking the input shape;
    a text dataset gets the model's tokenizer at ``seq_len`` tokens instead. ``variant_name``: the
    variant whose inputs to make (default: the one trained on ``data``; e.g. ``text``, the sentence
    encoder, fed another dataset's texts)."""
    from nn2hw.data import Normalize
    from nn2hw.data.text import TextDataset

    variant = entry(model_name).variant(variant_name or data.name)
    if isinstance(data, TextDataset) or variant.tokens:
        if not (isinstance(data, TextDataset) and variant.tokens):
            raise DatasetError(f"{model_name} ({data.name} variant) takes {'token ids' if variant.tokens else 'images'}"
                               f" but {data.name} holds {'texts' if isinstance(data, TextDataset) else 'images'}.",
                               "Use the dataset the model variant was trained on, or a model variant for this dataset.")
        return data.tokenized(tokenizer(model_name, variant.dataset, seq_len))
    if tuple(variant.input_shape) != tuple(data.image_shape):
        raise DatasetError(
            f"{model_name} ({data.name} variant) takes inputs {tuple(variant.input_shape)} but {data.name} "
            f"{data.split} images are {tuple(data.image_shape)}.",
            "Use the dataset the model variant was trained on, or a model variant for this dataset.",
        )
    return data.normalized(Normalize(tuple(variant.mean), tuple(variant.std)))
