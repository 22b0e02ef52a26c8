"""A small kernel-predictor build: fits, orders networks, refits identically on load, names missing types."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from nn2hw.errors import ConfigError
from nn2hw.measure import MeasurementStore, Protocol, measure_onnx, onnx_runner
from nn2hw.predict import load
from nn2hw.predict.kernel import KernelPredictor
from nn2hw.predict.kernels import native_int8, workload_graph
from nn2hw.predict.sampling import BuildSettings, build, random_cnn
from nn2hw.workload import OpKind

pytestmark = pytest.mark.timed  # times code on the CPU: runs alone (tests/conftest.py)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[KernelPredictor, MeasurementStore]:
    """A 20-second build on the prior plus two random CNNs' shapes (slow by nature: the budget)."""
    store = MeasurementStore(tmp_path_factory.mktemp("store") / "m.sqlite")
    shapes = [random_cnn(random.Random(500 + i)) for i in range(2)]
    return build(budget_s=20.0, seed=1, workloads=shapes, store=store, calibration=24), store


def _quiet_median_ms(workload) -> float:
    """The lowest of three medians (30 runs each, no store): noise on a shared machine only slows."""
    protocol = Protocol(repeats=30, profile_runs=0)
    return min(measure_onnx(workload_graph(workload), protocol).median_ms for _ in range(3))


def test_small_build_predicts_held_out_and_orders(small: tuple[KernelPredictor, MeasurementStore]) -> None:
    predictor, _ = small
    # tiny: 60 layers, 2.4 M MACs; a 20-second build over-prices networks of many microsecond kernels
    # (seeds 511 and 545: x1.1-1.6 over three such builds, stop 35)
    networks = {"big": random_cnn(random.Random(501)), "tiny": random_cnn(random.Random(538))}
    assert networks["big"].macs > 10 * networks["tiny"].macs
    measured = {label: _quiet_median_ms(w) for label, w in networks.items()}
    predicted = {label: predictor.predict(w) for label, w in networks.items()}
    assert measured["big"] > measured["tiny"] and predicted["big"] > predicted["tiny"], (measured, predicted)
    for label in networks:  # a 20-second build: within a factor of 2 (quiet, 0.72-0.89 on an AVX2 EPYC)
        assert 0.5 < predicted[label] / measured[label] < 2.0, (label, measured, predicted)


def test_predict_layers_sum_to_predict(small: tuple[KernelPredictor, MeasurementStore]) -> None:
    predictor, _ = small
    assert predictor.correction is not None  # enough calibration networks for the learnt correction
    work = random_cnn(random.Random(7))
    assert sum(predictor.predict_layers(work).values()) == pytest.approx(predictor.predict(work))


def test_save_load_refits_identically(small: tuple[KernelPredictor, MeasurementStore], tmp_path: Path) -> None:
    predictor, _ = small
    works = [random_cnn(random.Random(i)) for i in range(3)]
    again = load(predictor.save(tmp_path / "p.json"))
    assert isinstance(again, KernelPredictor)
    assert [again.predict(w) for w in works] == [predictor.predict(w) for w in works]
    # its int8 kernels were timed in the storage this CPU's export uses, and the file says so
    assert again.int8_storage == predictor.int8_storage == native_int8().name


def test_missing_kernel_type_is_named(small: tuple[KernelPredictor, MeasurementStore]) -> None:
    predictor, _ = small
    conv_only = [s for s in predictor.samples if s.type == "conv"]
    narrow = KernelPredictor(conv_only, empty_ms=predictor.empty_ms)
    with pytest.raises(ConfigError, match="global_pool") as err:
        narrow.predict(random_cnn(random.Random(1)))
    assert "Rebuild" in err.value.fix


def test_other_devices_are_refused() -> None:
    with pytest.raises(ConfigError, match="predictor fit"):
        build("phone")


def test_adaptive_sampling_ignores_noise() -> None:
    """A sample off by more than 10 % is re-sampled only when the error also exceeds its own IQR."""
    from nn2hw.predict.kernel import KernelSample
    from nn2hw.predict.kernels import conv_features
    from nn2hw.predict.sampling import _bad_samples

    rng = random.Random(0)

    def samples(iqr_share: float) -> list[KernelSample]:
        out = []
        for i in range(24):
            features = conv_features(cin=8 + 4 * i, cout=16, h=8, w=8, k=3, s=1)
            median = 0.01 * (1 + i) * rng.uniform(0.5, 1.5)  # 50 % noise on a smooth trend
            out.append(KernelSample("conv", features, median, iqr_share * median))
        return out

    noisy = KernelPredictor(samples(2.0), empty_ms=0.001)
    assert _bad_samples(noisy) == []
    clean = KernelPredictor(samples(0.01), empty_ms=0.001)
    assert _bad_samples(clean)


