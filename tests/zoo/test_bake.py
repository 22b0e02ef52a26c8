"""Packaged zoo workloads: current with the sources, equal to a fresh extraction, served in the right order."""

from __future__ import annotations

import gzip

import pytest

from nn2hw import zoo
from nn2hw.api import zoo_workload
from nn2hw.workload import Workload
from nn2hw.zoo import bake
from nn2hw.zoo.bake import BAKE_COMMAND, BAKED_DIR, baked_path, baked_workload, read_baked, source_fingerprint

VARIANTS = [(name, v.dataset) for name in zoo.list_models() for v in zoo.entry(name).variants]


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path))
    return tmp_path / "workloads"


def test_packaged_workloads_are_current():
    current = source_fingerprint()
    records = {(name, dataset): read_baked(baked_path(name, dataset)) for name, dataset in VARIANTS}
    stale = sorted(f"{n} ({d})" for (n, d), record in records.items() if record is None or record[0] != current)
    assert not stale, f"packaged workloads are missing or older than the zoo/extractor sources: {stale}; " \
                      f"run `{BAKE_COMMAND}` and commit src/nn2hw/zoo/workloads"
    extra = sorted({p.name for p in BAKED_DIR.iterdir()} - {baked_path(n, d).name for n, d in VARIANTS})
    assert not extra, f"packaged workloads of unregistered variants: {extra}; run `{BAKE_COMMAND}`"


@pytest.mark.parametrize("name, dataset", VARIANTS)
def test_packaged_workload_equals_a_fresh_extraction(name, dataset):
    packaged = baked_workload(name, dataset)
    assert packaged is not None, f"run `{BAKE_COMMAND}`"
    assert packaged == zoo.workload(name, dataset)


def test_user_cache_comes_first_then_the_package_without_writing(empty_cache):
    packaged = baked_workload("resnet20", "cifar10")
    assert zoo_workload("resnet20") == packaged
    assert not empty_cache.exists()  # served from the package: nothing extracted, nothing cached
    empty_cache.mkdir()
    mine = Workload(name="from-the-cache", layers=packaged.layers[:3])
    (empty_cache / f"resnet20-cifar10-{source_fingerprint()}.json").write_text(mine.to_json())
    assert zoo_workload("resnet20", "cifar10") == mine


def test_edited_sources_fall_back_to_extraction(empty_cache, monkeypatch):
    monkeypatch.setattr(bake, "source_fingerprint", lambda: "edited-sources")
    assert baked_workload("resnet20", "fashion-mnist", "edited-sources") is None
    extracted = zoo_workload("resnet20", "fashion-mnist")
    assert extracted == zoo.workload("resnet20", "fashion-mnist")
    assert [p.name for p in empty_cache.iterdir()] == ["resnet20-fashion-mnist-edited-sources.json"]


@pytest.mark.parametrize("damage", ["truncated", "not gzip", "no fingerprint"])
def test_a_damaged_record_is_ignored(tmp_path, damage):
    good = baked_path("resnet20", "cifar10").read_bytes()
    data = {"truncated": good[: len(good) // 2], "not gzip": b"{}",
            "no fingerprint": gzip.compress(b'{"workload": {}}')}[damage]
    path = tmp_path / "resnet20-cifar10.json.gz"
    path.write_bytes(data)
    assert read_baked(path) is None
