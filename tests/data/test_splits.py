"""The validation split a search scores on and the ``fit`` split it fine-tunes on: carved from the
training split by a seeded ``Holdout`` (or a dataset's own validation split), disjoint, complete,
reproducible; bad sizes and datasets without training data refused with the cause and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from nn2hw.data import FIT, VALIDATION, Holdout, load_dataset, selection_splits
from nn2hw.errors import ConfigError, DatasetError
from tests.data.helpers import install_fake_fmnist, write_files


@pytest.fixture
def fake(monkeypatch, tmp_path):
    files = install_fake_fmnist(monkeypatch, tmp_path, 40)
    write_files(tmp_path / "data" / "fashion-mnist", files)
    return tmp_path


def _rows(data) -> set[bytes]:
    return {row.tobytes() + bytes([int(label)]) for row, label in zip(data.pixels, data.labels)}


def test_validation_and_fit_partition_the_training_split_reproducibly(fake):
    train = load_dataset("fashion-mnist", "train")
    holdout = Holdout(10, seed=3)
    validation, fit = (load_dataset("fashion-mnist", s, holdout=holdout) for s in (VALIDATION, FIT))
    assert (len(validation), len(fit)) == (10, 30) and not validation.partial and not fit.partial
    assert (validation.split, fit.split) == ("validation", "fit")
    assert _rows(validation).isdisjoint(_rows(fit)) and _rows(validation) | _rows(fit) == _rows(train)
    again = load_dataset("fashion-mnist", VALIDATION, holdout=Holdout(10, seed=3))
    assert np.array_equal(again.pixels, validation.pixels)
    other = load_dataset("fashion-mnist", VALIDATION, holdout=Holdout(10, seed=4))
    assert not np.array_equal(other.pixels, validation.pixels)
    assert len(load_dataset("fashion-mnist", VALIDATION, holdout=Holdout(0.25))) == 10  # a fraction of 40


def test_the_default_holdout_is_5000_fashion_mnist_training_images(shared_data):
    try:
        validation = load_dataset("fashion-mnist", VALIDATION)
    except DatasetError as exc:  # the Debian package is absent
        pytest.skip(f"Fashion-MNIST is not installed here: {exc}")
    fit = load_dataset("fashion-mnist", FIT)
    assert (len(validation), len(fit)) == (5000, 55000)
    counts = np.bincount(validation.labels, minlength=10)
    assert counts.min() > 400  # a random draw: every class is represented (500 each on average)


@pytest.mark.parametrize("size", [0, -3, 1.0, 1.5, 0.0, True, "100"])
def test_a_size_that_is_neither_a_count_nor_a_fraction_is_refused(size):
    with pytest.raises(ConfigError, match="neither a number of images") as info:
        Holdout(size)
    assert "--validation-size 5000" in info.value.fix


@pytest.mark.parametrize("size", [40, 400, 0.001])
def test_a_size_that_leaves_no_training_or_no_validation_image_is_refused(fake, size):
    with pytest.raises(ConfigError, match="leaves no") as info:
        load_dataset("fashion-mnist", FIT, holdout=Holdout(size))
    assert "between 1 and 39" in info.value.fix


def test_a_dataset_with_its_own_validation_split_uses_it_and_refuses_a_size(shared_data):
    try:
        own = load_dataset("wordnet-supersense", VALIDATION)
    except DatasetError as exc:
        pytest.skip(f"WordNet is not installed here: {exc}")
    assert own.split == "validation" and len(own) == 8212
    assert load_dataset("wordnet-supersense", FIT).split == "train"
    with pytest.raises(ConfigError, match="validation split of its own"):
        load_dataset("wordnet-supersense", VALIDATION, holdout=Holdout(1000))


def test_every_registered_dataset_lists_the_selection_splits():
    assert selection_splits("fashion-mnist") == ("train", "test", "validation", "fit")
    assert selection_splits("wordnet-supersense") == ("train", "validation", "test", "fit")
    with pytest.raises(ConfigError, match="no split 'val'") as info:
        load_dataset("fashion-mnist", "val")
    assert "validation" in info.value.fix


def test_an_evaluation_is_keyed_by_the_carve_it_scores_on():
    """The default carve and the same carve given explicitly share measurements; another carve does not."""
    from nn2hw.evaluate import FinetuneEvaluator

    def fields(holdout):
        return FinetuneEvaluator("fashion-mnist", split=VALIDATION, train_split=FIT, holdout=holdout).cache_fields

    assert fields(None) == fields(Holdout(5000)) != fields(Holdout(4000))
    assert FinetuneEvaluator("fashion-mnist").cache_fields[-1] != fields(None)[-1]  # train/test, no carve
