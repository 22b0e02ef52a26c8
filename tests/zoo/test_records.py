"""Zoo records and registry: validation, variant lookup, and the invariants of every entry."""

from __future__ import annotations

import pytest

from nn2hw import zoo
from nn2hw.data import DATASETS
from nn2hw.errors import ConfigError, UnknownNameError
from nn2hw.testing.models import ModelContract
from nn2hw.zoo.records import TEXT_EMBEDDING, CheckpointSource, ZooVariant, hash_prefix_of

DIGEST = "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"


def test_hash_prefix_follows_the_torch_hub_naming():
    assert hash_prefix_of("resnet18-f37072fd.pth") == "f37072fd"
    assert hash_prefix_of("mnasnet0.5_top1_67.823-3ffadce67e.pth") == "3ffadce67e"
    assert hash_prefix_of("resnet20-12fca82f.th") == "12fca82f"
    assert hash_prefix_of("my_weights.pth") == "" and hash_prefix_of("net-2024.pth") == ""


def test_checkpoint_source_validation():
    source = CheckpointSource(url="https://x/resnet18-f37072fd.pth", file_name="resnet18-f37072fd.pth")
    assert source.expected_hash == "f37072fd" and not source.full_hash
    full = CheckpointSource(url="https://x/r.pth", file_name="resnet18-f37072fd.pth", sha256=DIGEST)
    assert full.expected_hash == DIGEST and full.full_hash
    with pytest.raises(ConfigError, match="does not start with the prefix"):
        CheckpointSource(url="https://x", file_name="resnet18-00000000.pth", sha256=DIGEST)
    with pytest.raises(ConfigError, match="64 lowercase hex"):
        CheckpointSource(url="https://x", file_name="a.pth", sha256=DIGEST.upper())
    with pytest.raises(ConfigError, match="could not be verified"):
        CheckpointSource(url="https://x", file_name="a.pth")
    with pytest.raises(ConfigError, match="bare file name"):
        CheckpointSource(url="https://x", file_name="zoo/a-f37072fd.pth")


def test_variant_validation():
    with pytest.raises(ConfigError, match="needs a dataset name"):
        ZooVariant("", (1, 28, 28), 10, (0.1,), (0.3,), "")
    with pytest.raises(ConfigError, match="one value per input channel"):
        ZooVariant("cifar10", (3, 32, 32), 10, (0.5,), (0.5,), "")


def test_unknown_model_and_dataset_suggest_close_names():
    with pytest.raises(UnknownNameError, match="Unknown model 'resnt20'. Did you mean 'resnet20'"):
        zoo.entry("resnt20")
    with pytest.raises(UnknownNameError, match="has no 'cifar' variant. Did you mean 'cifar10'"):
        zoo.entry("resnet20").variant("cifar")
    with pytest.raises(UnknownNameError):
        zoo.build("alexnet", "fashion-mnist")


def test_list_models_and_defaults():
    assert zoo.list_models("resnet*") == ["resnet20", "resnet32", "resnet44", "resnet56", "resnet18", "resnet34",
                                          "resnet50"]
    assert {zoo.entry(n).default_dataset for n in ("resnet20", "resnet32", "resnet44", "resnet56")} == {"cifar10"}
    imagenet = ["alexnet", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mnasnet0_5",
                "mnasnet1_0", "squeezenet1_0"]
    for name in imagenet:
        variant = zoo.entry(name).variant()
        assert (variant.dataset, variant.input_shape, variant.num_classes) == ("imagenet", (3, 224, 224), 1000)
    for name in ("resnet20", "mobilenetv2_fmnist", "vgg_fmnist"):
        variant = zoo.entry(name).variant("fashion-mnist")
        assert (variant.input_shape, variant.mean, variant.std) == ((1, 28, 28), (0.2860,), (0.3530,))
        assert all(s.packaged and not s.url for s in variant.sources)  # trained by `nn2hw zoo train`, packaged


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_is_consistent(name):
    model = zoo.entry(name)
    assert model.name == name and set(model.datasets) <= set(DATASETS.names()) | {TEXT_EMBEDDING}
    assert all(v.num_classes == 0 for v in model.variants if v.dataset == TEXT_EMBEDDING)
    for variant in model.variants:
        for source in variant.sources:
            assert source.checksum_note and source.transform
            assert source.url.startswith("https://") or source.packaged
            assert not source.url or source.url.endswith("/" + source.file_name)
            assert source.expected_hash and (source.full_hash or len(source.expected_hash) >= 8)


class TestEveryModel(ModelContract):
    @pytest.fixture(params=zoo.list_models())
    def model(self, request):
        return request.param
