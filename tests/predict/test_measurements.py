"""Measurement CSVs: round trip, relative paths, and every bad input named with its line."""

from __future__ import annotations

import pytest

from nn2hw.errors import ConfigError, ModelError
from nn2hw.predict.measurements import Measurement, read_measurements, read_rows, write_measurements
from nn2hw.testing.workloads import conv_net

HEADER = "network,dataset,input_shape,latency_ms\n"


def _csv(tmp_path, text, name="m.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_write_read_round_trip_and_identical_repeat_kept_once(tmp_path):
    rows = [Measurement("resnet20", 1.25, "fashion-mnist", (1, 1, 28, 28)), Measurement("net.onnx", 0.5),
            Measurement("resnet20", 1.25, "fashion-mnist", (1, 1, 28, 28))]
    path = write_measurements(tmp_path / "out" / "m.csv", rows)
    assert path.read_text().splitlines()[:2] == ["network,dataset,input_shape,latency_ms",
                                                 "resnet20,fashion-mnist,1x1x28x28,1.25"]
    read = read_rows(path)
    assert [(r.network, r.dataset, r.input_shape, r.latency_ms, r.line) for r in read] == [
        ("resnet20", "fashion-mnist", (1, 1, 28, 28), 1.25, 2), ("net.onnx", None, None, 0.5, 3)]


def test_resolver_gets_paths_relative_to_the_csv(tmp_path):
    (tmp_path / "nets").mkdir()
    path = _csv(tmp_path / "nets", "network,latency_ms\nconv.json,2\nresnet20,3\n")
    seen = []

    def resolve(network, dataset, input_shape):
        seen.append((network, dataset, input_shape))
        return conv_net()

    workloads, latencies = read_measurements(path, resolve)
    assert len(workloads) == 2 and latencies == (2.0, 3.0)
    assert seen == [(str(tmp_path / "nets" / "conv.json"), None, None), ("resnet20", None, None)]


def test_resolver_errors_name_the_line(tmp_path):
    path = _csv(tmp_path, "network,latency_ms\nresnet20,2\nmystery,3\n")

    def resolve(network, dataset, input_shape):
        if network == "mystery":
            raise ModelError("No model 'mystery'.", "Use a zoo name.")
        return conv_net()

    with pytest.raises(ModelError, match=r"m\.csv line 3 \(mystery\): No model 'mystery'\."):
        read_measurements(path, resolve)


@pytest.mark.parametrize("text, message", [
    ("network,dataset\nresnet20,cifar10\n", r"missing columns \['latency_ms'\]"),
    ("model,latency_ms\nresnet20,1\n", r"missing columns \['network'\]; unknown columns \['model'\]"),
    (HEADER + "resnet20,,,fast\n", r"line 2: latency_ms 'fast' is not a number"),
    (HEADER + "resnet20,,,1\nresnet32,,,-3\n", r"line 3: latency_ms '-3' is not a positive finite number"),
    (HEADER + "resnet20,,,0\n", r"line 2: latency_ms '0' is not a positive"),
    (HEADER + "resnet20,,,nan\n", r"latency_ms 'nan' is not a positive finite"),
    (HEADER + "resnet20,,,\n", r"latency_ms '' is not a number"),
    (HEADER + "resnet20,,1x28xx28,1\n", r"line 2: input_shape '1x28xx28' is not sizes"),
    (HEADER + ",,,1\n", r"line 2: the network cell is empty"),
    (HEADER + "resnet20,,,1,extra\n", r"line 2 has more cells than the header"),
    (HEADER, r"has no measurements"),
    ("", r"missing columns \['network', 'latency_ms'\]"),
])
def test_bad_cells_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        read_rows(_csv(tmp_path, text))
    assert str(tmp_path / "m.csv") in info.value.cause and info.value.fix


def test_conflicting_duplicates_are_listed_not_averaged(tmp_path):
    path = _csv(tmp_path, HEADER + "resnet20,fashion-mnist,,1.0\nresnet20,cifar10,,2.0\n"
                                   "resnet20,fashion-mnist,,1.5\nresnet20,cifar10,,2.0\nvgg,,,1\nvgg,,,3\n")
    with pytest.raises(ConfigError) as info:
        read_rows(path)
    cause = info.value.cause
    assert "resnet20 (fashion-mnist): 1 ms (line 2) vs 1.5 ms (line 4)" in cause
    assert "vgg: 1 ms (line 6) vs 3 ms (line 7)" in cause and "cifar10" not in cause
    assert "does not average" in info.value.fix


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read measurement file"):
        read_rows(tmp_path / "absent.csv")
