"""The differentiable strategy's options (``--strategy-option KEY=VALUE``), checked before any work.

Torch-free: the search checks them when it builds the sampler, before loading any data."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import checked_options

DEFAULT_EPOCHS = 1.0
"""Supernet epochs over the fit split when ``--epochs`` is not given."""
LOSS_FORMS = ("add", "mul")
"""``add``: CE + lambda * sum(cost / limit) (ProxylessNAS ``add#linear``); ``mul``: CE * prod((cost /
limit) ^ lambda) (FBNet / ProxylessNAS ``mul#log``-like, with lambda as the exponent w)."""
HW_GRADIENTS = ("table", "straight_through")
"""How the hardware term's gradient reaches the logits (its value is always the sampled
architecture's exact cost on the current design): ``table`` through the per-choice cost tables
(every logit of every relaxed dimension), ``straight_through`` Auto-NBA's form value * prod((1 - p).detach()
+ p) over the chosen choices (every chosen logit)."""


@dataclass(frozen=True)
class RelaxOptions:
    """What the relaxation runs with (defaults follow Auto-NBA's CIFAR configuration where it has one).

    - ``temperature`` -> ``temperature_end``: the Gumbel-softmax temperature, annealed geometrically
      over the training steps (Auto-NBA starts at 5).
    - ``lam``: the initial weight of the hardware term (the exponent w for ``loss=mul``); every
      ``lambda_every`` architecture steps it is multiplied by ``lambda_factor`` while the most likely
      architecture misses a spec on the current design, and divided by it while it is more than
      ``slack`` under every limit (Auto-NBA doubles or halves its weight to keep FPS in a band).
    - ``research_every``: architecture steps between re-searches of the accelerator design (the
      template's DSE on the most likely architecture; Auto-NBA: 100).
    - ``arch_lr``: Adam on the logits (betas 0.5, 0.999 as Auto-NBA); the weights use the search's
      fine-tune learning rate, SGD with momentum 0.9.
    - ``candidates``: the most likely architectures handed to the trials (with the distinct most
      likely ones seen along the lambda trajectory).
    - ``train_share``: with ``--minutes``, the share of it the supernet may train for.
    - ``memory_mb``: the memory the supernet may use (0: what the machine has available now).

    Only with ``--space-kind fbnet|nb201`` (``SCRATCH_ONLY``; the hot-start space refuses them):
    - ``bits``: the bit widths every block / edge chooses from, '/'-separated (32 = float; default
      32/8: 4-bit blocks trained from scratch collapse here, see docs/search.md).
    - ``width_mult`` (FBNet), ``channels`` and ``cells`` (NAS-Bench-201: C and N): the network's size.
    - ``cost_dataset``: the dataset whose input shapes architectures are costed on (e.g. cifar10 for a
      Fashion-MNIST supernet, as HW-NAS-Bench costs them); empty: the search's dataset.
    - ``warmup``: the share of the training steps that train the weights alone, along uniformly
      sampled paths (FBNet's warm-up), before the logits learn.
    - ``weight_lr``: the supernet's SGD learning rate (cosine-decayed; training from scratch).
    """

    temperature: float = 5.0
    temperature_end: float = 0.5
    lam: float = 0.5
    loss: str = "add"
    lambda_every: int = 10
    lambda_factor: float = 1.5
    slack: float = 0.1
    research_every: int = 50
    arch_lr: float = 0.05
    hw_gradient: str = "table"
    candidates: int = 8
    train_share: float = 0.5
    memory_mb: float = 0.0
    bits: str = "32/8"
    width_mult: float = 0.25
    channels: int = 16
    cells: int = 5
    cost_dataset: str = ""
    warmup: float = 0.2
    weight_lr: float = 0.05

    RANGES: ClassVar[dict[str, str]] = {
        "temperature": "a number > 0", "temperature_end": "a number > 0 and <= temperature",
        "lam": "a number > 0", "loss": f"one of {', '.join(LOSS_FORMS)}", "lambda_every": "an integer >= 1",
        "lambda_factor": "a number > 1", "slack": "a number in [0, 1)", "research_every": "an integer >= 1",
        "arch_lr": "a number > 0", "hw_gradient": f"one of {', '.join(HW_GRADIENTS)}",
        "candidates": "an integer >= 1", "train_share": "a number in (0, 1]", "memory_mb": "a number >= 0",
        "bits": "'/'-separated bit widths in [2, 32], e.g. 32/8/4", "width_mult": "a number > 0",
        "channels": "an integer >= 1", "cells": "an integer >= 1", "cost_dataset": "a dataset name, or empty",
        "warmup": "a number in [0, 1)", "weight_lr": "a number > 0"}
    SCRATCH_ONLY: ClassVar[tuple[str, ...]] = ("bits", "width_mult", "channels", "cells", "cost_dataset", "warmup",
                                               "weight_lr")

    def __post_init__(self) -> None:
        checks = {
            "temperature": self.temperature > 0, "temperature_end": 0 < self.temperature_end <= self.temperature,
            "lam": self.lam > 0, "loss": self.loss in LOSS_FORMS, "lambda_every": self.lambda_every >= 1,
            "lambda_factor": self.lambda_factor > 1, "slack": 0 <= self.slack < 1,
            "research_every": self.research_every >= 1, "arch_lr": self.arch_lr > 0,
            "hw_gradient": self.hw_gradient in HW_GRADIENTS, "candidates": self.candidates >= 1,
            "train_share": 0 < self.train_share <= 1, "memory_mb": self.memory_mb >= 0,
            "bits": _bit_widths(self.bits) is not None, "width_mult": self.width_mult > 0,
            "channels": self.channels >= 1, "cells": self.cells >= 1, "cost_dataset": True,
            "warmup": 0 <= self.warmup < 1, "weight_lr": self.weight_lr > 0}
        for name, ok in checks.items():
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                ok = False
            if not ok:
                raise ConfigError(f"Strategy 'differentiable': option {name} must be {self.RANGES[name]}, got "
                                  f"{value!r}.", f"Give e.g. --strategy-option {name}="
                                  f"{getattr(RelaxOptions, name)} (the default), or leave it out.")

    @classmethod
    def parse(cls, options: dict[str, Any]) -> RelaxOptions:
        """The options from ``--strategy-option`` values (an int where a number is expected is taken)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"Strategy 'differentiable' has no options {unknown}.",
                              f"Use: {', '.join(known)} (docs/search.md, 'Differentiable co-search').")
        if isinstance(options.get("bits"), int) and not isinstance(options["bits"], bool):
            options = {**options, "bits": str(options["bits"])}  # one width: '--strategy-option bits=8'
        checked = checked_options("differentiable", options, (cls,), cls.RANGES)  # each value's type
        values: dict[str, Any] = {name: float(value) if isinstance(getattr(cls, name), float) else value
                                  for name, value in checked.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def bit_widths(self) -> tuple[int, ...]:
        """``bits`` as integers, widest first as given."""
        widths = _bit_widths(self.bits)
        assert widths is not None  # checked in __post_init__
        return widths


def _bit_widths(text: str) -> tuple[int, ...] | None:
    """'32/8/4' -> (32, 8, 4); None when it is not distinct integers in [2, 32]."""
    try:
        widths = tuple(int(part) for part in str(text).split("/"))
    except ValueError:
        return None
    return widths if widths and len(set(widths)) == len(widths) and all(2 <= w <= 32 for w in widths) else None
