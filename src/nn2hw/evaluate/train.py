"""Train a zoo model (how the Fashion-MNIST zoo and the fine-tuned MiniLM were made), resumably, on the CPU.

Image recipe (``TrainRecipe()``): SGD with Nesterov momentum 0.9, batch 128, a linear warm-up then
a cosine decay of the learning rate to zero (per step), weight decay on the weights of convs and
linears only (not on BN or biases), the dataset's light augmentation (Fashion-MNIST: random
28x28 crop after 2-pixel zero padding, horizontal flip), BN in every model. Runs in channels-last
memory format (about 2x faster on CPU for these small convs).

Text recipe (``RECIPES['minilm_l6']``): fine-tuning from the pretrained encoder (``init
'pretrained'``) with AdamW, a linear warm-up then a linear decay to zero, only the top
``train_layers`` encoder layers and the new head trained (the rest frozen and run in eval mode),
glosses tokenized to ``seq_len`` tokens. Batches group texts of similar length (within windows of
``BUCKET_BATCHES`` batches of the epoch's shuffle) and drop the all-padding columns, which the
model masks anyway: the same arithmetic on 2-3x fewer tokens. With a validation split the epoch
with the best validation top-1 is kept and the test split is evaluated once, at the end. The
result is then a *delta*: a safetensors file of only the trained tensors (in ``save_dtype``), with
the sha256 of the base weights it applies to in its metadata (``nn2hw.zoo.checkpoints``), and the
reported test accuracy is measured with the weights as saved.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import nn

from nn2hw.data import Dataset
from nn2hw.errors import CheckpointError, ConfigError
from nn2hw.evaluate.loops import Metrics, _progress, decay_groups, test, trim_padding
from nn2hw.evaluate.runtime import run_context
from nn2hw.evaluate.settings import OPTIMIZERS

STATE_SUFFIX = ".state"
BUCKET_BATCHES = 50
"""Texts are grouped by length within windows of this many batches of the epoch's shuffle."""
SCHEDULES = ("cosine", "linear")
INITS = ("scratch", "pretrained")
SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that determines a training run besides the model and the data."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1
    seed: int = 0
    optimizer: str = "sgd"
    schedule: str = "cosine"
    init: str = "scratch"
    train_layers: int = 0
    seq_len: int = 0
    save_dtype: str = "float32"

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
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                     ("init", self.init, INITS), ("save_dtype", self.save_dtype, tuple(SAVE_DTYPES))):
            if value not in allowed:
                raise ConfigError(f"Training {name} {value!r} is not one of {', '.join(allowed)}.",
                                  f"Use {name}={allowed[0]!r} (or another of those).")
        for name, count in (("train_layers", self.train_layers), ("seq_len", self.seq_len)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ConfigError(f"{name}={count!r} is not an integer >= 0.", f"Use 0 (not set) or e.g. {name}=2.")

    @property
    def delta(self) -> bool:
        """Whether the result holds only the trained tensors (``train_layers`` > 0 on a pretrained base)."""
        return self.train_layers > 0

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up over ``warmup_epochs``, then a cosine (or linear) decay to 0 at the last step."""
        warm = round(self.warmup_epochs * steps_per_epoch)
        total = self.epochs * steps_per_epoch
        if step < warm:
            return self.lr * (step + 1) / warm
        done = (step - warm) / max(1, total - warm)
        if self.schedule == "linear":
            return self.lr * (1.0 - done)
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * done))


EPOCHS = {"resnet20": 30, "mobilenetv2_fmnist": 15, "vgg_fmnist": 20}
"""Default epochs per model (the committed checkpoints were trained with these)."""

RECIPES = {"minilm_l6": TrainRecipe(epochs=1, batch_size=32, lr=2e-4, momentum=0.0, weight_decay=0.01,
                                    warmup_epochs=0.1, optimizer="adamw", schedule="linear", init="pretrained",
                                    train_layers=1, seq_len=64, save_dtype="float16"),
           "vit_fmnist": TrainRecipe(epochs=20, lr=1e-3, momentum=0.0, weight_decay=0.05, optimizer="adamw")}
"""Recipes that differ from the image one: fine-tuning a pretrained text encoder (the packaged
``minilm_l6`` wordnet-supersense delta was trained with this one; seq_len 64 holds 99.8 % of the
training glosses whole: median 15 tokens, 99th percentile 49, longest 138); training a ViT from
scratch (AdamW, the image recipe's batch, warm-up, cosine decay and augmentation: the packaged
``vit_fmnist`` weights)."""


def recipe_for(model_name: str, **changes) -> TrainRecipe:
    """The default recipe for ``model_name`` with ``changes`` (None values ignored) applied."""
    base = RECIPES.get(model_name) or TrainRecipe(epochs=EPOCHS.get(model_name, TrainRecipe.epochs))
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


def freeze_below_top(model: nn.Module, layers: int) -> list[nn.Module]:
    """Freeze every parameter of an encoder except its top ``layers`` blocks (``encoder.layer``)
    and its head (``classifier``); returns the frozen modules, which training runs in eval mode."""
    blocks = getattr(getattr(model, "encoder", None), "layer", None)
    head = getattr(model, "classifier", None)
    if not isinstance(blocks, nn.ModuleList) or not isinstance(head, nn.Module):
        raise ConfigError(f"train_layers={layers} needs an encoder with blocks `encoder.layer` and a head "
                          f"`classifier`; {type(model).__name__} has not both.",
                          "Use train_layers=0 (train every parameter) for this model.")
    if not 1 <= layers <= len(blocks):
        raise ConfigError(f"train_layers={layers} is outside 1..{len(blocks)} (the encoder's blocks).",
                          f"Use a number of top blocks from 1 to {len(blocks)}.")
    model.requires_grad_(False)
    for module in (*blocks[len(blocks) - layers:], head):
        module.requires_grad_(True)
    return [child for name, child in model.named_children() if name not in ("encoder", "classifier")] + \
        list(blocks[:len(blocks) - layers])


def trained_names(model: nn.Module) -> list[str]:
    """The state-dict keys of the parameters that training changes (those that require grad)."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    train_top1: float
    test_top1: float | None
    seconds: float
    validation_top1: float | None = None


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
          console: Console | None = None, *, validation_data: Dataset | None = None,
          pack_delta: Callable[[dict[str, torch.Tensor]], bytes] | None = None) -> TrainResult:
    """Train ``model`` (called ``name``; its initial weights as given) on ``train_data`` and save its
    ``state_dict`` to ``out``.

    Without ``validation_data`` ``test_data`` is tested after every epoch and the last epoch's
    weights are kept; with it the epoch with the best validation top-1 is kept and ``test_data`` is
    tested once, at the end. With ``recipe.train_layers`` > 0 only the top blocks and the head are
    trained and ``out`` holds only those tensors, as ``pack_delta`` writes them (the zoo's
    ``nn2hw.zoo.checkpoints.delta_bytes``: a delta on the base weights). With ``resume=True`` training continues from
    ``<out>.state`` (the recipe must be the same); without it an existing state file is an error
    rather than silently overwritten.
    """
    console = console or Console(highlight=False)
    dataset = train_data.name
    if recipe.delta and pack_delta is None:
        raise ConfigError(f"train_layers={recipe.train_layers} saves a delta on pretrained weights, and no writer "
                          "for it was given.",
                          "Start from the pretrained weights (init='pretrained') or use train_layers=0.")
    if recipe.delta and out.suffix != ".safetensors":
        raise ConfigError(f"A delta is a safetensors file; {out} does not end in .safetensors.",
                          f"Save it as {out.with_suffix('.safetensors').name}.")
    state_path = out.with_name(out.name + STATE_SUFFIX)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to's overloads omit memory_format
    frozen = freeze_below_top(model, recipe.train_layers) if recipe.train_layers else []
    optimizer = _optimizer(model, recipe)
    history: list[EpochLog] = []
    best: dict[str, torch.Tensor] = {}
    if state_path.exists():
        if not resume:
            raise ConfigError(f"{state_path} holds an unfinished training of {name}.",
                              "Add --resume to continue it, or delete the file to start over.")
        history, best = _load_state(state_path, model, optimizer, name, dataset, recipe)
        console.print(f"resuming {name} after epoch {len(history)} of {recipe.epochs}")
    steps_per_epoch = len(train_data) // recipe.batch_size
    held_out = validation_data if validation_data is not None else test_data
    for epoch in range(len(history), recipe.epochs):
        log = _train_epoch(model, optimizer, train_data, held_out, recipe, epoch, steps_per_epoch, threads, progress,
                           frozen)
        if validation_data is not None:
            log = dataclasses.replace(log, test_top1=None, validation_top1=log.test_top1)
            if all(log.validation_top1 > (h.validation_top1 or 0.0) for h in history):  # type: ignore[operator]
                best = _trained_state(model, recipe)
        history.append(log)
        _save_state(state_path, model, optimizer, name, dataset, recipe, history, best)
        score = (f"validation top-1 {log.validation_top1:.2f} %" if validation_data is not None
                 else f"test top-1 {log.test_top1:.2f} %")
        console.print(f"{name} epoch {epoch + 1}/{recipe.epochs}: loss {log.train_loss:.4f}, train top-1 "
                      f"{log.train_top1:.2f} %, {score} ({log.seconds:.0f} s)")
    if best:
        model.load_state_dict(best, strict=False)
    digest = _save_final(out, model, recipe, pack_delta)
    metrics = test(model, test_data, 500, threads=threads, progress=progress)
    state_path.unlink(missing_ok=True)
    return TrainResult(name, dataset, out, digest, metrics, recipe, tuple(history))


