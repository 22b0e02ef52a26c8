"""A search on a measured template says when the timed ONNX file kept quantized layers as float
operators: its latency is the file's, and the per-layer table still lists their quantization."""

from __future__ import annotations

from nn2hw.search.finalize import _export_notes


def test_float_layers_of_the_timed_file_are_named_with_their_reason():
    kept = {f"layer{i}": "8-bit weights but float activations: an int8 kernel needs both quantized" for i in range(5)}
    note, = _export_notes({"median_ms": 1.0, "onnx": {"fp32_layers": kept, "int8_layers": ["fc"]}})
    assert note.startswith("The timed ONNX file kept 5 quantized layer(s) as float operators (layer0: 8-bit")
    assert "layer2" in note and "layer3" not in note and "and 2 more" in note and "per-layer table" in note


def test_nothing_is_said_when_every_quantized_layer_ran_int8_or_nothing_was_timed():
    assert _export_notes({"median_ms": 1.0, "onnx": {"fp32_layers": {}, "int8_layers": ["fc"]}}) == []
    assert _export_notes({"median_ms": 1.0}) == []  # cpu:torch times the model, not a file
    assert _export_notes(None) == []  # an analytical template
