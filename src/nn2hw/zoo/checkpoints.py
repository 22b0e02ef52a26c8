"""Checkpoint files: find, download, verify and load them into a zoo model.

Where a file comes from, in order: an explicit path (``checkpoint=`` / ``--checkpoint``); a
file packaged in ``nn2hw/zoo/checkpoints/``; ``NN2HW_DATA/<local_path>``; the download cache
(``NN2HW_CACHE/checkpoints``); a download from the source's URL. Every published file is
checked against its sha256 (the full digest when known, else the prefix its name embeds)
before torch reads it. Loading is always ``torch.load(weights_only=True)`` (or safetensors) on
the CPU, then ``load_state_dict(strict=True)``, with mismatches named key by key.

A variant's weights may come in two parts (``load_weights``): the base file (e.g. the pretrained
MiniLM from its pip package or the hub, ``ZooVariant.base``) and a small *delta* (a safetensors
file of only the tensors fine-tuning changed, packaged here; ``delta_bytes`` writes one). The
delta's metadata holds the base's full sha256, and its source records the same: a delta on other
base weights is refused before anything is loaded.

Torch is imported only where a file is read, so resolving and downloading work without it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nn2hw.download import TIMEOUT_S as DOWNLOAD_TIMEOUT_S
from nn2hw.download import fetch, file_digest
from nn2hw.errors import CheckpointError
from nn2hw.paths import cache_root, data_root
from nn2hw.zoo.records import CheckpointSource, ZooVariant, hash_prefix_of

if TYPE_CHECKING:
    from torch import Tensor, nn

PACKAGED_DIR = Path(__file__).resolve().parent / "checkpoints"
"""Checkpoints shipped with nn2hw (``CheckpointSource.packaged`` names a file here)."""

_SHOWN = 5  # keys named in an error before "and N more"
DELTA_FORMAT = "nn2hw-delta/1"
"""The ``format`` of a delta file (safetensors; its metadata is one key, ``nn2hw``, holding sorted JSON,
because safetensors writes several keys in a random order and the file's sha256 must not change)."""
HEAD_PREFIXES = ("classifier.",)
"""State-dict keys that a base (pretrained encoder) file lacks and fine-tuning creates: the new head."""


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept."""
    return cache_root() / "checkpoints"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return file_digest(path)


def verify(path: Path, expected: str) -> None:
    """Raise ``CheckpointError`` unless ``path`` hashes to ``expected`` (a full digest or a prefix)."""
    got = file_sha256(path)
    if not got.startswith(expected):
        kind = "sha256" if len(expected) == 64 else f"sha256 prefix ({len(expected)} hex digits)"
        raise CheckpointError(
            f"Checksum mismatch for {path}: expected {kind} {expected}, got {got}. The file is corrupt, "
            "truncated or a different file.",
            f"Delete {path} and download it again (or pass the right file with --checkpoint).",
        )


def _expected_for(path: Path, sources: Sequence[CheckpointSource]) -> str:
    """The hash an explicitly given file must have: the source's digest when the file's name is that
    source's hash-stamped name, else the prefix in its name, else '' (no published digest).

    A generic name such as ``model.safetensors`` says nothing about the file (a user's own
    fine-tuned weights are saved under that name too), so it is never held to a source's digest."""
    prefix = hash_prefix_of(path.name)
    if not prefix:
        return ""
    return next((source.expected_hash for source in sources if source.file_name == path.name), prefix)


def _cached(source: CheckpointSource) -> Path:
    """Where a download of ``source`` is kept."""
    return cache_dir() / source.cache_subdir / source.file_name


def _in_python_package(spec: str) -> Path | None:
    """The file ``'import_name/path'`` inside an installed package (None when it is not installed)."""
    package, _, inner = spec.partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / inner


def _labelled_candidates(source: CheckpointSource) -> list[tuple[str, Path]]:
    """Where ``source``'s file may already be, in search order, each with a label for listings."""
    candidates = []
    if source.packaged:
        candidates.append(("packaged", PACKAGED_DIR / source.packaged))
    root = data_root()
    if source.local_path and root is not None:
        candidates.append(("NN2HW_DATA", root / source.local_path))
    if source.python_package:
        inside = _in_python_package(source.python_package)
        if inside is not None:
            candidates.append(("pip package", inside))
    candidates.append(("cache", _cached(source)))
    return candidates


def _local_candidates(source: CheckpointSource) -> list[Path]:
    return [path for _, path in _labelled_candidates(source)]


def where_found(source: CheckpointSource) -> str:
    """The label of the first place that holds ``source``'s file ('packaged', 'NN2HW_DATA', 'pip
    package', 'cache'), or '' when none does; nothing is hashed."""
    return next((label for label, path in _labelled_candidates(source) if path.is_file()), "")


def resolve(sources: Sequence[CheckpointSource], checkpoint: str | Path | None = None, *,
            download: bool = True, progress: bool = True) -> Path:
    """A verified local file for one of ``sources`` (or the explicit ``checkpoint``).

    An explicit file whose name carries a hash prefix (``name-<hex>.ext``) is checked against the
    source of that name (its full digest), else against the prefix; a file without one (e.g. your
    own fine-tuned ``model.safetensors``) has no published digest and is loaded with the key
    checks only.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"Checkpoint file {path} does not exist.",
                                  "Check the path given with --checkpoint / checkpoint=.")
        expected = _expected_for(path, sources)
        if expected:
            verify(path, expected)
        return path
    if not sources:
        raise CheckpointError("No checkpoint source is known for this model.", "Pass a file with --checkpoint.")
    for source in sources:
        for candidate in _local_candidates(source):
            if candidate.is_file():
                verify(candidate, source.expected_hash)
                return candidate
    downloadable = [s for s in sources if s.url]
    if not downloadable or not download:
        looked = ", ".join(str(c) for s in sources for c in _local_candidates(s))
        raise CheckpointError(f"Checkpoint {sources[0].file_name} was not found (looked in: {looked}).",
                              "Set NN2HW_DATA to the folder that holds it, or pass it with --checkpoint.")
    source = downloadable[0]
    return download_file(source.url, _cached(source), source.expected_hash, progress=progress)


def download_file(url: str, target: Path, expected: str, *, progress: bool = True,
                  timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download a checkpoint to ``target``, checked against its sha256 (full or prefix) and
    resumable (``nn2hw.download.fetch``); failures say how to get the file by hand."""
    by_hand = (f"Or download the file on a machine with internet access (e.g. `curl -L -o {target.name} {url}`), "
               f"then pass it with --checkpoint {target.name} (Python: checkpoint=...), or put it at {target}.")
    return fetch(url, target, expected, error=CheckpointError, by_hand=by_hand, progress=progress,
                 timeout_s=timeout_s)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The state dict stored in ``path``: unwraps ``{'state_dict': ...}`` and strips ``module.`` prefixes.
    A ``.safetensors`` file is read with the safetensors package (no pickle)."""
    import torch

    if path.suffix == ".safetensors":
        return read_safetensors(path)

    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds on a bad file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {first_line}).",
            "Check that it is a state_dict saved with torch.save (and not truncated); download it again if needed.",
        ) from None
    if isinstance(stored, Mapping) and isinstance(stored.get("state_dict"), Mapping):
        stored = stored["state_dict"]
    if not isinstance(stored, Mapping) or not all(isinstance(v, torch.Tensor) for v in stored.values()):
        raise CheckpointError(
            f"{path} holds a {type(stored).__name__}, not a state_dict of tensors.",
            "Save the weights with torch.save(model.state_dict(), path).",
        )
    return {(key[len("module."):] if key.startswith("module.") else key): value for key, value in stored.items()}


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; a clear error when the package is missing or the file is bad."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{path} is a safetensors file and the safetensors package is not installed.",
                              'Install it with pip install "nn2hw[text]".') from None
    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # safetensors raises SafetensorError (and OSError) on a bad file
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc}).",
                              "Download it again, or pass the checkpoint saved with the model.") from None


def _named(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def load_into(model: nn.Module, state: Mapping[str, Tensor], label: str) -> None:
    """``model.load_state_dict(state, strict=True)`` after naming every missing, extra or misshapen key.

    BatchNorm ``num_batches_tracked`` counters may be absent (pre-1.0 checkpoints); torch then
    starts them at 0.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshapen = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in state
                 if k in expected and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_named(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_named(unexpected)})")
    if misshapen:
        problems.append(f"{len(misshapen)} shape mismatches, checkpoint vs model ({_named(misshapen)})")
    if problems:
        raise CheckpointError(
            f"The checkpoint does not fit {label}: {'; '.join(problems)}.",
            "Use the checkpoint made for this model and dataset (a torchvision file for an ImageNet model, "
            "the model's own zoo file otherwise), or build the model the checkpoint was saved from.",
        )
    model.load_state_dict(dict(state), strict=True)


