"""The settings of the short fine-tune, as a torch-free record: the search's settings hold them,
and their canonical JSON (``key``) identifies a measurement in the accuracy store."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from nn2hw._checks import check_batch_size
from nn2hw.errors import ConfigError

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class FinetuneSettings:
    """Every knob of the short fine-tune (HotNAS defaults); ``batches=0`` means no fine-tuning.

    ``schedule``: a constant learning rate (HotNAS) or a cosine decay to 0 over the batches.
    ``distill``: weight of a knowledge-distillation term (KL divergence to a teacher's softened
    outputs at ``temperature``, scaled by its square); the cross-entropy gets ``1 - distill``.
    It needs a teacher, e.g. the unmodified pretrained model when recovering a compressed one.
    """

    batches: int = 100
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = True
    schedule: str = "constant"
    distill: float = 0.0
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if not isinstance(self.batches, int) or self.batches < 0:
            raise ConfigError(f"Fine-tune batches {self.batches!r} is not a non-negative integer.",
                              "Use e.g. 100 (HotNAS), or 0 to skip fine-tuning.")
        check_batch_size(self.batch_size)
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"Fine-tune {name}={value!r} must be a finite number >= 0.",
                                  "Use the HotNAS defaults lr=0.1, momentum=0.9, weight_decay=1e-4.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"Unknown learning-rate schedule {self.schedule!r}.", f"Use {' or '.join(SCHEDULES)}.")
        if not 0.0 <= self.distill <= 1.0 or not self.temperature > 0:
            raise ConfigError(f"Distillation weight {self.distill!r} must be in [0, 1] and temperature "
                              f"{self.temperature!r} positive.", "Use e.g. distill=0.5, temperature=4.")

    @property
    def key(self) -> str:
        """Canonical JSON of the settings: the key part that says how a model was fine-tuned."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
