"""Helpers the benchmarks share (import with ``benchmarks/`` on ``sys.path``, as a script run from
there has it)."""

from __future__ import annotations

import statistics


def spread(values: list[float], digits: int = 2) -> str:
    """'mean ± sd (min .. max)' of a list of per-seed figures, at ``digits`` decimals."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f} "
            f"({min(values):.{digits}f} .. {max(values):.{digits}f})")