def _trained_state(model: nn.Module, recipe: TrainRecipe) -> dict[str, torch.Tensor]:
    """A copy of what training changes: the trained tensors of a delta recipe, else the whole state."""
    state = model.state_dict()
    names = trained_names(model) if recipe.delta else list(state)
    return {k: state[k].detach().clone() for k in names}


def _optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    """SGD (or AdamW) with decay on conv/linear weights only (norm scales and biases are not decayed);
    frozen parameters are left out."""
    groups = decay_groups([p for p in model.parameters() if p.requires_grad], recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def _epoch_batches(data: Dataset, recipe: TrainRecipe, steps: int, generator: torch.Generator) -> list[np.ndarray]:
    """The epoch's ``steps`` index batches from a seeded shuffle; texts are grouped by length
    (sorted within windows of ``BUCKET_BATCHES`` batches, the batches then shuffled)."""
    order = torch.randperm(len(data), generator=generator).numpy()[:steps * recipe.batch_size]
    texts = getattr(data, "texts", None)
    if texts is not None:
        window = BUCKET_BATCHES * recipe.batch_size
        lengths = np.array([len(texts[i]) for i in order])
        order = np.concatenate([chunk[np.argsort(lengths[start:start + window], kind="stable")]
                                for start, chunk in ((s, order[s:s + window]) for s in range(0, len(order), window))])
    batches = [order[step * recipe.batch_size:(step + 1) * recipe.batch_size] for step in range(steps)]
    if texts is not None:
        batches = [batches[i] for i in torch.randperm(steps, generator=generator).tolist()]
    return batches


def _train_epoch(model, optimizer, train_data, test_data, recipe: TrainRecipe, epoch: int, steps_per_epoch: int,
                 threads: int | None, progress: bool, frozen: list[nn.Module] = ()) -> EpochLog:  # type: ignore[assignment]
    start = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    model.train()
    for module in frozen:
        module.eval()
    with run_context(_epoch_seed(recipe.seed, epoch), threads) as generator, \
            _progress(f"epoch {epoch + 1}/{recipe.epochs}", steps_per_epoch, progress) as (bar, task):
        for step, indices in enumerate(_epoch_batches(train_data, recipe, steps_per_epoch, generator)):
            lr = recipe.lr_at(epoch * steps_per_epoch + step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, labels = train_data.batch(indices, generator)
            if images.ndim == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(trim_padding(images, model))
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


def _save_state(path: Path, model, optimizer, model_name, dataset, recipe, history, best) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    torch.save({**_state_identity(model_name, dataset, recipe), "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(), "history": [asdict(h) for h in history],
                "best_state": best}, part)
    os.replace(part, path)


def _load_state(path: Path, model, optimizer, model_name, dataset, recipe) -> tuple[list[EpochLog],
                                                                                     dict[str, torch.Tensor]]:
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
    return [EpochLog(**h) for h in state["history"]], dict(state.get("best_state") or {})


def _save_final(out: Path, model: nn.Module, recipe: TrainRecipe,
                pack_delta: Callable[[dict[str, torch.Tensor]], bytes] | None) -> str:
    """Save the weights atomically; returns the file's sha256. A delta recipe saves only the
    trained tensors, in ``recipe.save_dtype``, and loads them back, so that what is tested next is
    what was saved.

    ``torch.save`` into a buffer names the zip records 'archive/...' whatever ``out`` is called, so
    the same weights give the same bytes (and sha256) under any file name.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if recipe.delta and pack_delta is not None:
        state = model.state_dict()
        saved = {k: state[k].to(SAVE_DTYPES[recipe.save_dtype]).contiguous() for k in trained_names(model)}
        data = pack_delta(saved)
        model.load_state_dict({k: v.to(state[k].dtype) for k, v in saved.items()}, strict=False)
    else:
        buffer = io.BytesIO()
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, buffer)
        data = buffer.getvalue()
    part = out.with_name(out.name + ".part")
    part.write_bytes(data)
    os.replace(part, out)
    return hashlib.sha256(data).hexdigest()
