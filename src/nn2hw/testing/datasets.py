"""The dataset conformance suite: declared splits and shapes, clear refusals, consistent batches.

Subclass ``DatasetContract`` and give the ``dataset`` fixture (a registered name)::

    class TestMyDataset(DatasetContract):
        @pytest.fixture
        def dataset(self):
            return "my-dataset"

The loading check needs the data: without it (a ``DatasetError``) it is skipped with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn2hw.data import DATASETS, load_dataset
from nn2hw.errors import ConfigError, DatasetError


class DatasetContract:
    """Splits and image shape declared (a text dataset: none, its model's tokenizer shapes it); an unknown
    split refused; a loaded split is consistent."""

    def test_declares_itself(self, dataset: str) -> None:
        source = DATASETS.get(dataset)
        assert source.name == dataset and "test" in source.splits
        if getattr(source, "input_dtype", "float32") == "text":  # texts: shaped by the model's tokenizer
            assert tuple(source.image_shape) == ()
            return
        assert len(source.image_shape) == 3 and all(int(s) > 0 for s in source.image_shape)

    def test_an_unknown_split_is_refused(self, dataset: str) -> None:
        with pytest.raises(ConfigError, match="no split 'no-such-split'"):
            load_dataset(dataset, "no-such-split")

    def test_the_test_split_is_consistent(self, dataset: str) -> None:
        source = DATASETS.get(dataset)
        try:
            data = load_dataset(dataset, "test")
        except DatasetError as exc:
            pytest.skip(f"{dataset} test split not available here: {exc.cause}")
        assert len(data) > 0 and len(data) <= data.full_size and data.partial == (len(data) < data.full_size)
        assert tuple(data.image_shape) == tuple(source.image_shape) and data.classes
        labels = data.labels
        assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < len(data.classes)
        if getattr(source, "input_dtype", "float32") == "text":
            texts = data.texts  # type: ignore[attr-defined]  # a TextDataset
            assert len(texts) == len(data) and all(isinstance(t, str) and t for t in texts[:100])
            return
        images, batch_labels = data.batch(np.arange(min(4, len(data))))
        assert images.dtype == torch.float32 and tuple(images.shape[1:]) == tuple(source.image_shape)
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0 and batch_labels.dtype == torch.int64
