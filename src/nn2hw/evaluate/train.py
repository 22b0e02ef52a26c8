"""Train a model from scratch (how the Fashion-MNIST zoo was made), resumably, on the CPU.

Recipe (``TrainRecipe``): SGD with Nesterov momentum 0.9, batch 128, a linear warm-up then a
cosine decay of the learning rate to zero (per step), weight decay on the weights of convs and
linears only (not on BN or biases), the dataset's light augmentation (Fashion-MNIST: random
28x28 crop after 2-pixel zero padding, horizontal flip), BN in every model. Runs in channels-last
memory format (about 2x faster on CPU for these small convs).

Resuming: after every epoch the full state (weights, optimizer, history, recipe) goes atomically
to ``<out>.state``. Each epoch draws its data order, crops, flips and dropout from
``(seed, epoch)``, so an interrupted and resumed training ends with the same weights as an
uninterrupted one. The final file ``<out>`` is the plain ``state_dict`` (``torch.save``), ready to
be packaged in ``nn2hw/zoo/checkpoints/`` with its sha256. ``nn2hw.api.train`` builds a zoo model
and its data and calls ``train`` here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from nn2hw.data import Dataset
from nn2hw.errors import CheckpointError, ConfigError
from nn2hw.evaluate.loops import Metrics, _progress, test
from nn2hw.evaluate.runtime import run_context

STATE_SUFFIX = ".state"


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that determines a training run besides the model and the data."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs!r} is not a positive integer.", "Use e.g. --epochs 30.")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size!r} must be an integer >= 2 (BN needs 2 images).",
                              "Use e.g. 128.")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError(f"Learning rate {self.lr}, weight decay {self.weight_decay} or momentum "
                              f"{self.momentum} is out of range.", "Use lr > 0, weight decay >= 0, 0 <= momentum < 1.")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} must be in [0, epochs).",
                              "Use 1 warm-up epoch, or 0.")

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up over ``warmup_epochs``, then cosine decay to 0 at the last step."""
        warm = self.warmup_epochs * steps_per_epoch
        total = self.epochs * steps_per_epoch
        if step < warm:
            return self.lr * (step + 1) / warm
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


EPOCHS = {"resnet20": 30, "mobilenetv2_fmnist": 15, "vgg_fmnist": 20}
"""Default epochs per model (the committed checkpoints were trained with these)."""