def load_checkpoint(model: nn.Module, path: Path, label: str) -> nn.Module:
    """Read ``path`` and load it into ``model`` strictly; returns the model. A model with an
    ``adapt_state_dict(state)`` method (e.g. a BERT encoder reading Hugging Face files) maps the
    stored keys to its own first, as that method documents."""
    state = read_state_dict(path)
    adapt = getattr(model, "adapt_state_dict", None)
    load_into(model, adapt(state) if callable(adapt) else state, label)
    return model


@dataclass(frozen=True)
class Delta:
    """The tensors of a delta file and the sha256 of the base weights they apply to."""

    base_sha256: str
    label: str
    tensors: dict[str, Tensor]


def delta_bytes(tensors: Mapping[str, Tensor], base_sha256: str, label: str) -> bytes:
    """A delta file's bytes (safetensors): ``tensors`` with the base's sha256 and ``label`` (what it
    was made for, e.g. 'minilm_l6 wordnet-supersense') in its metadata."""
    from safetensors.torch import save

    described = {"format": DELTA_FORMAT, "base_sha256": base_sha256, "label": label}
    return save(dict(tensors), metadata={"nn2hw": json.dumps(described, sort_keys=True)})


def read_delta(path: Path) -> Delta | None:
    """The delta stored in ``path``, or None when ``path`` is a full checkpoint (any other file)."""
    if path.suffix != ".safetensors":
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:  # a missing package or a bad file: read_safetensors raises the clear error
        read_safetensors(path)
        raise
    try:
        described = json.loads(metadata.get("nn2hw", "{}"))
    except ValueError:
        described = {}
    if not isinstance(described, dict) or described.get("format") != DELTA_FORMAT:
        return None
    return Delta(str(described.get("base_sha256", "")), str(described.get("label", "")), read_safetensors(path))


