"""The settings of the short fine-tune, as a torch-free record: the search's settings hold them,
and their canonical JSON (``key``) identifies a measurement in the accuracy store."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

from nn2hw._checks import check_batch_size
from nn2hw.errors import ConfigError
from nn2hw.measure.machine import cpu_flags

SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("sgd", "adamw")
"""SGD with momentum (HotNAS's fine-tune, the CNN recipes) or AdamW (decoupled weight decay, the
recipe Transformers are fine-tuned with; ``momentum`` is then unused)."""
PRECISIONS = ("auto", "bf16", "fp32")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (Linux ``/proc/cpuinfo``) of native bf16 arithmetic. Without them oneDNN emulates
bf16 on AVX-512 or does not offer it, which is not faster, so such CPUs fine-tune in fp32."""


@dataclass(frozen=True)
class FinetuneSettings:
    """Every knob of the short fine-tune (HotNAS defaults); ``batches=0`` means no fine-tuning.

    ``schedule``: a constant learning rate (HotNAS) or a cosine decay to 0 over the batches.
    ``distill``: weight of a knowledge-distillation term (KL divergence to a teacher's softened
    outputs at ``temperature``, scaled by its square); the cross-entropy gets ``1 - distill``.
    It needs a teacher, e.g. the unmodified pretrained model when recovering a compressed one.
    ``clip_grad_norm``: the gradients' total norm is clipped to it before each step (0: never), as a
    network trained from scratch with fixed-point layers needs (``--space-kind fbnet|nb201``).
    ``optimizer``: one of ``OPTIMIZERS``; weight decay goes to conv/linear weights only with AdamW.
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
    precision: str = "auto"
    clip_grad_norm: float = 0.0
    optimizer: str = "sgd"

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
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"Unknown fine-tune optimizer {self.optimizer!r}.",
                              f"Use {' or '.join(OPTIMIZERS)} (adamw for Transformers, e.g. lr 1e-3 on the ViT).")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"Unknown learning-rate schedule {self.schedule!r}.", f"Use {' or '.join(SCHEDULES)}.")
        if not 0.0 <= self.distill <= 1.0 or not self.temperature > 0:
            raise ConfigError(f"Distillation weight {self.distill!r} must be in [0, 1] and temperature "
                              f"{self.temperature!r} positive.", "Use e.g. distill=0.5, temperature=4.")
        check_precision(self.precision)
        if not math.isfinite(self.clip_grad_norm) or self.clip_grad_norm < 0:
            raise ConfigError(f"Fine-tune clip_grad_norm={self.clip_grad_norm!r} must be a finite number >= 0.",
                              "Use e.g. 5.0, or 0 not to clip.")

    @property
    def key(self) -> str:
        """Canonical JSON of the settings: the key part that says how a model was fine-tuned. It holds
        the precision that runs here (``auto`` resolved), since a bf16 result is another measurement."""
        fields = {**asdict(self), "precision": resolve_precision(self.precision)[0]}
        for later, default in (("clip_grad_norm", 0.0), ("optimizer", "sgd")):
            if fields[later] == default:  # added later: in the key only when set, so earlier keys stay valid
                del fields[later]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def check_precision(precision: str) -> None:
    """A ``ConfigError`` naming the choices unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"Unknown fine-tune precision {precision!r}.",
                          f"Use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]} (auto: bf16 where the CPU computes "
                          "bf16 natively, else fp32).")


@lru_cache(maxsize=1)
def bf16_support() -> tuple[bool, str]:
    """(whether this CPU computes bf16 natively, why): read from the flags in ``/proc/cpuinfo``."""
    flags = cpu_flags()
    if flags is None:
        return False, "the CPU flags cannot be read here (no /proc/cpuinfo)"
    found = [flag for flag in BF16_FLAGS if flag in flags]
    if found:
        return True, f"the CPU computes bf16 natively ({', '.join(found)})"
    return False, f"the CPU has no native bf16 arithmetic (none of {', '.join(BF16_FLAGS)})"


def resolve_precision(requested: str) -> tuple[str, str]:
    """The precision a fine-tune asked for ``requested`` runs in ('bf16' or 'fp32') and why.

    ``auto`` is bf16 where the CPU computes it natively (1.36x the fp32 images/s when fine-tuning
    the Fashion-MNIST ResNet-20, 1.5x with distillation, top-1 within the seed spread; docs/search.md,
    ``benchmarks/finetune_speed.py --compare-precision``), else fp32; ``bf16`` on a CPU without
    it falls back to fp32 (the reason says so)."""
    check_precision(requested)
    if requested == "fp32":
        return "fp32", "fp32 was asked for"
    supported, why = bf16_support()
    if supported:
        return "bf16", f"bf16 autocast: {why}"
    return "fp32", f"fp32 ({'bf16 was asked for, but ' if requested == 'bf16' else ''}{why})"


def check_calibration_images(images: int) -> None:
    """``bn_calibration``: a whole number of training images that re-estimate each programmed
    crossbar draw's batch norms (``nn2hw.evaluate.variation``; 0: the trained statistics)."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 0:
        raise ConfigError(f"bn_calibration={images!r} is not a whole number of training images.",
                          "Give e.g. --bn-calibration 512, or 0 not to re-estimate the batch norms.")
