"""Weight initialization shared by the zoo architectures (used when no checkpoint is loaded)."""

from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module) -> None:
    """He-normal convs (fan-out), unit/zero norms, small-normal linears, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
