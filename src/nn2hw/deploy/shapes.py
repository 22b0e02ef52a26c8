"""The input shape a plan records, or its zoo model's (shapes are parsed and checked by ``nn2hw._checks.as_shape``)."""

from __future__ import annotations

from nn2hw.errors import Nn2hwError
from nn2hw.plan import Plan


def plan_input_shape(plan: Plan) -> tuple[int, ...] | None:
    """The input shape a plan records, else its zoo model's variant (batch 1); None when neither knows."""
    if plan.input_shape:
        return tuple(plan.input_shape)
    from nn2hw import zoo

    try:
        return (1, *zoo.entry(plan.base_model).variant(plan.dataset).input_shape)
    except Nn2hwError:
        return None
