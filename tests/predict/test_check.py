"""Accuracy figures on hand-computed cases; Kendall tau against SciPy; the report table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console

from nn2hw.errors import ConfigError
from nn2hw.predict import Accuracy, accuracy, fit
from nn2hw.predict.check import kendall_tau, kernel_accuracy, score
from nn2hw.testing.workloads import conv_net
from tests.predict.helpers import cut, cut_variants, synthetic_ms

MEASURED = [10.0, 20.0, 30.0, 40.0]
PREDICTED = [10.4, 21.5, 19.0, 44.4]  # errors 4 %, 7.5 %, 36.7 %, 11 %; one discordant pair: (21.5, 19)


def test_hand_computed_case():
    acc = score(PREDICTED, MEASURED)
    assert acc.n == 4
    assert acc.within_5_pct == 0.25 and acc.within_10_pct == 0.5
    errors = [0.04, 0.075, 11 / 30, 0.11]
    assert acc.rmspe_pct == pytest.approx(100 * math.sqrt(sum(e * e for e in errors) / 4))
    assert acc.kendall_tau == pytest.approx((5 - 1) / 6)  # 6 pairs, 5 concordant, 1 discordant
    assert acc.per_kernel is None


def test_kendall_tau_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 30, 1300).astype(float)
    y = x + rng.normal(0, 8, x.size)
    y[:200] = 5.0
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_to_dict_table_and_per_kernel():
    acc = kernel_accuracy(["conv", "conv", "gemm", "gemm", "add"], [1.0, 2.08, 3.0, 2.0, 1.0],
                          [1.0, 2.0, 2.0, 3.0, 0.5])
    assert acc.n == 5 and set(acc.per_kernel) == {"conv", "gemm"}  # 'add' has one sample: overall only
    assert acc.per_kernel["conv"].kendall_tau == 1.0 and acc.per_kernel["gemm"].kendall_tau == -1.0
    record = acc.to_dict()
    assert record["per_kernel"]["conv"]["within_5_pct"] == 1.0
    flat = Accuracy(3, 1.0, 1.0, 0.0, math.nan)
    assert flat.to_dict()["kendall_tau"] is None and "per_kernel" not in flat.to_dict()
    console = Console(width=120, record=True)
    console.print(acc.table())
    text = console.export_text()
    assert "within ±10 %" in text and "gemm" in text and "-1.000" in text


def test_bad_input():
    with pytest.raises(ConfigError, match="at least 2 measurements"):
        score([1.0], [1.0])
    with pytest.raises(ConfigError, match="3 predictions for 2 measurements"):
        score([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ConfigError, match=r"#1 is 0\.0"):
        score([1.0, 2.0], [1.0, 0.0])


def test_accuracy_of_a_fitted_predictor_on_held_out_cuts():
    pytest.importorskip("sklearn")
    workloads, latencies = cut_variants(conv_net())
    predictor = fit(workloads, latencies, seed=0)
    held_out = [cut(conv_net(), keep) for keep in (0.35, 0.45, 0.55, 0.65, 0.85, 0.95)]
    acc = accuracy(predictor, held_out, [synthetic_ms(w) for w in held_out])
    assert acc.n == 6 and acc.kendall_tau >= 0.7
    with pytest.raises(ConfigError, match="6 workloads but 2 latencies"):
        accuracy(predictor, held_out, [1.0, 2.0])
