"""Torch side of the crossbar-aware fine-tuning transforms (``nn2hw.compress.crossbar``), imported
only when a model is rewritten: weight parametrizations, as the masks and quantizers of
``nn2hw.compress._torch``."""

from __future__ import annotations

import torch
from torch import nn


class WeightNoise(nn.Module):
    """Weight parametrization: in training mode, ``w + sigma x max|w| x N(0, 1)``, freshly drawn at
    every forward pass (from torch's seeded global generator); in eval mode the identity. The
    gradient reaches ``w`` unchanged (the noise is a constant of the step)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0.0:
            return weight
        scale = weight.detach().abs().max() * self.sigma
        return weight + torch.randn_like(weight) * scale


class ClippedWeight(nn.Module):
    """Weight parametrization: ``w`` clipped to ``± sigmas x std(w)`` of the whole layer, in training
    and in eval mode, so the network deployed holds clipped weights (aihwkit's ``LayerGaussian`` weight
    clipping). A crossbar maps the largest |w| to its largest conductance, so every cell's variation
    scales with max|w|: clipping the few outlying weights lowers the noise on all the others."""

    def __init__(self, sigmas: float) -> None:
        super().__init__()
        self.sigmas = sigmas

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        bound = float(weight.detach().std()) * self.sigmas if weight.numel() > 1 else 0.0
        return weight.clamp(-bound, bound) if bound > 0.0 else weight  # one weight, or all equal: kept


class PolarizedWeight(nn.Module):
    """Weight parametrization: the projection onto one-signed column fragments, ``w`` where its sign
    agrees with its fragment's (``signs``, a buffer), else 0. Every forward pass, hence every
    fine-tuning step, sees projected weights; a weight pushed across zero contributes nothing."""

    signs: torch.Tensor

    def __init__(self, signs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("signs", signs)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(weight * self.signs >= 0, weight, torch.zeros_like(weight))