def test_samples_timed_under_load_are_timed_again_first() -> None:
    """The sentinel's fastest reading is the unloaded machine: samples timed around a reading more than
    ``LOAD_TOLERANCE`` slower are suspects, the most slowed first, then samples of a wide IQR (not the
    microsecond ones, whose IQR is mostly the baseline's); the others are not."""
    from nn2hw.predict.kernel import KernelSample
    from nn2hw.predict.kernels import conv_features
    from nn2hw.predict.sampling import LOAD_TOLERANCE, WIDE_IQR_MIN_MS, WIDE_IQR_SHARE, _sample_key, _suspects

    def sample(i: int, median_ms: float = 0.01, iqr_share: float = 0.1) -> KernelSample:
        features = conv_features(cin=8 * (i + 1), cout=16, h=8, w=8, k=3, s=1)
        return KernelSample("conv", features, median_ms, iqr_share * median_ms)

    samples = [sample(0), sample(1), sample(2), sample(3), sample(4, iqr_share=2 * WIDE_IQR_SHARE),
               sample(5, iqr_share=1.5 * WIDE_IQR_SHARE), sample(6, WIDE_IQR_MIN_MS / 2, 4 * WIDE_IQR_SHARE)]
    readings = [0.050, 0.065, 0.050 * (1 + LOAD_TOLERANCE / 2), 0.080, 0.049, 0.050, 0.050]
    loads = {_sample_key(s): r for s, r in zip(samples, readings)}
    assert _suspects(samples, loads) == [samples[3], samples[1], samples[4], samples[5]]
    assert _suspects(samples[:4], {}) == []


def test_the_sentinel_reads_the_machine_without_storing(tmp_path: Path) -> None:
    """Its readings describe a moment, not a kernel: the store a build keeps stays empty."""
    from nn2hw.predict.sampling import BuildSettings, _Timer

    store = MeasurementStore(tmp_path / "m.sqlite")
    timer = _Timer(BuildSettings(), store)
    first = timer.sentinel_ms()
    runner = timer.sentinel
    assert first > 0 and timer.sentinel_ms() > 0 and timer.sentinel is runner  # one session, reused
    assert len(store) == 0


def test_calibration_networks_timed_under_load_are_timed_again_until_calm(tmp_path: Path) -> None:
    """The correction learns its level from the calibration networks: those whose kept timing ran while
    the sentinel was slow, or with a wide IQR, are timed again (the most slowed first), up to
    ``CALM_ROUNDS`` more times, each keeping its fastest timing; quiet ones are not touched."""
    from nn2hw.predict.kernel import NetworkSample
    from nn2hw.predict.sampling import CALM_ROUNDS, LOAD_TOLERANCE, WIDE_IQR_SHARE, _TimedNetwork, _Timer

    works = [random_cnn(random.Random(i), f"calibration-{i}") for i in range(5)]
    quiet_ms, slow_ms = 0.050, 0.050 * (1 + 2 * LOAD_TOLERANCE)

    class Scripted(_Timer):
        """Each network's next timings from a script (median ms, sentinel ms); records what it timed."""

        def __init__(self, script: dict[str, list[tuple[float, float]]]) -> None:
            super().__init__(BuildSettings(), MeasurementStore(tmp_path / "m.sqlite"))
            self.readings_ms, self.script, self.calls = [quiet_ms], script, []

        def _networks(self, group, passes):  # type: ignore[no-untyped-def]
            self.calls.append(([w.name for w in group], passes))
            return [_TimedNetwork(NetworkSample(w, *self.next(w.name)), self.load) for w in group]

        def next(self, name: str) -> tuple[float, float]:
            median, self.load = self.script[name].pop(0)
            return median, 0.01 * median

    def kept(i: int, load_ms: float, iqr_share: float = 0.01) -> _TimedNetwork:
        return _TimedNetwork(NetworkSample(works[i], 1.0, iqr_share), load_ms)

    nets = [kept(0, quiet_ms), kept(1, slow_ms), kept(2, 2 * slow_ms),  # quiet, slowed, most slowed
            kept(3, quiet_ms, iqr_share=2 * WIDE_IQR_SHARE)]            # a wide IQR
    timer = Scripted({"calibration-1": [(0.9, slow_ms)] * CALM_ROUNDS,            # never calm: every round
                      "calibration-2": [(0.8, quiet_ms)],                          # calm after one
                      "calibration-3": [(1.1, quiet_ms)] * CALM_ROUNDS})          # slower again: kept slowed
    out, count = timer.networks_calm(nets, deadline=float("inf"))
    assert [n.sample.median_ms for n in out] == [1.0, 0.9, 0.8, 1.0]
    assert timer.calls[0] == (["calibration-2", "calibration-1", "calibration-3"], 3)  # most slowed first
    assert [passes for _, passes in timer.calls] == [3 + r for r in range(CALM_ROUNDS)]  # one store key each
    assert "calibration-0" not in {n for names, _ in timer.calls for n in names}
    assert count == 3 + 2 * (CALM_ROUNDS - 1)
    assert [timer.slowed(n) for n in out] == [False, True, False, True]
    again, count = Scripted({}).networks_calm(nets, deadline=0.0)  # no time left: nothing timed
    assert again == nets and count == 0