def load_weights(model: nn.Module, variant: ZooVariant, checkpoint: str | Path | None, label: str) -> nn.Module:
    """Load a variant's weights into ``model`` (strict keys): the file ``resolve`` finds (or
    ``checkpoint``); a delta file is applied on top of the variant's ``base``, after checking that
    the base is the one the delta was made on."""
    path = resolve(variant.sources, checkpoint)
    delta = read_delta(path)
    if delta is None:
        return load_checkpoint(model, path, label)
    base = variant.base
    if base is None:
        raise CheckpointError(f"{path} is a delta (only the tensors fine-tuning changed, made for {delta.label}) and "
                              f"{label} has no base weights to apply it to.",
                              f"Use it with the model variant it was made for ({delta.label}), or pass a full "
                              "checkpoint.")
    if delta.base_sha256 != base.sha256:
        raise CheckpointError(f"{path} is a delta on base weights with sha256 {delta.base_sha256 or '(none)'}, but "
                              f"the base of {label} is {base.file_name} with sha256 {base.sha256}: they do not "
                              "belong together.", f"Use the delta made on this base (made for {delta.label}), or "
                              "fine-tune again from it (`nn2hw zoo train`).")
    state = _base_state(model, base)
    expected = model.state_dict()
    for key, value in delta.tensors.items():
        state[key] = value.to(expected[key].dtype) if key in expected else value  # others: named by load_into
    load_into(model, state, label)
    return model


def load_base(model: nn.Module, variant: ZooVariant, label: str) -> nn.Module:
    """Load the variant's ``base`` (pretrained) weights into ``model`` to fine-tune it: every key
    strictly, except the new head (``HEAD_PREFIXES``), which keeps its initialization."""
    if variant.base is None:
        raise CheckpointError(f"{label} has no pretrained base weights to start from.",
                              "Train it from scratch (recipe init='scratch').")
    state = _base_state(model, variant.base)
    head = {k: v for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES) and k not in state}
    load_into(model, {**state, **head}, label)
    return model


def _base_state(model: nn.Module, base: CheckpointSource) -> dict[str, Tensor]:
    """The verified base file's tensors, mapped to the model's keys (``adapt_state_dict``)."""
    state = read_state_dict(resolve((base,)))
    adapt = getattr(model, "adapt_state_dict", None)
    return dict(adapt(state) if callable(adapt) else state)
