"""The fixed-point rule of every quantized value in nn2hw, stated once.

``bits``-bit values with ``int_bits`` integer bits are multiples of the step 2^-(bits - int_bits),
clamped to [-2^(int_bits-1), 2^(int_bits-1) - step]. Integer bits chosen automatically hold the
largest magnitude unclipped: int_bits = e + 1 for largest = f * 2^e (0.5 <= f < 1), within
[bits - MAX_FRAC_BITS, bits]. The quantize transform (``nn2hw.compress``), the zoo's supernets and
the differentiable search all quantize through these functions, so their grids agree. Torch is
imported when a tensor function runs (the integer rule is plain Python).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_FRAC_BITS = 32
"""At most this many fraction bits (integer bits may be negative down to ``bits - 32``)."""


def int_bits_for(largest: float, bits: int) -> int:
    """Integer bits for ``bits``-bit values whose largest magnitude is ``largest`` (the module's rule)."""
    int_bits = math.frexp(largest)[1] + 1 if largest > 0 else 1
    return max(bits - MAX_FRAC_BITS, min(bits, int_bits))


def int_bits_of(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``int_bits_for(max|x|, bits)`` as a tensor on ``x``'s device (no host sync: the supernets call it
    every step)."""
    import torch

    largest = x.detach().abs().amax()
    return torch.where(largest > 0, torch.frexp(largest).exponent + 1, 1).clamp(bits - MAX_FRAC_BITS, bits)


def fixed_point_step(bits: int, int_bits: int) -> float:
    """The step of ``bits``-bit fixed point with ``int_bits`` integer bits: 2^-frac (frac = bits - int)."""
    return 2.0 ** (int_bits - bits)


def fixed_point(x: torch.Tensor, bits: int, int_bits: int | torch.Tensor) -> torch.Tensor:
    """Round to a multiple of 2^-frac and clamp to [-2^(int-1), 2^(int-1) - 2^-frac] (frac = bits - int);
    ``int_bits`` an int or an integer tensor (``int_bits_of``)."""
    import torch

    exponent = torch.as_tensor(int_bits, device=x.device)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    step, top = torch.ldexp(one, exponent - bits), torch.ldexp(one, exponent - 1)
    return torch.minimum(torch.maximum(torch.round(x / step) * step, -top), top - step)


def straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass, the identity's gradient in the backward pass (STE)."""
    return x + (q - x).detach()


def fake_quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` in ``bits``-bit fixed point at its own automatic integer bits, straight-through."""
    return straight_through(x, fixed_point(x, bits, int_bits_of(x, bits)))
