"""HotNAS fast evaluation: fine-tune a changed model for a few batches, then measure top-1/top-5.

Defaults follow HotNAS (reference section 2.8): one pass stopped after 100 mini-batches of 32,
SGD lr 0.1, momentum 0.9, weight decay 1e-4, from the pretrained weights. Every setting is a field
of ``FinetuneSettings`` (``nn2hw.evaluate.settings``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from nn2hw._checks import check_batch_size
from nn2hw.data.base import NO_AUGMENT, Augment, Dataset
from nn2hw.errors import ConfigError, ModelError
from nn2hw.evaluate.runtime import run_context
from nn2hw.evaluate.settings import FinetuneSettings, resolve_precision


@dataclass(frozen=True)
class Metrics:
    """Accuracy of a frozen model on a dataset split (top1/top5 in percent)."""

    top1: float
    top5: float
    n_images: int
    partial: bool
    dataset: str = ""
    split: str = ""
    full_size: int = 0

    @property
    def description(self) -> str:
        """One line for people; says PARTIAL when the images are a subset of the split."""
        where = f" on {self.dataset} {self.split}".rstrip() if self.dataset else ""
        count = (f"PARTIAL test set ({self.n_images} of {self.full_size} images)" if self.partial
                 else f"{self.n_images} images")
        return f"top-1 {self.top1:.2f} %, top-5 {self.top5:.2f} %{where} ({count})"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def as_mapping(self) -> dict[str, float]:
        """The evaluator-protocol view: every value a float (``partial`` is 1.0 or 0.0)."""
        return {"top1": self.top1, "top5": self.top5, "n_images": float(self.n_images),
                "partial": 1.0 if self.partial else 0.0}


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune did: batches and images seen, losses, wall time, and the precision it ran in
    ('bf16': forward and loss under bf16 autocast, weights and optimizer in fp32; or 'fp32')."""

    batches: int
    images: int
    first_loss: float
    last_loss: float
    seconds: float
    precision: str = "fp32"


def finetune(model: nn.Module, train_data: Dataset, batches: int = 100, batch_size: int = 32, lr: float = 0.1,
             momentum: float = 0.9, weight_decay: float = 1e-4, seed: int = 0, augment: bool | Augment = True,
             threads: int | None = None, progress: bool = True, *, schedule: str = "constant",
             teacher: nn.Module | None = None, distill: float = 0.0, temperature: float = 4.0,
             after_step: Callable[[int], None] | None = None, precision: str = "auto",
             clip_grad_norm: float = 0.0, optimizer: str = "sgd") -> FinetuneResult:
    """Fine-tune ``model`` in place for ``batches`` mini-batches of ``train_data`` (HotNAS defaults).

    Data order and augmentation are drawn from ``seed``; the same seed gives the same weights.
    ``augment``: True uses the dataset's training augmentation, False none, or an ``Augment``.
    ``schedule``, ``distill`` and ``temperature`` as in ``FinetuneSettings``; ``teacher`` is
    required when ``distill > 0`` (it is only run, in eval mode). ``after_step(done)`` is called
    after each optimizer step with the number of steps done (a caller's checkpoint: it may score
    the model, putting it back in train mode, or raise to stop). ``precision`` as in
    ``FinetuneSettings`` (``resolve_precision``: bf16 autocast where the CPU computes bf16, else
    fp32; an explicit 'bf16' that cannot run warns once and runs fp32); ``clip_grad_norm`` and
    ``optimizer`` too. A model whose ``stacks_members`` is true (``nn2hw.compress._joint.JointNetworks``)
    returns one output per member stacked on a new first axis; the loss is the sum of theirs.
    Raises ``ModelError`` when the loss stops being finite (the learning rate is too high).
    """
    settings = FinetuneSettings(batches, batch_size, lr, momentum, weight_decay, seed, bool(augment), schedule,
                                distill, temperature, precision, clip_grad_norm, optimizer)
    ran, reason = resolve_precision(precision)
    if precision == "bf16" and ran != "bf16":
        _warn_once(f"Fine-tuning in {reason}.")
    if distill and teacher is None:
        raise ConfigError("Distillation needs a teacher model.",
                          "Pass teacher=<the unmodified model>, or distill=0.")
    data = train_data if augment is True else train_data.with_augment(augment if augment else NO_AUGMENT)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params and batches:
        raise ModelError("The model has no trainable parameters to fine-tune.",
                         "Unfreeze some parameters, or use batches=0 to only test.")
    step_rule = _optimizer(settings, params) if params else None
    losses: list[float] = []
    start = time.perf_counter()
    was_training = model.training
    with run_context(seed, threads) as generator, _progress("fine-tune", batches, progress) as (bar, task), \
            channels_last(model), channels_last(teacher):
        model.train()
        if teacher is not None:
            teacher_was_training = teacher.training
            teacher.eval()
        try:
            for step, indices in enumerate(_sample(len(data), settings, generator)):
                assert step_rule is not None  # batches need trainable parameters (checked above)
                if schedule == "cosine":
                    for group in step_rule.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / batches))
                images, labels = data.batch(indices, generator)
                images = _as_channels_last(trim_padding(images, model))  # texts: the batch's longest, not 128
                with _autocast(ran):
                    logits = model(images)
                    teacher_logits = _teacher_logits(teacher, images) if distill else None
                members = logits if getattr(model, "stacks_members", False) else logits[None]
                loss = torch.stack([_loss(m, labels, teacher_logits, distill, temperature) for m in members]).sum()
                if not torch.isfinite(loss):
                    raise ModelError(f"Fine-tuning diverged: the loss is {loss.item()} at batch {step + 1}.",
                                     f"Lower the learning rate (lr={lr}) or check the model's changes.")
                step_rule.zero_grad(set_to_none=True)
                loss.backward()
                if clip_grad_norm:
                    nn.utils.clip_grad_norm_(params, clip_grad_norm)
                step_rule.step()
                losses.append(loss.item())
                bar.update(task, advance=1)
                if after_step is not None:
                    after_step(step + 1)
        finally:
            model.train(was_training)
            if teacher is not None:
                teacher.train(teacher_was_training)
    return FinetuneResult(batches, batches * batch_size, losses[0] if losses else math.nan,
                          losses[-1] if losses else math.nan, time.perf_counter() - start, ran)


