"""Build zoo models, load their weights and describe them as workloads.

``build`` returns a plain ``nn.Module`` (in training mode, as torch constructs it), with the
published weights when ``pretrained=True`` or a given ``checkpoint``. ``workload`` traces the
architecture on torch's meta device, so describing even VGG-16 allocates no weights and runs
no arithmetic.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nn2hw import __version__
from nn2hw.errors import CheckpointError, ConfigError, ModelError
from nn2hw.paths import cache_root
from nn2hw.zoo.catalog import MODELS, TRAIN_HINT
from nn2hw.zoo.records import ZooEntry, ZooVariant

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.workload import Workload


def entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; ``UnknownNameError`` with close names otherwise."""
    return MODELS.get(name)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, in registration order."""
    return MODELS.names(pattern)


def _construct(zoo_entry: ZooEntry, variant: ZooVariant, options: dict[str, Any]) -> nn.Module:
    module_name, function_name = zoo_entry.factory.split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    kwargs = {**dict(zoo_entry.options), **options}
    try:
        return builder(variant.channels, variant.num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"Cannot build {zoo_entry.name} with options {sorted(options)}: {exc}.",
                          "Pass only the options its architecture takes (see `nn2hw zoo info`).") from None


def build(name: str, dataset: str | None = None, pretrained: bool = False, checkpoint: str | Path | None = None,
          **options: Any) -> nn.Module:
    """The model ``name`` for ``dataset`` (its default when ``None``).

    With ``pretrained=True`` the variant's published weights are found or downloaded and
    checked; ``checkpoint`` loads that file instead (checked against the published digest when
    it is the published file). ``options`` override architecture options (e.g. ``depth``).
    """
    zoo_entry = entry(name)
    variant = zoo_entry.variant(dataset)
    model = _construct(zoo_entry, variant, options)
    if checkpoint is None and not pretrained:
        return model
    if checkpoint is None and not variant.sources:
        hint = TRAIN_HINT.format(name=name) if variant.dataset == "fashion-mnist" else ""
        raise CheckpointError(
            f"No pretrained weights exist for {name} ({variant.dataset}).",
            (f"Train them with `{hint}`, " if hint else "") + "or pass your own file with --checkpoint FILE "
            "(Python: checkpoint=...).",
        )
    from nn2hw.zoo.checkpoints import load_weights

    return load_weights(model, variant, checkpoint, f"{name} ({variant.dataset})")


def workload(name: str, dataset: str | None = None, batch: int = 1, seq_len: int | None = None,
             **options: Any) -> Workload:
    """The workload (layer records) of zoo model ``name`` on a ``batch`` of its dataset's inputs;
    ``seq_len`` sets the token count of a sequence model (its variant's default when ``None``)."""
    import torch

    from nn2hw.workload import from_module

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"Batch size must be a positive integer, got {batch!r}.", "Use e.g. batch=1.")
    zoo_entry = entry(name)
    variant = zoo_entry.variant(dataset)
    shape = variant.shape_for(seq_len)
    with torch.device("meta"):
        model = _construct(zoo_entry, variant, options)
    check_tokens = getattr(model, "check_tokens", None)
    if variant.tokens and callable(check_tokens):
        check_tokens(shape[0])  # torch.fx traces the length symbolically: check it here
    example = torch.empty((batch, *shape), device="meta", dtype=torch.int64 if variant.tokens else torch.float32)
    return from_module(model, example, name=name)


@dataclass(frozen=True)
class ModelStats:
    """Size of one model variant: trainable parameters and multiply-accumulates per image."""

    name: str
    dataset: str
    params: int
    macs: int


def stats(name: str, dataset: str | None = None, cache: bool = False) -> ModelStats:
    """Parameters and MACs of one variant, computed from the architecture.

    With ``cache=True`` a result computed before from the same code is read from
    ``NN2HW_CACHE/zoo-stats.json`` (keyed by the entry, the architecture's and the extractor's
    source files), so `nn2hw zoo list` need not import torch every time.
    """
    zoo_entry = entry(name)
    variant = zoo_entry.variant(dataset)
    key = _stats_key(zoo_entry, variant) if cache else ""
    table = _read_stats_cache() if cache else {}
    if key in table:
        return ModelStats(**table[key])
    import torch

    with torch.device("meta"):
        model = _construct(zoo_entry, variant, {})
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    described = workload(name, variant.dataset)
    if described.unsupported:
        raise ModelError(f"{name}: the extractor did not understand {[l.op for l in described.unsupported]}.",
                         "Report this as a bug: zoo models must extract completely.")
    result = ModelStats(name, variant.dataset, params, described.macs)
    if cache:
        _write_stats_cache({**table, key: asdict(result)})
    return result


def _stats_cache_path() -> Path:
    return cache_root() / "zoo-stats.json"


def _origin(module: str) -> Path | None:
    """The file ``module`` is loaded from (None when it cannot be found)."""
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec is not None and spec.origin else None


def _stats_key(zoo_entry: ZooEntry, variant: ZooVariant) -> str:
    """A digest of everything a variant's parameter and MAC counts depend on."""
    digest = hashlib.sha256(f"{__version__}|{zoo_entry.factory}|{zoo_entry.options}|{variant.input_shape}|"
                            f"{variant.num_classes}".encode())
    factory, workload = _origin(zoo_entry.factory.split(":")[0]), _origin("nn2hw.workload")
    sources = [factory] if factory is not None else []
    for path in sources + (sorted(workload.parent.glob("*.py")) if workload is not None else []):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_stats_cache() -> dict[str, dict[str, Any]]:
    try:
        table = json.loads(_stats_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _write_stats_cache(table: dict[str, dict[str, Any]]) -> None:
    """Best effort: an unwritable cache only means recomputing next time."""
    path = _stats_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(table, indent=1, sort_keys=True))
        os.replace(temporary, path)
    except OSError:
        return