def test_the_samples_timed_furthest_above_their_prediction_are_timed_again_first() -> None:
    """Load only slows a timing: of the bad samples, one timed at twice its neighbours' trend comes
    before those timed below theirs, so a budget that ends early has re-timed it."""
    from nn2hw.predict.kernel import KernelSample
    from nn2hw.predict.kernels import conv_features
    from nn2hw.predict.sampling import _bad_samples

    samples = []
    for i in range(30):
        features = conv_features(cin=8 + 4 * i, cout=16, h=8, w=8, k=3, s=1)
        median = 0.01 * (1 + i) * (2.0 if i == 17 else 0.8 if i % 7 == 3 else 1.0)
        samples.append(KernelSample("conv", features, median, 0.001 * median))
    bad = _bad_samples(KernelPredictor(samples, empty_ms=0.001))
    assert len(bad) > 1 and bad[0] is samples[17]


def test_a_build_times_its_bad_samples_and_calibration_networks_again(
        small: tuple[KernelPredictor, MeasurementStore]) -> None:
    """Load on a shared machine only slows a run: a build times its calibration networks a second time
    and the samples its trees miss by > 10 % again (stored under their own protocol key), keeping the
    faster timing of each."""
    predictor, store = small
    again = [entry for entry in store.entries() if "passes=2" in entry.protocol]
    assert again, "nothing was timed a second time"
    second = {entry.network: entry.measurement.median_ms for entry in again}
    settings = BuildSettings()
    protocol = settings.protocol(settings.network_repeats, passes=2)  # the second timing's
    for network in predictor.networks:
        key = onnx_runner(workload_graph(network.workload), protocol).key
        assert network.median_ms <= second[key]  # the faster of its two timings


def test_a_file_fitted_with_another_regressor_is_refused(small: tuple[KernelPredictor, MeasurementStore],
                                                         tmp_path: Path) -> None:
    import json

    predictor, _ = small
    record = predictor.to_dict()
    del record["regressor"]  # as files of nn2hw before stop 35 (random forests) are
    path = tmp_path / "old.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="random forests") as err:
        load(path)
    assert "Build it again" in err.value.fix


def test_a_file_of_another_detector_version_is_refused(small: tuple[KernelPredictor, MeasurementStore],
                                                       tmp_path: Path) -> None:
    """Samples of other kernels (version 2 had no int8 max pools) would be refitted into wrong prices."""
    import json

    from nn2hw.predict.kernels import DETECTOR_VERSION

    predictor, _ = small
    record = predictor.to_dict()
    assert record["detector"] == DETECTOR_VERSION
    del record["detector"]  # as files of nn2hw before it was stored are
    path = tmp_path / "old.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="detector version 2") as err:
        load(path)
    assert "Build it again" in err.value.fix


def test_cut_variants_cut_the_given_networks_as_a_search_would() -> None:
    """A build samples the kernels of random channel cuts of the networks it is given: every cut group
    narrower, its consumers' input channels following; a network with nothing to cut gives none."""
    from nn2hw.api import zoo_workload
    from nn2hw.predict.sampling import CUT_SOURCE, _cut_variant, _NetBuilder

    base = zoo_workload("resnet20", "fashion-mnist")
    variants = [_cut_variant(base, random.Random(seed)) for seed in range(6)]
    assert all(v is not None and v.source == CUT_SOURCE for v in variants)
    for variant in variants:
        widths = {layer.name: layer for layer in variant.layers}
        narrower = [g for g in base.coupling_groups if widths[g.layers[0]].out_channels < g.channels]
        assert narrower and all(widths[name].out_channels == widths[g.layers[0]].out_channels
                                for g in narrower for name in g.layers)
        for layer in variant.layers:
            if layer.kind is OpKind.CONV and layer.inputs:
                assert layer.in_channels == widths[layer.inputs[0]].out_channels
    assert len({tuple(layer.out_channels for layer in v.layers) for v in variants if v}) > 1
    head_only = _NetBuilder("head", (1, 3, 8, 8)).workload(10)  # pool, flatten, linear: its width is the output's
    assert not any(g.cuttable for g in head_only.coupling_groups)
    assert _cut_variant(head_only, random.Random(0)) is None


def test_the_searched_networks_cuts_come_before_the_other_networks() -> None:
    """The cpu template gives the network about to be searched first: its cuts are sampled before the
    zoo's other networks and their cuts (a 120-s build times about 1,000 kernels of that queue first)."""
    from nn2hw.api import zoo_workload
    from nn2hw.predict.sampling import CUT_SOURCE, CUT_VARIANTS, _with_cut_variants

    searched, *zoo = [zoo_workload("resnet20", "fashion-mnist"), zoo_workload("vgg_fmnist", "fashion-mnist"),
                      zoo_workload("mobilenetv2_fmnist", "fashion-mnist")]
    order = _with_cut_variants([searched, *zoo], random.Random(0))
    assert order[0] is searched and order[CUT_VARIANTS + 1:CUT_VARIANTS + 3] == zoo
    assert all(w.source == CUT_SOURCE and w.input_shape == searched.input_shape and
               {layer.name for layer in w.layers} == {layer.name for layer in searched.layers}
               for w in order[1:CUT_VARIANTS + 1])
    assert len(order) == 3 + 3 * CUT_VARIANTS