def decay_groups(params: list[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups with ``weight_decay`` on conv/linear weights only: norm scales and biases
    are not decayed (the Transformer and ViT recipes)."""
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def _optimizer(settings: FinetuneSettings, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with momentum and decay on every parameter (HotNAS), or AdamW over ``decay_groups``."""
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(decay_groups(params, settings.weight_decay), lr=settings.lr)
    return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)


def _autocast(precision: str) -> torch.autocast:
    """bf16 autocast on the CPU for 'bf16' (matmuls and convs in bf16, reductions in fp32); off for 'fp32'."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A ``RuntimeWarning`` the first time ``message`` comes up in this process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None, distill: float,
          temperature: float) -> torch.Tensor:
    """Cross-entropy, mixed with the distillation loss when there is a teacher."""
    loss = nn.functional.cross_entropy(logits.float(), labels)
    if teacher_logits is None:
        return loss
    return (1.0 - distill) * loss + distill * _distillation(logits, teacher_logits, temperature)


def _teacher_logits(teacher: nn.Module | None, images: torch.Tensor) -> torch.Tensor:
    """The teacher's outputs, without gradients (a teacher is required to distill: checked by ``finetune``)."""
    assert teacher is not None
    with torch.no_grad():
        return teacher(images)


def _distillation(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence from the teacher's softened outputs, times T^2 (Hinton et al., 2015), in fp32."""
    target = nn.functional.softmax(teacher_logits.float() / temperature, dim=1)
    log_probs = nn.functional.log_softmax(logits.float() / temperature, dim=1)
    return nn.functional.kl_div(log_probs, target, reduction="batchmean") * temperature**2


def _sample(size: int, settings: FinetuneSettings, generator: torch.Generator):
    """``settings.batches`` index batches from seeded shuffles, a new shuffle at each pass."""
    if settings.batches and size < settings.batch_size:
        raise ConfigError(f"The training data has {size} images, fewer than one batch of {settings.batch_size}.",
                          "Use a smaller batch size or a larger training set.")
    order = np.empty(0, dtype=np.int64)
    for _ in range(settings.batches):
        if len(order) < settings.batch_size:
            order = torch.randperm(size, generator=generator).numpy()
        yield order[: settings.batch_size]
        order = order[settings.batch_size:]


def test(model: nn.Module, data: Dataset, batch_size: int = 256, threads: int | None = None,
         progress: bool = True, precision: str = "fp32") -> Metrics:
    """Top-1/top-5 (percent) of ``model`` in eval mode on every image of ``data``.

    The result is ``partial`` whenever ``data`` holds fewer images than its split (e.g. the
    CIFAR-10 ``test-partial`` split, or ``data.take(n)``). ``precision`` as in ``finetune``; fp32
    by default, the arithmetic of the deployed network.
    """
    check_batch_size(batch_size)
    ran = resolve_precision(precision)[0]
    if len(data) == 0:
        raise ConfigError(f"{data.name} {data.split} holds no images.", "Evaluate on a non-empty split.")
    correct1 = correct5 = 0
    was_training = model.training
    model.eval()
    steps = math.ceil(len(data) / batch_size)
    try:
        with run_context(None, threads), torch.no_grad(), _progress("test", steps, progress) as (bar, task), \
                _autocast(ran):
            for _, images, labels in _by_length(data, batch_size):
                logits = model(trim_padding(images, model)).float()
                if logits.ndim != 2 or logits.shape[0] != len(labels):
                    raise ModelError(f"The model returns shape {tuple(logits.shape)} for a batch of {len(labels)}; "
                                     "expected [batch, classes].", "Return class logits from forward().")
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                hits = top == labels.view(-1, 1)
                correct1 += int(hits[:, 0].sum())
                correct5 += int(hits.any(dim=1).sum())
                bar.update(task, advance=1)
    finally:
        model.train(was_training)
    n = len(data)
    return Metrics(100.0 * correct1 / n, 100.0 * correct5 / n, n, data.partial, data.name, data.split,
                   data.full_size)


def embed(model: nn.Module, data: Dataset, batch_size: int = 256, threads: int | None = None,
          progress: bool = True) -> torch.Tensor:
    """``model``'s outputs (in eval mode) on every input of ``data`` in order, ``[N, features]``
    (a sentence encoder's embeddings); the labels are not used."""
    check_batch_size(batch_size)
    if len(data) == 0:
        raise ConfigError(f"{data.name} {data.split} holds no inputs.", "Embed a non-empty split.")
    outputs, order = [], []
    was_training = model.training
    model.eval()
    try:
        with run_context(None, threads), torch.no_grad(), \
                _progress("embed", math.ceil(len(data) / batch_size), progress) as (bar, task):
            for indices, inputs, _labels in _by_length(data, batch_size):
                outputs.append(model(trim_padding(inputs, model)).flatten(1))
                order.append(torch.from_numpy(indices))
                bar.update(task, advance=1)
    finally:
        model.train(was_training)
    stacked = torch.cat(outputs)
    return stacked[torch.argsort(torch.cat(order))]  # back in the data's order


def _by_length(data: Dataset, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """``(indices, inputs, labels)`` evaluation batches covering ``data`` once: in order, or, for
    texts, shortest first, so that each batch carries little padding (``trim_padding`` drops it)."""
    check_batch_size(batch_size)
    texts = getattr(data, "texts", None)
    order = (np.argsort([len(t) for t in texts], kind="stable") if texts is not None
             else np.arange(len(data)))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        yield (indices, *data.batch(indices))


def cosine_similarities(outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two ``[N, features]`` output matrices (1.0: same direction)."""
    if outputs.shape != reference.shape:
        raise ModelError(f"The model's outputs {tuple(outputs.shape)} and the reference's {tuple(reference.shape)} "
                         "differ in shape, so their embeddings cannot be compared.",
                         "Compare a model with a reference that has the same output (embedding) size.")
    return nn.functional.cosine_similarity(outputs.double(), reference.double(), dim=1)


def trim_padding(inputs: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Token ids ``[B, T]`` without their trailing columns that are padding in every row, for a
    model that masks padding (it has ``config.pad_token_id``, as the BERT encoders): the same
    outputs from fewer tokens. Anything else is returned as is."""
    pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if not isinstance(pad, int) or inputs.dtype != torch.int64 or inputs.ndim != 2 or not inputs.shape[1]:
        return inputs
    used = (inputs != pad).any(dim=0).nonzero()
    keep = int(used[-1]) + 1 if len(used) else 1
    return inputs[:, :max(keep, 1)]


@contextmanager
def channels_last(model: nn.Module | None) -> Iterator[None]:
    """Hold ``model``'s 4-D weights in channels-last layout while it runs, then restore the default
    (None: nothing to hold; e.g. no teacher).

    Same arithmetic, different memory order: 1.3-2x faster fine-tuning of the zoo's small convs on
    CPU (measured with ``benchmarks/finetune_speed.py``); a distillation teacher's forward 1.4x
    (torch 2.13, ResNet-20, batch 32). ``test`` keeps the default layout, the arithmetic its
    reported numbers were measured with. The layout is restored so that saved state_dicts stay in
    the default format.
    """
    if model is None:
        yield
        return
    # torch's overloads of Module.to leave out memory_format, which it takes
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def _as_channels_last(images: torch.Tensor) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if images.ndim == 4 else images


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into test modules


class _progress:
    """A transient Rich bar (``disable`` when ``enabled`` is False); yields (progress, task id)."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self._bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             transient=True, disable=not enabled)
        self._total = total

    def __enter__(self):
        self._bar.__enter__()
        return self._bar, self._bar.add_task("", total=self._total)

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)