def recipe_for(model_name: str, **changes) -> TrainRecipe:
    """The default recipe for ``model_name`` with ``changes`` (None values ignored) applied."""
    base = TrainRecipe(epochs=EPOCHS.get(model_name, TrainRecipe.epochs))
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    train_top1: float
    test_top1: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The finished training: where the state_dict is, its sha256 and its full-test accuracy."""

    model: str
    dataset: str
    path: Path
    sha256: str
    metrics: Metrics
    recipe: TrainRecipe
    history: tuple[EpochLog, ...]

    @property
    def train_seconds(self) -> float:
        return sum(e.seconds for e in self.history)


def train(model: nn.Module, name: str, train_data: Dataset, test_data: Dataset, recipe: TrainRecipe, out: Path,
          resume: bool = False, threads: int | None = 1, progress: bool = True,
          console: Console | None = None) -> TrainResult:
    """Train ``model`` (called ``name``; its initial weights as given) on ``train_data`` and save its
    ``state_dict`` to ``out``, testing on ``test_data`` after every epoch.

    With ``resume=True`` training continues from ``<out>.state`` (the recipe must be the same);
    without it an existing state file is an error rather than silently overwritten.
    """
    console = console or Console(highlight=False)
    dataset = train_data.name
    state_path = out.with_name(out.name + STATE_SUFFIX)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to's overloads omit memory_format
    optimizer = _optimizer(model, recipe)
    history: list[EpochLog] = []
    if state_path.exists():
        if not resume:
            raise ConfigError(f"{state_path} holds an unfinished training of {name}.",
                              "Add --resume to continue it, or delete the file to start over.")
        history = _load_state(state_path, model, optimizer, name, dataset, recipe)
        console.print(f"resuming {name} after epoch {len(history)} of {recipe.epochs}")
    steps_per_epoch = len(train_data) // recipe.batch_size
    for epoch in range(len(history), recipe.epochs):
        log = _train_epoch(model, optimizer, train_data, test_data, recipe, epoch, steps_per_epoch, threads, progress)
        history.append(log)
        _save_state(state_path, model, optimizer, name, dataset, recipe, history)
        console.print(f"{name} epoch {epoch + 1}/{recipe.epochs}: loss {log.train_loss:.4f}, train top-1 "
                      f"{log.train_top1:.2f} %, test top-1 {log.test_top1:.2f} % ({log.seconds:.0f} s)")
    metrics = test(model, test_data, 500, threads=threads, progress=progress)
    digest = _save_final(out, model)
    state_path.unlink(missing_ok=True)
    return TrainResult(name, dataset, out, digest, metrics, recipe, tuple(history))


def _optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.SGD:
    """SGD with decay on conv/linear weights only (BN scales and biases are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                            {"params": rest, "weight_decay": 0.0}],
                           lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def _train_epoch(model, optimizer, train_data, test_data, recipe: TrainRecipe, epoch: int, steps_per_epoch: int,
                 threads: int | None, progress: bool) -> EpochLog:
    start = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    model.train()
    with run_context(_epoch_seed(recipe.seed, epoch), threads) as generator, \
            _progress(f"epoch {epoch + 1}/{recipe.epochs}", steps_per_epoch, progress) as (bar, task):
        order = torch.randperm(len(train_data), generator=generator).numpy()
        for step in range(steps_per_epoch):
            lr = recipe.lr_at(epoch * steps_per_epoch + step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, labels = train_data.batch(order[step * recipe.batch_size:(step + 1) * recipe.batch_size],
                                              generator)
            logits = model(images.contiguous(memory_format=torch.channels_last))
            loss = nn.functional.cross_entropy(logits, labels)
            if not torch.isfinite(loss):
                raise ConfigError(f"Training diverged at epoch {epoch + 1}, step {step + 1} (loss {loss.item()}).",
                                  "Lower the learning rate (--lr).")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.update(task, advance=1)
    metrics = test(model, test_data, 500, threads=threads, progress=progress)
    return EpochLog(epoch + 1, loss_sum / seen, 100.0 * correct / seen, metrics.top1, time.perf_counter() - start)


def _state_identity(model_name: str, dataset: str, recipe: TrainRecipe) -> dict:
    return {"model": model_name, "dataset": dataset, "recipe": asdict(recipe)}


def _save_state(path: Path, model, optimizer, model_name, dataset, recipe, history) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    torch.save({**_state_identity(model_name, dataset, recipe), "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(), "history": [asdict(h) for h in history]}, part)
    os.replace(part, path)


def _load_state(path: Path, model, optimizer, model_name, dataset, recipe) -> list[EpochLog]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged files
        raise CheckpointError(f"Cannot read the training state {path}: {exc}.",
                              "Delete it to start the training over.") from None
    saved = {k: state.get(k) for k in ("model", "dataset", "recipe")}
    wanted = _state_identity(model_name, dataset, recipe)
    if saved != wanted:
        raise ConfigError(f"{path} was written by a different training ({saved}); this one is {wanted}.",
                          "Resume with the same model, dataset, seed and recipe options, or delete the file.")
    model.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    return [EpochLog(**h) for h in state["history"]]


def _save_final(out: Path, model: nn.Module) -> str:
    """Save the contiguous ``state_dict`` atomically; returns the file's sha256.

    ``torch.save`` into a buffer names the zip records 'archive/...' whatever ``out`` is called, so
    the same weights give the same bytes (and sha256) under any file name.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, buffer)
    part = out.with_name(out.name + ".part")
    part.write_bytes(buffer.getvalue())
    os.replace(part, out)
    return hashlib.sha256(buffer.getvalue()).hexdigest()
