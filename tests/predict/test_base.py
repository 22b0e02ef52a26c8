"""The stored form of predictors: JSON round trip (refit on load, same predictions), format checks, bad files."""

from __future__ import annotations

import json
import sys

import pytest

from nn2hw import __version__
from nn2hw.errors import ConfigError
from nn2hw.predict import fit, load
from nn2hw.predict.base import ENVELOPE_KEYS, FORMAT_VERSION, PREDICTOR_KINDS, from_dict
from nn2hw.testing.workloads import conv_net
from tests.predict.helpers import cut, cut_variants

pytest.importorskip("sklearn", reason="predictors need scikit-learn (pip install 'nn2hw[predict]')")


@pytest.fixture(scope="module")
def predictor():
    workloads, latencies = cut_variants(conv_net())
    return fit(workloads, latencies, device="test-board", seed=3)


@pytest.fixture
def saved(predictor, tmp_path):
    return predictor.save(tmp_path / "sub" / "p.json")


def test_save_load_round_trip_gives_identical_predictions(predictor, saved):
    held_out = [cut(conv_net(), keep) for keep in (0.35, 0.55, 0.65, 0.85)]
    again = load(saved)
    assert (again.kind, again.device, again.seed) == ("whole", "test-board", 3)
    assert [again.predict(w) for w in held_out] == [predictor.predict(w) for w in held_out]
    assert again.to_dict() == predictor.to_dict()


def test_stored_form_is_json_with_envelope_and_measurements(predictor, saved):
    record = json.loads(saved.read_text())
    assert set(ENVELOPE_KEYS) <= set(record)
    assert record["format"] == FORMAT_VERSION and record["nn2hw_version"] == __version__
    assert record["hyper"]["n_estimators"] > 0
    assert len(record["samples"]) == 11
    assert {"workload", "latency_ms"} == set(record["samples"][0])
    assert predictor.predict_layers(conv_net()) == {"network": predictor.predict(conv_net())}
    assert "whole" in PREDICTOR_KINDS


def _rewrite(path, change):
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_other_format_version_names_file_versions_and_refit(saved):
    _rewrite(saved, lambda r: r.update(format=FORMAT_VERSION + 1, nn2hw_version="9.9.9"))
    with pytest.raises(ConfigError, match=r"format 2 \(written by nn2hw 9\.9\.9\)") as info:
        load(saved)
    assert str(saved) in info.value.cause and "Refit" in info.value.fix


@pytest.mark.parametrize("text, cause", [("{not json", "corrupt: not JSON"), ("[1, 2]", "not an object"),
                                         ("\x00\xff garbage", "corrupt"), ('{"kind": "whole"}', "no 'format'")])
def test_corrupt_files_are_config_errors_naming_the_file(tmp_path, text, cause):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=cause) as info:
        load(path)
    assert str(path) in info.value.cause


def test_missing_keys_unknown_kind_and_bad_samples(saved):
    _rewrite(saved, lambda r: r.pop("samples"))
    with pytest.raises(ConfigError, match=r"lacks the keys \['samples'\]"):
        load(saved)
    record = json.loads(saved.read_text())
    with pytest.raises(ConfigError, match="unknown predictor kind 'lookup'"):
        from_dict({**record, "samples": [], "kind": "lookup"})


def test_tampered_measurements_are_named(predictor, tmp_path):
    record = predictor.to_dict()
    record["samples"][2]["latency_ms"] = -1.0
    with pytest.raises(ConfigError, match=r"p\.json: Stored latency #2 is -1\.0"):
        from_dict(record, "p.json")
    record["samples"][2] = {"latency_ms": 1.0}
    with pytest.raises(ConfigError, match=r"p\.json is malformed \(KeyError"):
        from_dict(record, "p.json")


def test_missing_file_and_missing_sklearn(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="Cannot read predictor file"):
        load(tmp_path / "absent.json")
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    workloads, latencies = cut_variants(conv_net())
    with pytest.raises(ConfigError, match="scikit-learn") as info:
        fit(workloads, latencies)
    assert "nn2hw[predict]" in info.value.fix
