"""Dataset downloads: ``nn2hw.download.fetch`` with the published MD5 and dataset wording."""

from __future__ import annotations

from pathlib import Path

from nn2hw.download import fetch
from nn2hw.errors import DatasetError


def download(url: str, dest: Path, md5: str, *, progress: bool = True) -> Path:
    """Fetch ``url`` into ``dest`` (streamed, resumable), check its MD5, then rename it into place;
    ``DatasetError`` naming the URL otherwise, with nothing left at ``dest``."""
    return fetch(url, dest, md5, algorithm="md5", error=DatasetError, progress=progress,
                 by_hand=f"Or fetch the file by hand from the official location into {dest.parent} and pass "
                         "that folder with --data-dir.")
