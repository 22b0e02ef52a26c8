"""HW-NAS-Bench's pickle: its NAS-Bench-201 entries by index, its FBNet tables, and files that are not it.

The benchmark's own pickle is not here (../shared/data/hw-nas-bench/SOURCE.md), so the reader is
checked on a file built in its published layout (``HWNASBenchAPI.query_by_index``: ``data['nasbench201']
[dataset][metric][index]`` and ``[dataset]['config'][index]['arch_str']``, ``data['fbnet'][metric]``),
with NAS-Bench-201 cell 0's published CIFAR-10 values and config (the HW-NAS-Bench README's example)
at index 0 and the other cells at shuffled indices, so nothing can pass by using nn2hw's own numbering.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from nn2hw.bench import (
    FBNET_METRICS,
    NB201_METRICS,
    load_fbnet_tables,
    load_hwnasbench,
    nb201_arch,
    nb201_index,
    query_fbnet,
    query_nb201,
)
from nn2hw.cli import main
from nn2hw.errors import ConfigError, DatasetError
from nn2hw.paths import search_dirs
from nn2hw.workload.spaces.nb201 import NB201_DATASETS, NB201_SIZE, format_nb201, nb201_from_code, parse_nb201

# GATECH-EIC/HW-NAS-Bench README: query_by_index(0, "cifar10") and get_net_config(0, "cifar10").
CELL0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
PUBLISHED_CELL0_CIFAR10 = {
    "edgegpu_latency": 5.807418537139893, "edgegpu_energy": 24.226614330768584, "raspi4_latency": 10.481976820010459,
    "edgetpu_latency": 0.9571811309997429, "pixel3_latency": 3.6058499999999998, "eyeriss_latency": 3.645620000000001,
    "eyeriss_energy": 0.6872827644999999, "fpga_latency": 2.57296, "fpga_energy": 18.01072,
}
INTENSITY0 = 31.25  # not printed in the README; any value: it is not part of the average
FBNET_TABLE = ("hw-nas-bench", "fbnet_only", "fbnet_cached_metrics.json")


def _fbnet_tables() -> dict:
    """The shipped FBNet tables when present (so the pickle's FBNet entry can be checked), else stand-ins."""
    if any((d / FBNET_TABLE[-1]).is_file() for d in search_dirs(*FBNET_TABLE[:-1])):
        return {m: dict(t) for m, t in load_fbnet_tables().items()}
    return {m: {"stand-in": 1.0} for m in FBNET_METRICS}


def _layout(seed: int = 0) -> dict:
    """A pickle's content in the published layout: shuffled cells, cell 0 as published."""
    rng = np.random.default_rng(seed)
    cells = [format_nb201(nb201_from_code(int(c))) for c in rng.permutation(NB201_SIZE)]
    first = cells.index(CELL0)
    cells[0], cells[first] = cells[first], cells[0]
    space = {}
    for dataset in NB201_DATASETS:
        entry: dict = {m: rng.uniform(0.1, 50.0, NB201_SIZE) for m in NB201_METRICS}
        entry["config"] = [{"name": "infer.tiny", "C": 16, "N": 5, "arch_str": cell, "num_classes": 10}
                           for cell in cells]
        space[dataset] = entry
    for metric, value in {**PUBLISHED_CELL0_CIFAR10, "eyeriss_arithmetic_intensity": INTENSITY0}.items():
        space["cifar10"][metric][0] = value
    return {"nasbench201": space, "fbnet": _fbnet_tables()}


@pytest.fixture(scope="module")
def content():
    return _layout()


@pytest.fixture(scope="module")
def pickle_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("hwnasbench") / "HW-NAS-Bench-v1_0.pickle"
    path.write_bytes(pickle.dumps(content))
    return path


def test_cell_0_gives_the_published_values_and_their_product(pickle_file):
    bench = load_hwnasbench(pickle_file)
    result = query_nb201(0, "cifar10", bench)
    assert list(result) == [*NB201_METRICS, "average_hw_metric"]
    assert {k: result[k] for k in PUBLISHED_CELL0_CIFAR10} == PUBLISHED_CELL0_CIFAR10  # float equality
    assert result["eyeriss_arithmetic_intensity"] == INTENSITY0
    product = 1.0
    for metric in PUBLISHED_CELL0_CIFAR10:  # the API's order, left to right
        product *= PUBLISHED_CELL0_CIFAR10[metric]
    assert result["average_hw_metric"] == product


def test_every_dataset_and_index_reads_its_own_entry(pickle_file, content):
    bench = load_hwnasbench(pickle_file)
    for dataset in NB201_DATASETS:
        for index in (0, 1, 7777, NB201_SIZE - 1):
            result = query_nb201(index, dataset.lower(), bench)  # case-insensitive, as everywhere
            assert all(result[m] == float(content["nasbench201"][dataset][m][index]) for m in NB201_METRICS)


def test_cells_map_to_the_files_indices_not_to_nn2hws_numbering(pickle_file, content):
    bench = load_hwnasbench(pickle_file)
    assert nb201_index(CELL0, bench) == 0 and nb201_arch(0, bench) == CELL0
    configs = content["nasbench201"]["cifar10"]["config"]
    for index in (1, 4242, NB201_SIZE - 1):
        cell = configs[index]["arch_str"]
        assert nb201_index(cell, bench) == index == nb201_index(list(parse_nb201(cell)), bench)
        assert nb201_arch(index, bench) == cell


def test_older_pickles_of_numpy_scalars_read_alike(tmp_path, content):
    """A protocol-2 file whose metrics are lists of NumPy scalars (as a 2021 NumPy 1.x dump may hold)."""
    older = {"nasbench201": {dataset: {k: (list(v) if k != "config" else v) for k, v in entry.items()}
                             for dataset, entry in content["nasbench201"].items()}, "fbnet": content["fbnet"]}
    path = tmp_path / "older.pickle"
    path.write_bytes(pickle.dumps(older, protocol=2))
    assert query_nb201(0, "cifar10", load_hwnasbench(path))["fpga_latency"] == PUBLISHED_CELL0_CIFAR10["fpga_latency"]


def test_the_pickles_fbnet_tables_give_the_published_sums(pickle_file):
    if not any((d / FBNET_TABLE[-1]).is_file() for d in search_dirs(*FBNET_TABLE[:-1])):
        pytest.skip(f"{'/'.join(FBNET_TABLE)} is absent under NN2HW_DATA; set NN2HW_DATA=../shared/data")
    tables = load_hwnasbench(pickle_file).fbnet
    arch = [0] * 21 + [1]
    assert query_fbnet(arch, "cifar100", tables=tables) == query_fbnet(arch, "cifar100")


@pytest.mark.parametrize(("index", "dataset", "words"), [
    (-1, "cifar10", "0..15624"), (NB201_SIZE, "cifar10", "0..15624"), (True, "cifar10", "True"),
    ("3", "cifar10", "'3'"), (0, "imagenet", "ImageNet16-120"),
])
def test_bad_queries_name_cause_and_fix(pickle_file, index, dataset, words):
    with pytest.raises(ConfigError) as info:
        query_nb201(index, dataset, load_hwnasbench(pickle_file))
    assert words in str(info.value) and info.value.fix


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"nasbench201": Payload()}))
    with pytest.raises(DatasetError, match="io.open") as info:
        load_hwnasbench(path)
    assert "refused" in str(info.value) and "HW-NAS-Bench-v1_0.pickle" in info.value.fix
    assert not marker.exists()


