"""Checkpoint files: find, download, verify and load them into a zoo model.

Where a file comes from, in order: an explicit path (``checkpoint=`` / ``--checkpoint``); a
file packaged in ``nn2hw/zoo/checkpoints/``; ``NN2HW_DATA/<local_path>``; the download cache
(``NN2HW_CACHE/checkpoints``); a download from the source's URL. Every published file is
checked against its sha256 (the full digest when known, else the prefix its name embeds)
before torch reads it. Loading is always ``torch.load(weights_only=True)`` on the CPU, then
``load_state_dict(strict=True)``, with mismatches named key by key.

Torch is imported only where a file is read, so resolving and downloading work without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nn2hw.download import TIMEOUT_S as DOWNLOAD_TIMEOUT_S
from nn2hw.download import fetch, file_digest
from nn2hw.errors import CheckpointError
from nn2hw.paths import cache_root, data_root
from nn2hw.zoo.records import CheckpointSource, hash_prefix_of

if TYPE_CHECKING:
    from torch import Tensor, nn

PACKAGED_DIR = Path(__file__).resolve().parent / "checkpoints"
"""Checkpoints shipped with nn2hw (``CheckpointSource.packaged`` names a file here)."""

_SHOWN = 5  # keys named in an error before "and N more"


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
    """The hash an explicitly given file must have: its source's, else the prefix in its name, else ''."""
    for source in sources:
        if source.file_name == path.name:
            return source.expected_hash
    return hash_prefix_of(path.name)


def _local_candidates(source: CheckpointSource) -> list[Path]:
    candidates = []
    if source.packaged:
        candidates.append(PACKAGED_DIR / source.packaged)
    root = data_root()
    if source.local_path and root is not None:
        candidates.append(root / source.local_path)
    candidates.append(cache_dir() / source.file_name)
    return candidates


def resolve(sources: Sequence[CheckpointSource], checkpoint: str | Path | None = None, *,
            download: bool = True, progress: bool = True) -> Path:
    """A verified local file for one of ``sources`` (or the explicit ``checkpoint``).

    An explicit file is checked against the source of the same file name, else against a hash
    prefix in its own name (``name-<hex>.ext``); a file with neither (e.g. your own fine-tuned
    weights) has no published digest and is loaded with the key checks only.
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
    return download_file(source.url, cache_dir() / source.file_name, source.expected_hash, progress=progress)


def download_file(url: str, target: Path, expected: str, *, progress: bool = True,
                  timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download a checkpoint to ``target``, checked against its sha256 (full or prefix) and
    resumable (``nn2hw.download.fetch``); failures say how to get the file by hand."""
    by_hand = (f"Or download the file on a machine with internet access (e.g. `curl -L -o {target.name} {url}`), "
               f"then pass it with --checkpoint {target.name} (Python: checkpoint=...), or put it at {target}.")
    return fetch(url, target, expected, error=CheckpointError, by_hand=by_hand, progress=progress,
                 timeout_s=timeout_s)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The state dict stored in ``path``: unwraps ``{'state_dict': ...}`` and strips ``module.`` prefixes."""
    import torch

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
    """Read ``path`` and load it into ``model`` strictly; returns the model."""
    load_into(model, read_state_dict(path), label)
    return model
