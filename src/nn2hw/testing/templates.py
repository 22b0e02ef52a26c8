"""The hardware-template conformance suite: what every template must keep, as pytest tests.

Subclass ``TemplateContract`` and give the ``template`` fixture (optionally ``device`` and
``budget_ladder``)::

    class TestMyTemplate(TemplateContract):
        @pytest.fixture
        def template(self):
            return MyTemplate()

nn2hw's own tests run it for every registered template, so registering a template enrols it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from nn2hw._json import jsonable
from nn2hw.compress import TRANSFORMS
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware.base import HardwareTemplate
from nn2hw.hardware.records import Execution, NetworkCost
from nn2hw.spec import METRICS
from nn2hw.testing.workloads import conv_net, every_op
from nn2hw.workload import OpKind, Workload

WITH_CYCLES = {Execution.ARRAY, Execution.VECTOR}
GRAPH_FUSED = {Execution.FUSED, Execution.LAYOUT}
"""What a runtime that fuses by looking at the graph (``fused_by_graph``) may report for any op: run
inside another op's kernel, or no kernel of its own (constant-folded, layout)."""


def _explore(template: HardwareTemplate, workload: Workload, device: str | None, **options: Any) -> NetworkCost:
    return template.explore(workload, device, **options).best


class TemplateContract:
    """Determinism, the design's text round trip, every op costed or explained, budgets, limits."""

    @pytest.fixture
    def device(self, template: HardwareTemplate) -> str | None:
        """The device the checks run on: the template's first."""
        return template.devices()[0]

    @pytest.fixture
    def budget_ladder(self, template: HardwareTemplate) -> Sequence[Mapping[str, Any]]:
        """Options of increasing budget (e.g. ``[{"max_pes": 256}, {"max_pes": 1024}]``); none by default."""
        return ()

    def test_declares_itself(self, template: HardwareTemplate) -> None:
        assert template.name and template.description and template.devices()
        names = [o.name for o in template.options]
        assert len(names) == len(set(names)) and all(o.help for o in template.options)
        assert not set(names) & set(template.design_fields()), "an option and a design field share a name"
        assert set(template.metrics) <= set(METRICS) and "latency_ms" in template.metrics
        assert set(template.remedies) <= set(template.bottlenecks), "a remedy for an undeclared bottleneck"
        for techniques in template.remedies.values():
            assert set(techniques) <= set(TRANSFORMS.names()), f"unregistered transforms in remedies: {techniques}"
        for name, options in template.space_options.items():
            assert name in TRANSFORMS.names(), f"space_options names an unregistered transform: {name}"
            assert options and all(TRANSFORMS.get(name).check_option(o) for o in options), (name, options)
        assert all(isinstance(mode, Execution) for mode in template.execution.values())

    def test_an_unknown_option_is_refused_with_the_list(self, template: HardwareTemplate) -> None:
        with pytest.raises(ConfigError) as error:
            template.split_params({"no_such_option": "1"})
        assert "no_such_option" in error.value.cause and all(o.name in error.value.fix for o in template.options)

    def test_every_op_is_costed_or_explained(self, template: HardwareTemplate, device: str | None) -> None:
        workload = every_op(template.execution)
        cost = _explore(template, workload, device)
        costed = {layer.name: layer for layer in cost.layers}
        explained = {u.name: u for u in cost.uncosted}
        for layer in workload.layers:
            if layer.kind is OpKind.INPUT:
                continue
            assert (layer.name in costed) != (layer.name in explained), f"{layer.name} must be costed xor explained"
            mode = template.execution_of(layer, {})
            if layer.name in costed:
                assert costed[layer.name].execution in WITH_CYCLES and costed[layer.name].cycles >= 0
            else:
                record = explained[layer.name]
                assert record.reason and record.execution not in WITH_CYCLES
                assert (record.execution is None) == (layer.kind is OpKind.OTHER)
                assert mode == record.execution or (template.fused_by_graph and record.execution in GRAPH_FUSED), (
                    f"{layer.name}: {record.execution} but the template runs {layer.kind.value} ops as {mode}")
        assert cost.total_cycles == pytest.approx(sum(layer.cycles for layer in cost.critical_layers()))
        assert cost.latency_ms > 0

    def test_a_kind_it_cannot_run_is_named(self, template: HardwareTemplate, device: str | None) -> None:
        missing = [k for k in OpKind if k not in template.execution and k not in (OpKind.INPUT, OpKind.OTHER)]
        workload = every_op([*template.execution, *missing])
        unknown = [layer for layer in workload.layers if layer.kind in missing]
        if not unknown:
            pytest.skip(f"{template.name} runs every op kind")
        with pytest.raises(HardwareError) as error:
            template.execution_of(unknown[0], {})
        assert unknown[0].kind.value in error.value.cause and unknown[0].name in error.value.cause

    def test_costs_are_deterministic(self, template: HardwareTemplate, device: str | None) -> None:
        first, again = _explore(template, conv_net(), device), _explore(template, conv_net(), device)
        assert jsonable(first.design) == jsonable(again.design) and first.to_dict() == again.to_dict()

    def test_a_design_survives_its_text_form(self, template: HardwareTemplate, device: str | None) -> None:
        best = _explore(template, conv_net(), device)
        text = json.dumps(jsonable(best.design))
        design = template.parse_design({"design": json.loads(text)})
        recost = template.cost(conv_net(), design, device)
        assert recost.latency_ms == pytest.approx(best.latency_ms, rel=1e-12)
        assert json.dumps(jsonable(recost.design)) == text

    def test_a_larger_budget_never_gives_a_slower_design(self, template: HardwareTemplate, device: str | None,
                                                         budget_ladder: Sequence[Mapping[str, Any]]) -> None:
        if len(budget_ladder) < 2:
            pytest.skip("no budget ladder given for this template")
        latencies = []
        for step in budget_ladder:
            _, options = template.split_params(dict(step))
            latencies.append(_explore(template, conv_net(), device, **options).latency_ms)
        assert all(b <= a * (1 + 1e-12) for a, b in zip(latencies, latencies[1:])), latencies

    def test_the_best_design_fits_every_limit(self, template: HardwareTemplate, device: str | None,
                                              budget_ladder: Sequence[Mapping[str, Any]]) -> None:
        for step in (*budget_ladder, {})[:2]:
            _, options = template.split_params(dict(step))
            found = template.explore(conv_net(), device, **options)
            assert found.best.fits and all(r.used <= r.available for r in found.best.resources)
            assert found.best in found.pareto and all(p.fits for p in found.pareto)
