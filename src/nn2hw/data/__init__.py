"""Datasets: CIFAR-10 (python batches), Fashion-MNIST (IDX) and ImageFolder trees (ImageNet).

``load_dataset(name, split, data_dir=None, download=False)`` returns a ``Dataset`` whose batches
are float images in [0, 1] (normalized once a ``Normalize`` is attached) with int64 labels.
Splits: ``train``, ``test``, and for CIFAR-10 the evaluation-only ``test-partial`` (1017 of the
10000 test images, always reported as partial); ``validation`` (what a search scores candidates on)
and ``fit`` (what it fine-tunes on): a dataset's own validation split, or carved from its training
split by its ``Holdout``. ``DATASETS`` lists the registered datasets.
"""

from nn2hw.data.base import (
                             DATASETS,
                             FIT,
                             NO_AUGMENT,
                             VALIDATION,
                             ArrayDataset,
                             Augment,
                             Dataset,
                             Holdout,
                             Normalize,
                             load_dataset,
                             selection_splits,
)
from nn2hw.data.imagefolder import ImageFolderDataset, load_image_folder

__all__ = ["DATASETS", "FIT", "NO_AUGMENT", "VALIDATION", "ArrayDataset", "Augment", "Dataset", "Holdout",
           "ImageFolderDataset", "Normalize", "load_dataset", "load_image_folder", "selection_splits"]
