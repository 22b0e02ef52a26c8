"""zoo.prepare: a dataset gets the zoo variant's normalization after its input shape is checked."""

from __future__ import annotations

import numpy as np
import pytest

from nn2hw import zoo
from nn2hw.data import ArrayDataset
from nn2hw.errors import DatasetError


def test_prepare_uses_the_zoo_normalization_and_checks_the_shape():
    pixels = np.full((2, 1, 28, 28), 255, dtype=np.uint8)
    data = ArrayDataset("fashion-mnist", "test", pixels, np.zeros(2, np.int64), tuple("0123456789"), 10000, "mem")
    images, _ = zoo.prepare(data, "resnet20").batch(np.arange(1))
    # Fashion-MNIST statistics of the zoo variant: mean 0.2860, std 0.3530.
    assert images.flatten()[0].item() == pytest.approx((1.0 - 0.2860) / 0.3530, rel=1e-6)
    wrong = ArrayDataset("fashion-mnist", "test", np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2, np.int64),
                         tuple("0123456789"), 10000, "mem")
    with pytest.raises(DatasetError, match=r"takes inputs \(1, 28, 28\)"):
        zoo.prepare(wrong, "resnet20")