def test_incomplete_or_broken_files_name_what_is_wrong(tmp_path, content):
    def written(name: str, data: object) -> Path:
        path = tmp_path / name
        path.write_bytes(pickle.dumps(data))
        return path

    no_dataset = {"nasbench201": {k: v for k, v in content["nasbench201"].items() if k != "cifar100"},
                  "fbnet": content["fbnet"]}
    with pytest.raises(DatasetError, match="'cifar100'"):
        load_hwnasbench(written("no-dataset.pickle", no_dataset))
    short = {"nasbench201": {k: {**v, "fpga_energy": v["fpga_energy"][:100]} for k, v in
                             content["nasbench201"].items()}, "fbnet": content["fbnet"]}
    with pytest.raises(DatasetError, match="'fpga_energy' should hold 15625 values, one per cell \\(100 values\\)"):
        load_hwnasbench(written("short.pickle", short))
    with pytest.raises(DatasetError, match="FBNet tables"):
        load_hwnasbench(written("no-fbnet.pickle", {"nasbench201": content["nasbench201"]}))
    truncated = tmp_path / "truncated.pickle"
    truncated.write_bytes(pickle.dumps(content)[:1000])
    with pytest.raises(DatasetError, match="cannot be read"):
        load_hwnasbench(truncated)


def test_cli_queries_a_cell_by_index_by_string_and_by_op_indices(pickle_file, tmp_path, capsys):
    out = tmp_path / "cell.json"
    assert main(["bench", "hwnasbench", "--space", "nb201", "--arch", "0", "--pickle", str(pickle_file),
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert CELL0 in printed and "fpga_latency" in printed and "2.57296 ms" in printed
    data = json.loads(out.read_text())
    assert data["index"] == 0 and data["arch"] == CELL0 and data["dataset"] == "cifar10"
    assert data["edgegpu_latency"] == PUBLISHED_CELL0_CIFAR10["edgegpu_latency"]
    ops = ",".join(map(str, parse_nb201(CELL0)))
    for arch in (CELL0, ops):
        assert main(["bench", "hwnasbench", "--space", "nb201", "--arch", arch, "--pickle", str(pickle_file)]) == 0
        assert "NAS-Bench-201 cell 0:" in capsys.readouterr().out
    assert math.isfinite(data["average_hw_metric"])


@pytest.mark.parametrize(("arch", "words"), [("abc", "neither a NAS-Bench-201 index"), ("0,1,2", "6 edges"),
                                             ("99999", "0..15624")])
def test_cli_bad_cells_exit_2(pickle_file, capsys, arch, words):
    assert main(["bench", "hwnasbench", "--space", "nb201", "--arch", arch, "--pickle", str(pickle_file)]) == 2
    assert words in capsys.readouterr().err


def test_cli_without_the_pickle_says_where_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NN2HW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NN2HW_CACHE", str(tmp_path / "cache"))
    assert main(["bench", "hwnasbench", "--space", "nb201", "--arch", "0"]) == 2
    err = capsys.readouterr().err
    assert "HW-NAS-Bench's pickle was not found" in err and "GATECH-EIC/HW-NAS-Bench" in err and "--pickle" in err
