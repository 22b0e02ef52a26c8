"""HW-NAS-Bench's FBNet lookup sums: the published check values, table coverage, bad input."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from nn2hw.bench import FBNET_METRICS, FBNET_OPS, fbnet_table_keys, load_fbnet_tables, query_fbnet, random_arch
from nn2hw.errors import ConfigError, DatasetError
from nn2hw.paths import search_dirs

TABLE = ("hw-nas-bench", "fbnet_only", "fbnet_cached_metrics.json")
KEYS = (*FBNET_METRICS, "average_hw_metric")

# GATECH-EIC/HW-NAS-Bench example.ipynb, the FBNet cell's printed outputs (query_by_index), in KEYS order.
PUBLISHED = {
    ("cifar100", (0,) * 22): (15.804523468017578, 86.98095934380125, 17.618579145142576, 7.788973100000002,
                              3.9408960000000004, 3.2420080000000002, 10.739520000000002, 75.17664,
                              1945958271.4210253),
    ("ImageNet", (0,) * 22): (16.431164979934692, 102.71604275841212, 57.65650005702628, 27.5423871,
                              18.127332000000003, 16.945472000000002, 29.42189999999999, 205.95329999999998,
                              4988655551037.17),
    ("cifar100", (0,) * 21 + (1,)): (16.861193418502808, 92.50940989292691, 17.505280663142912, 7.673164100000002,
                                     3.9004160000000003, 3.2549479999999997, 10.347840000000001, 72.43488,
                                     1993747792.0823224),
    ("ImageNet", (0,) * 21 + (1,)): (17.092111825942993, 106.13277487508154, 57.98271677602315, 27.229345099999996,
                                     18.078716, 16.862542, 28.491659999999992, 199.44161999999997, 4961410646784.242),
    ("cifar100", (0,) * 20 + (1, 1)): (18.126894235610962, 99.01054894461463, 17.43969264414045, 7.596349100000001,
                                       3.8665600000000007, 3.263408, 10.07136, 70.49952, 2130193321.381353),
    ("ImageNet", (0,) * 20 + (1, 1)): (17.267947673797607, 107.06404927999472, 58.2021167500061, 27.044592099999996,
                                       18.063916000000003, 16.806142, 27.835019999999993, 194.84513999999996,
                                       4791424545249.201),
}


@pytest.fixture(scope="module")
def tables():
    if not any((d / TABLE[-1]).is_file() for d in search_dirs(*TABLE[:-1])):
        pytest.skip(f"{'/'.join(TABLE)} is absent under NN2HW_DATA and the cache; set NN2HW_DATA=../shared/data "
                    "to check HW-NAS-Bench's published values")
    return load_fbnet_tables()


@pytest.mark.parametrize(("dataset", "arch"), list(PUBLISHED))
def test_published_check_values_reproduced_exactly(tables, dataset, arch):
    result = query_fbnet(list(arch), dataset)
    assert list(result) == list(KEYS)
    assert tuple(result.values()) == PUBLISHED[dataset, arch]  # float equality, every metric


def test_every_key_of_the_space_is_in_every_table(tables):
    """All-one-op architectures (every op at every position) and a random sample, on both settings."""
    archs = [[op] * 22 for op in range(len(FBNET_OPS))] + [list(random_arch(np.random.default_rng(s)))
                                                            for s in range(200)]
    for dataset in ("cifar100", "ImageNet"):
        needed = {key for arch in archs for key in fbnet_table_keys(arch, dataset)}
        for metric in FBNET_METRICS:
            assert needed <= set(tables[metric]), sorted(needed - set(tables[metric]))[:5]


def test_every_table_entry_is_reachable(tables):
    """The space's keys over both settings (and the table's CIFAR-10 classifier) are the whole table."""
    reached = {key for dataset in ("cifar100", "ImageNet", "cifar10") for op in range(len(FBNET_OPS))
               for position in range(22) for key in fbnet_table_keys([0] * position + [op] + [0] * (21 - position),
                                                                      dataset)}
    assert reached == set(tables["fpga_latency"])


def test_missing_key_names_the_key(tables):
    key = "ConvBlock_H4_W4_Cin184_Cout352_exp1_kernel3_stride1_group2"
    broken = MappingProxyType({m: {k: v for k, v in t.items() if k != key} for m, t in tables.items()})
    assert query_fbnet([0] * 22, "cifar100", tables=broken)["fpga_latency"] == PUBLISHED["cifar100", (0,) * 22][6]
    with pytest.raises(ConfigError, match=key) as info:
        query_fbnet([0] * 21 + [1], "cifar100", tables=broken)
    assert info.value.fix


def test_fpga_energy_is_constant_power(tables):
    """A property of the tables the reference notes: fpga_energy = 7 W x fpga_latency."""
    for dataset in ("cifar100", "ImageNet"):
        result = query_fbnet(list(random_arch(np.random.default_rng(7))), dataset)
        assert result["fpga_energy"] == pytest.approx(7.0 * result["fpga_latency"], rel=1e-9)


@pytest.mark.parametrize(("arch", "dataset", "words"), [
    ([0] * 23, "cifar100", ["22 blocks", "23"]),
    ([0] * 21 + [9], "ImageNet", ["Block 21", "outside 0..8"]),
    ([0] * 22, "cifar10", ["'cifar10'", "cifar100", "ImageNet"]),
    ([0] * 22, "imagenet16-120", ["'imagenet16-120'"]),
])
def test_bad_queries_name_cause_and_fix(arch, dataset, words):
    with pytest.raises(ConfigError) as info:
        query_fbnet(arch, dataset, tables={})
    assert info.value.fix and all(w in str(info.value) for w in words), str(info.value)


def test_absent_or_malformed_table_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NN2HW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match="NN2HW_DATA") as info:
        load_fbnet_tables()
    assert "fbnet_cached_metrics.json" in str(info.value)
    bad = Path(tmp_path / "bad.json")
    bad.write_text('{"fpga_latency": {}}')
    with pytest.raises(DatasetError, match="edgegpu_latency"):
        load_fbnet_tables(bad)
