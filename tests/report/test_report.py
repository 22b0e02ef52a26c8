"""Report pieces: the Pareto front is exactly the non-dominated set; files are written and readable."""

from __future__ import annotations

import csv

from hypothesis import given
from hypothesis import strategies as st

from nn2hw.compress import apply_plan, transforms_of
from nn2hw.hardware.records import LayerCost, NetworkCost
from nn2hw.plan import LayerChoice, Plan
from nn2hw.report import ParetoPoint, layer_rows, pareto_front, plot_pareto, write_html, write_pareto_csv
from nn2hw.report.layers import write_layers_csv
from nn2hw.workload import from_module
from tests.workload.nets import TinyResNet

points = st.lists(st.builds(ParetoPoint, st.integers(0, 10_000), st.floats(0.1, 100), st.floats(0, 100),
                            st.booleans()), max_size=40, unique_by=lambda p: p.trial)


def dominates(a: ParetoPoint, b: ParetoPoint) -> bool:
    return a.latency_ms <= b.latency_ms and a.top1 >= b.top1 and (a.latency_ms, a.top1) != (b.latency_ms, b.top1)


@given(points)
def test_front_is_the_non_dominated_set(pts):
    front = pareto_front(pts)
    assert all(not dominates(q, p) for p in front for q in pts)
    keys = {(p.latency_ms, p.top1) for p in front}
    assert all((p.latency_ms, p.top1) in keys or any(dominates(q, p) for q in front) for p in pts)


def test_files(tmp_path):
    pts = [ParetoPoint(0, 5.0, 90.0, True), ParetoPoint(1, 4.0, 91.0, True), ParetoPoint(2, 9.0, 80.0, False)]
    rows = list(csv.DictReader(write_pareto_csv(tmp_path / "p.csv", pts).open()))
    assert [r["pareto"] for r in rows] == ["False", "True", "False"]
    png = plot_pareto(tmp_path / "p.png", pts, spec_ms=6.0, base=(9.0, 91.5), solution=(4.0, 91.0), title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    w = from_module(TinyResNet(), (1, 3, 32, 32), name="tiny")
    plan = Plan.for_workload(w).with_choice("layer1.0.conv1", out_channels=8, weight_bits=8)
    after = apply_plan(plan, w)

    def cost(workload, ms):
        return NetworkCost("t", "d", {}, 100.0, tuple(
            LayerCost(l.name, "conv", l.macs, ms * l.macs, ms * l.macs / 1e5, "C") for l in workload.compute_layers))

    table = layer_rows(cost(w, 1e-3), cost(after, 1e-3), {"layer1.0.conv1": "C"}, plan, w, after)
    row = {r.layer: r for r in table}
    assert row["layer1.0.conv1"].technique == "channel cut, quantization"
    assert row["layer1.0.conv1"].choice == "16->8 ch; 8-bit weights"
    assert row["layer1.0.conv2"].technique == "follows a cut" and row["layer1.0.conv2"].saved_ms > 0
    assert row["conv1"].choice == "-" and row["conv1"].saved_ms == 0
    assert transforms_of(LayerChoice()) == ()
    write_layers_csv(tmp_path / "layers.csv", table)
    page = write_html(tmp_path / "s.html", "Search <x>", {"spec": "1 ms"}, table, png, ["a note"]).read_text()
    assert "Search &lt;x&gt;" in page and "data:image/png;base64," in page and "16-&gt;8 ch" in page
