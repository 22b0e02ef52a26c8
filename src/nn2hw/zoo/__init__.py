"""The model zoo: architectures in our own code, state-dict compatible with published checkpoints.

>>> from nn2hw import zoo
>>> zoo.list_models("resnet*")[:2]
['resnet20', 'resnet32']
>>> zoo.entry("resnet20").variant("cifar10").input_shape
(3, 32, 32)

``build(name, dataset=None, pretrained=False, checkpoint=None)`` returns the ``nn.Module``;
``workload(name, dataset=None, batch=1, seq_len=None)`` its layer records; ``prepare(data, name)``
attaches its normalization (a sequence model's tokenizer, ``tokenizer(name)``) to a dataset.
Importing this package does not import torch; building does.
"""

from nn2hw.zoo.catalog import MODELS
from nn2hw.zoo.factory import ModelStats, build, entry, list_models, stats, workload
from nn2hw.zoo.inputs import prepare, tokenizer
from nn2hw.zoo.records import CheckpointSource, Recovery, ZooEntry, ZooVariant

__all__ = ["MODELS", "CheckpointSource", "ModelStats", "Recovery", "ZooEntry", "ZooVariant", "build", "entry",
           "list_models", "prepare", "stats", "tokenizer", "workload"]
