"""Eyeriss template against the DNN-Chip Predictor (goldens), and its tiling enumeration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nn2hw.errors import HardwareError
from nn2hw.hardware import get_template
from nn2hw.hardware.asic.eyeriss import EyerissDesign, ordered_factorizations, select
from nn2hw.workload import Workload
from tests.hardware.asic.nets import conv, golden, layer_from_record, mobile_block

EYERISS = get_template("eyeriss")[0]
PREDICTOR = golden("dnn_chip_predictor.json")


@pytest.mark.parametrize("record", PREDICTOR["layers"], ids=lambda r: r["layer"]["name"])
def test_energy_latency_and_tiling_equal_the_predictor(record):
    # Golden: DNN-Chip Predictor get_OPs_HW_metric (command and commit in the golden file).
    cost = EYERISS.cost(Workload("one", (layer_from_record(record["layer"]),)))
    layer = cost.layers[0]
    assert cost.device == "eyeriss-65nm" and cost.clock_mhz == 250
    assert layer.energy_mj == pytest.approx(record["energy_mj"], rel=1e-12)
    assert layer.breakdown_cycles["compute_cycles"] / 250e3 == pytest.approx(record["latency_ms"], rel=1e-12)
    t = record["tiling"]
    assert layer.mapping == (f"M={t['M0']}*{t['M1']}*{t['M2']}*{t['M3']} C={t['C0']}*{t['C1']}*{t['C2']} "
                             f"E={t['E1']}*{t['E3']}")


@pytest.mark.parametrize("n, k", [(1, 3), (12, 2), (64, 4), (7, 3), (360, 3)])
def test_ordered_factorizations_are_all_and_only_the_factorizations(n, k):
    rows = ordered_factorizations(n, k)
    assert (rows.prod(axis=1) == n).all()
    assert len({tuple(r) for r in rows}) == len(rows)
    # count: product over prime powers p^a of C(a + k - 1, k - 1)
    expected, m, p = 1, n, 2
    while m > 1:
        a = 0
        while m % p == 0:
            m, a = m // p, a + 1
        expected *= math.comb(a + k - 1, k - 1)
        p += 1
    assert len(rows) == expected


def test_selection_is_the_predictor_rule_first_on_ties():
    energy = np.array([[4.0, 2.0, 2.0, 1.0]])
    latency = np.array([[1.0, 3.0, 3.0, 9.0]])
    valid = np.array([[True, True, True, False]])
    # metrics (valid only): (E-2)/4 + (L-1)/3 -> 0.5, 0.667, 0.667
    assert select(energy, latency, valid).tolist() == [0]
    assert select(energy, latency, np.array([[False, True, True, False]])).tolist() == [1]
    assert select(energy, latency, np.zeros((1, 4), dtype=bool)).tolist() == [-1]


def test_exclusive_limits_are_stricter():
    # 3x3 conv whose best tilings use exactly the bounds: inclusive limits allow at least as much.
    w = Workload("one", (conv("c", 64, 64, 14),))
    strict = EYERISS.cost(w, EyerissDesign(exclusive_limits=True))
    loose = EYERISS.cost(w, EyerissDesign(exclusive_limits=False))
    assert loose.compute_cycles <= strict.compute_cycles


def test_too_small_array_names_the_layer():
    with pytest.raises(HardwareError, match="'big'.*no row-stationary tiling"):
        EYERISS.cost(Workload("one", (conv("big", 16, 16, 8, k=7),)), EyerissDesign(rows=2, cols=3))


def test_depthwise_runs_group_by_group():
    cost = EYERISS.cost(mobile_block())
    dw = next(layer for layer in cost.layers if layer.name == "dw")
    single = EYERISS.cost(Workload("one", (conv("c", 1, 1, 16),)))
    assert dw.breakdown_cycles["compute_cycles"] == 64 * single.compute_cycles
