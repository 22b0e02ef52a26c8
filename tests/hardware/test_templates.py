"""Every registered hardware template keeps the template contract (the registry is the test inventory)."""

from __future__ import annotations

import pytest

from nn2hw.hardware import TEMPLATES, get_template
from nn2hw.testing.templates import TemplateContract

LADDERS = {"fpga": [{"bram18": 210}, {"bram18": 250}, {}], "hetero": [{"max_pes": 512}, {"max_pes": 2048}]}
"""Budgets of increasing size per template; ASIC-style templates default to a PE budget ladder. The FPGA
ladder is on BRAM: the HotNAS grid derives Tn from the DSP budget (Tn = DSP // Tm), so a DSP budget
changes the grid itself, not only the limit, and is not monotone (docs/fpga-cost-model.md)."""


@pytest.fixture(autouse=True)
def _predictors(predictor_cache, monkeypatch):
    """The predictor-based templates (``cpu``, ``predictor``) read a small fitted predictor."""
    monkeypatch.setenv("NN2HW_CACHE", str(predictor_cache))


class TestEveryTemplate(TemplateContract):
    @pytest.fixture(params=TEMPLATES.names())
    def template(self, request):
        return TEMPLATES.get(request.param)

    @pytest.fixture
    def budget_ladder(self, template):
        from nn2hw.hardware.asic.template import AsicTemplate

        default = [{"max_pes": 256}, {"max_pes": 1024}, {}] if isinstance(template, AsicTemplate) else []
        return LADDERS.get(template.name, default)


@pytest.mark.parametrize("name", TEMPLATES.names())
def test_every_device_is_reachable_by_name(name):
    template = TEMPLATES.get(name)
    for device in template.devices():
        assert get_template(f"{name}:{device}") == (template, device)
