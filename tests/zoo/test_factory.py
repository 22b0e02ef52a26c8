"""build/workload/stats details: options, argument errors and the code-keyed stats cache."""

from __future__ import annotations

import json

import pytest
import torch

from nn2hw import zoo
from nn2hw.errors import ConfigError
from nn2hw.zoo import factory


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))


def test_build_options_override_the_entry():
    with torch.device("meta"):
        deeper = zoo.build("resnet20", depth=32)
    assert len(deeper.layer1) == 5
    with pytest.raises(ConfigError, match="Cannot build resnet20 with options \\['widht'\\]"):
        zoo.build("resnet20", widht=2)


@pytest.mark.parametrize("batch", [0, -1, 1.5, True])
def test_workload_rejects_a_bad_batch(batch):
    with pytest.raises(ConfigError, match="Batch size must be a positive integer"):
        zoo.workload("resnet20", batch=batch)


def test_stats_cache_is_keyed_by_variant_and_survives_corruption(tmp_path):
    model = zoo.entry("resnet20")
    keys = {factory._stats_key(model, v) for v in model.variants}
    assert len(keys) == 2
    computed = zoo.stats("resnet20", cache=True)
    table = json.loads((tmp_path / "cache" / "zoo-stats.json").read_text())
    assert table[factory._stats_key(model, model.variant())] == {
        "name": "resnet20", "dataset": "cifar10", "params": 269_722, "macs": 40_551_040}
    assert zoo.stats("resnet20", cache=True) == computed
    (tmp_path / "cache" / "zoo-stats.json").write_text("{not json")
    assert zoo.stats("resnet20", cache=True) == computed  # recomputed, and the file rewritten
    assert json.loads((tmp_path / "cache" / "zoo-stats.json").read_text())
