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

    RANGES: ClassVar[dict[str, str]] = {
        "temperature": "a number > 0", "temperature_end": "a number > 0 and <= temperature",
        "lam": "a number > 0", "loss": f"one of {', '.join(LOSS_FORMS)}", "lambda_every": "an integer >= 1",
        "lambda_factor": "a number > 1", "slack": "a number in [0, 1)", "research_every": "an integer >= 1",
        "arch_lr": "a number > 0", "hw_gradient": f"one of {', '.join(HW_GRADIENTS)}",
        "candidates": "an integer >= 1", "train_share": "a number in (0, 1]", "memory_mb": "a number >= 0"}

    def __post_init__(self) -> None:
        checks = {
            "temperature": self.temperature > 0, "temperature_end": 0 < self.temperature_end <= self.temperature,
            "lam": self.lam > 0, "loss": self.loss in LOSS_FORMS, "lambda_every": self.lambda_every >= 1,
            "lambda_factor": self.lambda_factor > 1, "slack": 0 <= self.slack < 1,
            "research_every": self.research_every >= 1, "arch_lr": self.arch_lr > 0,
            "hw_gradient": self.hw_gradient in HW_GRADIENTS, "candidates": self.candidates >= 1,
            "train_share": 0 < self.train_share <= 1, "memory_mb": self.memory_mb >= 0}
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
        checked = checked_options("differentiable", options, (cls,), cls.RANGES)  # each value's type
        values: dict[str, Any] = {name: float(value) if isinstance(getattr(cls, name), float) else value
                                  for name, value in checked.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
