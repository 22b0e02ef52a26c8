"""Rank agreement of nn2hw's templates with HW-NAS-Bench's devices, and ``nn2hw bench``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn2hw.bench import fbnet_workload, load_fbnet_tables, query_fbnet
from nn2hw.bench.agreement import rank_agreement, spearman_rho
from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.hardware import get_template
from nn2hw.paths import search_dirs

TABLE = ("hw-nas-bench", "fbnet_only", "fbnet_cached_metrics.json")
ZEROS = ",".join(["0"] * 22)


@pytest.fixture(scope="module")
def tables():
    if not any((d / TABLE[-1]).is_file() for d in search_dirs(*TABLE[:-1])):
        pytest.skip(f"{'/'.join(TABLE)} is absent under NN2HW_DATA and the cache; set NN2HW_DATA=../shared/data")
    return load_fbnet_tables()


@pytest.mark.parametrize("seed", range(5))
def test_spearman_matches_scipy_with_ties(seed):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 6, 40).astype(float), rng.normal(size=40)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_of_a_monotone_map_is_one_and_of_a_constant_nan():
    x = np.array([3.0, 1.0, 2.0, 5.0])
    assert spearman_rho(x, x**3) == pytest.approx(1.0)
    assert spearman_rho(x, -x) == pytest.approx(-1.0)
    assert np.isnan(spearman_rho(x, np.ones(4)))


def test_agreement_costs_each_architecture_on_the_template_and_reads_the_benchmark(tables):
    result = rank_agreement("systolic", "eyeriss_latency", samples=8, seed=3)
    again = rank_agreement("systolic", "eyeriss_latency", samples=8, seed=3)
    assert result == again  # seeded
    template, device = get_template("systolic")
    for sample in result.samples[:2]:
        workload = fbnet_workload(sample.arch, "cifar100")
        assert sample.template_value == template.explore(workload, device).best.latency_ms
        assert sample.benchmark_value == query_fbnet(sample.arch, "cifar100")["eyeriss_latency"]
    assert -1.0 <= result.kendall_tau <= 1.0 and -1.0 <= result.spearman_rho <= 1.0
    assert json.loads(json.dumps(result.as_dict()))["count"] == 8


def test_a_systolic_array_orders_fbnet_networks_as_eyeriss_does(tables):
    """Both are MAC-array accelerators: bigger blocks are slower on both (docs/hwnasbench.md has the table)."""
    result = rank_agreement("systolic", "eyeriss_latency", samples=20, seed=0)
    assert result.kendall_tau > 0.6 and result.spearman_rho > result.kendall_tau


def test_a_fixed_design_is_costed_as_given(tables):
    result = rank_agreement("systolic", "eyeriss_energy", samples=4, seed=1, hw_params={"rows": 16, "cols": 16})
    assert {s.template_value for s in result.samples} and all(s.template_value > 0 for s in result.samples)
    assert all(s.benchmark_value == query_fbnet(s.arch)["eyeriss_energy"] for s in result.samples)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"hardware": "systolic", "metric": "edgetpu_latency"}, "no FBNet metric"),
    ({"hardware": "systolic", "metric": "fpga_latency", "samples": 2}, "at least 3"),
    ({"hardware": "fpga:zc706", "metric": "fpga_energy"}, "models no energy"),
    ({"hardware": "cpu", "metric": "raspi4_latency"}, "measures this machine"),
])
def test_bad_requests_are_config_errors(tables, kwargs, words):
    with pytest.raises(ConfigError, match=words):
        rank_agreement(samples=kwargs.pop("samples", 3), **kwargs)


def test_cli_hwnasbench_prints_and_writes_the_published_values(tables, capsys, tmp_path):
    out = tmp_path / "costs.json"
    assert main(["bench", "hwnasbench", "--arch", ZEROS, "--dataset", "cifar100", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fpga_latency         10.73952 ms" in printed and "eyeriss_energy       3.242008 mJ" in printed
    data = json.loads(out.read_text())
    assert data["fpga_latency"] == query_fbnet([0] * 22)["fpga_latency"] and data["arch"] == [0] * 22


def test_cli_agreement_writes_tau_rho_and_samples(tables, capsys, tmp_path):
    out = tmp_path / "agree.json"
    assert main(["bench", "agreement", "--hardware", "systolic", "--metric", "eyeriss_latency", "--samples", "5",
                 "--json", str(out)]) == 0
    assert "Kendall tau" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["count"] == 5 and len(data["samples"]) == 5 and data["space"] == "fbnet"


@pytest.mark.parametrize(("arch", "words"), [
    ("1,2,x", "not integers"), ("0,0", "22 blocks"), (ZEROS.replace("0", "9", 1), "outside 0..8"),
])
def test_cli_bad_architectures_exit_2(capsys, arch, words):
    assert main(["bench", "hwnasbench", "--arch", arch]) == 2
    assert words in capsys.readouterr().err
