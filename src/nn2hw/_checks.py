"""The project's one set of value coercers: user text or JSON values -> checked Python values.

Hardware parameters, template options, plan fields and configuration files arrive as strings
(``--hw-param rows=32``) or JSON values. Each coercer accepts both, and raises a ``ConfigError``
naming the value, what was expected and an example of a good one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from nn2hw.errors import ConfigError

TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


def as_int(value: Any, what: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` (an int, an integral float or an integer string) as an int in [lo, hi]."""
    span = "a positive integer" if lo == 1 and hi is None else (
        f"an integer {lo}..{hi}" if hi is not None else f"an integer >= {lo}")
    example = lo if hi is not None else max(lo, 32)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{what} must be {span}, got {value.strip()!r}.",
                              f"Give {what} as a whole number, e.g. {example}.") from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    number = int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None
    if number is None or number < lo or (hi is not None and number > hi):
        raise ConfigError(f"{what} must be {span}, got {value!r}.", f"Give {what} as a whole number, e.g. {example}.")
    return number


def as_shape(value: Any, what: str = "The input shape") -> tuple[int, ...]:
    """A tensor shape, batch first: '1x1x28x28' (or with commas) or a sequence of sizes, as a tuple
    of positive ints; a ConfigError naming ``what`` otherwise."""
    parts: Any = value.strip().lower().replace(",", "x").split("x") if isinstance(value, str) else value
    try:
        sizes = [int(p) if isinstance(p, str) or (isinstance(p, numbers.Integral) and not isinstance(p, bool))
                 else None for p in parts]
    except (TypeError, ValueError):
        sizes = [None]
    if not sizes or any(size is None or size < 1 for size in sizes):
        raise ConfigError(f"{what} {value!r} is not sizes joined by 'x' (positive whole numbers, batch first).",
                          "Write it as BATCHxCHANNELSxHEIGHTxWIDTH, e.g. 1x1x28x28.")
    return tuple(int(size) for size in sizes if size is not None)


def as_float(value: Any, what: str, lo: float = 0.0, inclusive: bool = False) -> float:
    """``value`` as a finite float > lo (>= lo when ``inclusive``)."""
    bound = "a positive number" if lo == 0 and not inclusive else (
        f"a number >= {lo:g}" if inclusive else f"a number > {lo:g}")
    shown = value.strip() if isinstance(value, str) else value
    try:
        number = float(shown)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be {bound}, got {shown!r}.", f"Give {what} as e.g. 16.") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < lo or (number == lo and not inclusive):
        raise ConfigError(f"{what} must be {bound}, got {shown!r}.", f"Give {what} as e.g. 16.")
    return number


def as_bool(value: Any, what: str) -> bool:
    """``value`` (a bool or true/false/yes/no/on/off/1/0) as a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(f"{what} must be true or false, got {value!r}.", f"Write {what}=true or {what}=false.")


def as_choice(value: Any, what: str, options: Sequence[str]) -> str:
    """``value`` as one of ``options`` (case-insensitive), with close names suggested otherwise."""
    from nn2hw.registry import suggest

    text = str(value).strip().lower()
    if text not in options:
        raise ConfigError(f"{what} must be one of {', '.join(options)}, got {value!r}.{suggest(text, list(options))}",
                          f"Write e.g. {what}={options[0]}.")
    return text


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int and not a bool (JSON integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_batch_size(batch_size: int) -> None:
    """A ``ConfigError`` unless ``batch_size`` is a positive int (training and test batches)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"Batch size {batch_size!r} is not a positive integer.", "Use e.g. 32 or 256.")
