"""Whole-network predictors: input checks, features that see layer order, and HELP's FBNet ranking target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nn2hw.errors import ConfigError
from nn2hw.hardware.predicted import EXECUTION
from nn2hw.predict import accuracy, fit
from nn2hw.predict.whole import MIN_SAMPLES, feature_matrix, feature_names, features
from nn2hw.testing.workloads import conv_net, every_op
from tests.predict.helpers import cut, cut_variants, synthetic_ms

pytest.importorskip("sklearn", reason="predictors need scikit-learn (pip install 'nn2hw[predict]')")


@pytest.mark.parametrize("latencies, message", [
    ([1.0] * 10, "11 workloads but 10 latencies"),
    ([1.0] * 10 + [0.0], r"latency #10 is 0\.0"),
    ([1.0] * 10 + [-2.0], r"latency #10 is -2\.0"),
    ([1.0] * 10 + [math.nan], "latency #10 is nan"),
    ([1.0] * 10 + [math.inf], "latency #10 is inf"),
    ([1.0] * 10 + ["fast"], "latency #10 is 'fast'"),
])
def test_fit_refuses_bad_latencies(latencies, message):
    workloads, _ = cut_variants(conv_net())
    with pytest.raises(ConfigError, match=message):
        fit(workloads, latencies)


def test_fit_needs_enough_samples_and_workloads():
    workloads, latencies = cut_variants(conv_net())
    with pytest.raises(ConfigError, match=f"got {MIN_SAMPLES - 1} measured networks"):
        fit(workloads[:MIN_SAMPLES - 1], latencies[:MIN_SAMPLES - 1])
    with pytest.raises(ConfigError, match="are not Workload records"):
        fit(["resnet20", *workloads[1:]], latencies)


def test_every_op_kind_featurizes_and_names_match():
    rows, additive = feature_matrix([every_op(EXECUTION), conv_net()])
    assert rows.shape == (2, len(feature_names())) and np.isfinite(rows).all() and np.isfinite(additive).all()


def test_features_see_where_layers_sit_not_only_their_totals():
    fbnet = pytest.importorskip("nn2hw.bench.fbnet")
    arch = [0, 3, 8, 1, 7, 2, 8, 6, 5, 4, 3, 2, 1, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    swapped = list(arch)
    swapped[9], swapped[13] = swapped[13], swapped[9]  # the same ops, in another order within one stage
    a, b = features(fbnet.fbnet_workload(arch)), features(fbnet.fbnet_workload(swapped))
    names = feature_names()
    same = [i for i, n in enumerate(names) if n.endswith("_count") and not n.startswith("band")]
    assert np.array_equal(a[same], b[same])
    assert not np.array_equal(a, b)


def test_ranks_held_out_channel_cuts():
    workloads, latencies = cut_variants(conv_net())
    predictor = fit(workloads, latencies, device="synthetic", seed=0)
    held_out = [cut(conv_net(), keep) for keep in (0.35, 0.45, 0.55, 0.65, 0.85, 0.95)]
    acc = accuracy(predictor, held_out, [synthetic_ms(w) for w in held_out])
    assert acc.kendall_tau >= 0.7 and acc.within_10_pct >= 0.5
    assert predictor.predict(held_out[0]) > 0


@pytest.mark.data
@pytest.mark.slow  # ~20 s on 2 cores: 3,000 FBNet workloads built and featurized, 1,000 fitted (HELP's setting)
def test_fbnet_raspi4_ranking_from_1000_networks(shared_data):
    """HELP's target: 1,000 networks of the FBNet space with Raspberry Pi 4 latencies (HW-NAS-Bench's
    lookup sums) rank 2,000 held-out ones at Kendall tau >= 0.85."""
    bench = pytest.importorskip("nn2hw.bench")
    rng = np.random.default_rng(0)
    archs = [bench.random_arch(rng) for _ in range(3000)]
    workloads = [bench.fbnet_workload(arch) for arch in archs]
    latencies = [bench.query_fbnet(arch)["raspi4_latency"] for arch in archs]
    predictor = fit(workloads[:1000], latencies[:1000], device="raspi4", seed=0)
    acc = accuracy(predictor, workloads[1000:], latencies[1000:])
    assert acc.n == 2000
    assert acc.kendall_tau >= 0.85, acc
