"""FORMS-style polarized crossbar columns (``signed=polarized``): which sign each column fragment
holds, and whether a layer's weights respect it (NumPy; no torch).

A conv or linear weight of shape (C_out, C_in/groups, K, K) (or (C_out, C_in)) is programmed as the
unrolled matrix ``weight.reshape(C_out, T)``, T = C_in/groups x K^2 crossbar rows, the rows in
``(C_in, K_h, K_w)`` order (the model's ``array`` mapping). A crossbar of ``rows`` rows holds a
*column fragment*: ``rows`` consecutive rows of one output channel's column. Polarized, every
fragment holds weights of one sign (zeros fit either), so no second array or offset column is
needed (Yuan et al., FORMS, ISCA 2021).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nn2hw.errors import HardwareError

Weights = NDArray[np.floating]


def _fragments(weight: Weights, rows: int) -> Weights:
    """``weight`` as (C_out, fragments, rows), zero-padded to whole fragments."""
    if not (isinstance(rows, int) and not isinstance(rows, bool) and rows >= 1):
        raise HardwareError(f"rows={rows!r} is not a positive whole number of crossbar rows.",
                            "Give the crossbar's rows, e.g. 128.")
    matrix = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    pad = -matrix.shape[1] % rows
    return np.pad(matrix, ((0, 0), (0, pad))).reshape(matrix.shape[0], -1, rows)


def fragment_signs(weight: Weights, rows: int) -> Weights:
    """+1 or -1 per weight: the sign of its column fragment, chosen as the Euclidean projection
    onto one-signed fragments would (the sign whose weights carry more of the fragment's L2 norm;
    ties and all-zero fragments +1). Shape of ``weight``."""
    frags = _fragments(weight, rows)
    positive = np.square(np.clip(frags, 0, None)).sum(axis=2)
    negative = np.square(np.clip(frags, None, 0)).sum(axis=2)
    signs = np.where(positive >= negative, 1.0, -1.0)
    full = np.repeat(signs[:, :, None], rows, axis=2).reshape(weight.shape[0], -1)
    out: Weights = full[:, : int(np.prod(weight.shape[1:]))].reshape(weight.shape)
    return out


def mixed_fragments(weight: Weights, rows: int) -> int:
    """How many column fragments of ``weight`` hold both a positive and a negative weight (0: polarized)."""
    frags = _fragments(weight, rows)
    return int(np.logical_and((frags > 0).any(axis=2), (frags < 0).any(axis=2)).sum())


def check_polarized(weights: dict[str, Weights], rows: int) -> None:
    """A HardwareError naming the layers whose column fragments of ``rows`` mix signs."""
    bad = {name: n for name, w in weights.items() if (n := mixed_fragments(w, rows))}
    if bad:
        listed = ", ".join(f"{name} ({n} fragments)" for name, n in list(bad.items())[:4])
        more = f" and {len(bad) - 4} more layers" if len(bad) > 4 else ""
        raise HardwareError(
            f"signed=polarized needs every column fragment of rows={rows} to hold weights of one sign (FORMS), but "
            f"{listed}{more} mix positive and negative weights.",
            f"Fine-tune with the polarize transform first (a plan with polarize_rows={rows} on every conv/linear "
            "layer: nn2hw.compress.with_polarization), or use signed=differential or offset.")
