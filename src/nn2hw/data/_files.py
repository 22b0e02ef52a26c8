"""Finding a dataset's files among the searched folders and reading them with size + MD5 checks.

Each dataset declares the files a split needs (``DataFile``: name, size and MD5 of the
uncompressed content, accepted as raw or ``.gz``). ``locate`` picks the first searched folder that
holds all of them; ``read_verified`` returns a file's bytes only when they are complete and carry
the published checksum, so a truncated or altered copy is reported, never silently used.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nn2hw.errors import DatasetError


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its canonical name and the size/MD5 of its uncompressed bytes."""

    name: str
    size: int
    md5: str
    gz_ok: bool = False

    def candidates(self, folder: Path) -> list[Path]:
        names = [self.name, self.name + ".gz"] if self.gz_ok else [self.name]
        return [folder / n for n in names]

    def find(self, folder: Path) -> Path | None:
        return next((p for p in self.candidates(folder) if p.is_file()), None)


@dataclass(frozen=True)
class HowToGet:
    """The dataset-specific advice that every 'files missing / damaged' error ends with."""

    label: str  # e.g. "CIFAR-10"
    instructions: str  # one or two sentences: official URL, package, --download


def locate(files: Sequence[DataFile], folders: Sequence[Path]) -> tuple[Path, dict[str, Path]] | None:
    """The first folder holding every file (raw or .gz) and the path of each; None when none does."""
    for folder in folders:
        found = {f.name: path for f in files if (path := f.find(folder)) is not None}
        if len(found) == len(files):
            return folder, found
    return None


def missing_error(split: str, files: Sequence[DataFile], folders: Sequence[Path], how: HowToGet) -> DatasetError:
    """Which folders were searched and, for each existing one, which files it lacks."""
    states = []
    for folder in folders:
        if not folder.is_dir():
            states.append(f"{folder} (absent)")
            continue
        lacking = [f.name + (" (or .gz)" if f.gz_ok else "") for f in files if f.find(folder) is None]
        states.append(f"{folder} (lacks {', '.join(lacking)})")
    needed = ", ".join(f.name for f in files)
    return DatasetError(f"The {how.label} {split!r} split needs {needed}; searched: {'; '.join(states)}.",
                        how.instructions)


def require_folder(folder: Path | None, how: HowToGet) -> None:
    """A folder the user named explicitly must exist (``None``: nothing was named)."""
    if folder is not None and not folder.is_dir():
        raise DatasetError(f"The {how.label} folder {folder} does not exist.",
                           f"Check the --data-dir path. {how.instructions}")


def read_verified(path: Path, spec: DataFile, how: HowToGet) -> bytes:
    """The uncompressed bytes of ``path``, checked against ``spec``'s size and MD5."""
    try:
        data = _read(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DatasetError(
            f"{path} is a damaged or truncated gzip file ({exc}).",
            f"Delete it and get a fresh copy. {how.instructions}",
        ) from None
    except OSError as exc:
        raise DatasetError(f"Cannot read {path}: {exc.strerror}.", "Check the file's permissions.") from None
    if len(data) < spec.size:
        raise DatasetError(
            f"{path} is truncated: {len(data)} of {spec.size} bytes{' (uncompressed)' if path.suffix == '.gz' else ''}"
            f"{_boundary_note(len(data))}.",
            f"Replace it with the complete official file. {how.instructions}",
        )
    digest = hashlib.md5(data).hexdigest()
    if len(data) != spec.size or digest != spec.md5:
        raise DatasetError(
            f"{path} does not match the official {spec.name}: {len(data)} bytes with MD5 {digest}, expected "
            f"{spec.size} bytes with MD5 {spec.md5}.",
            f"The copy was altered or is a different file; replace it. {how.instructions}",
        )
    return data


def _read(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def _boundary_note(size: int) -> str:
    """Truncated copies committed to git repositories typically end on a 256 KiB boundary."""
    if size and size % (256 * 1024) == 0:
        return ("; it ends exactly on a 256 KiB boundary, the mark of the truncated copies found in public git "
                "repositories (the full files exceed their size limits)")
    return ""
