"""What a zoo model expects of its inputs, applied to a dataset: its variant's normalization,
after checking that the images have the shape the variant takes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nn2hw.errors import DatasetError
from nn2hw.zoo.factory import entry

if TYPE_CHECKING:
    from nn2hw.data import Dataset


def prepare(data: Dataset, model_name: str) -> Dataset:
    """``data`` with the zoo normalization of ``model_name`` attached, after checking the input shape."""
    from nn2hw.data import Normalize

    variant = entry(model_name).variant(data.name)
    if tuple(variant.input_shape) != tuple(data.image_shape):
        raise DatasetError(
            f"{model_name} ({data.name} variant) takes inputs {tuple(variant.input_shape)} but {data.name} "
            f"{data.split} images are {tuple(data.image_shape)}.",
            "Use the dataset the model variant was trained on, or a model variant for this dataset.",
        )
    return data.normalized(Normalize(tuple(variant.mean), tuple(variant.std)))
