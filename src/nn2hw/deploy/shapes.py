"""Input shapes: parsed from the command line, checked, or read off a plan / its zoo model."""

from __future__ import annotations

from typing import Any

import numpy as np

from nn2hw.errors import ConfigError, Nn2hwError
from nn2hw.plan import Plan


def check_shape(shape: Any, what: str = "input shape") -> tuple[int, ...]:
    """``shape`` as a tuple of positive integers, or a ConfigError."""
    try:
        values = tuple(shape)
    except TypeError:
        values = ()
    if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                             for v in values):
        raise ConfigError(f"The {what} {shape!r} is not a sequence of positive whole numbers.",
                          "Give the batch and every dimension, e.g. 1x1x28x28.")
    return tuple(int(v) for v in values)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x1x28x28' -> (1, 1, 28, 28); a ConfigError for anything else (non-positive sizes included)."""
    try:
        values = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ConfigError(f"The input shape {text!r} is not whole numbers joined by 'x'.",
                          "Write it as BATCHxCHANNELSxHEIGHTxWIDTH, e.g. 1x1x28x28.") from None
    return check_shape(values)


def plan_input_shape(plan: Plan) -> tuple[int, ...] | None:
    """The input shape a plan records, else its zoo model's variant (batch 1); None when neither knows."""
    if plan.input_shape:
        return tuple(plan.input_shape)
    from nn2hw import zoo

    try:
        return (1, *zoo.entry(plan.base_model).variant(plan.dataset).input_shape)
    except Nn2hwError:
        return None
