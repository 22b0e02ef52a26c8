"""Streamed, checksummed, atomic downloads and file checks for the dataset loaders.

A download goes to ``<dest>.part`` in the destination folder while its MD5 is computed on the
fly; only a complete file with the published checksum is renamed onto ``dest`` (``os.replace`` is
atomic on one file system), so an interrupted or corrupted transfer never leaves a file that a
later run would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from nn2hw.errors import DatasetError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


def md5_of(path: Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str, *, progress: bool = True) -> Path:
    """Fetch ``url`` into ``dest`` (streamed), check its MD5, then rename it into place.

    Raises ``DatasetError`` naming the URL when the server cannot be reached, the transfer
    stops early or the checksum differs; nothing is left at ``dest`` in those cases.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    received = 0
    expected = None
    try:
        with _open_url(url) as response, open(part, "wb") as out, _bar(dest.name, progress) as bar:
            expected = int(response.headers.get("Content-Length") or 0) or None
            task = bar.add_task(dest.name, total=expected)
            try:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(task, advance=len(chunk))
            except (http.client.IncompleteRead, ConnectionError, TimeoutError):
                expected = expected or received + 1  # the size check below reports the cut transfer
        if expected is not None and received != expected:
            raise DatasetError(
                f"The download of {url} stopped after {received} of {expected} bytes.",
                "Run the command again (the partial file was discarded), or fetch the file by hand "
                f"into {dest.parent}.",
            )
        if digest.hexdigest() != md5:
            raise DatasetError(
                f"The file downloaded from {url} has MD5 {digest.hexdigest()}, not the published {md5}.",
                "The server sent something else (a proxy or error page?); fetch the file by hand from the "
                f"official location into {dest.parent} and check its MD5.",
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


@contextmanager
def _open_url(url: str) -> Iterator:
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 (official https/http URLs)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"Cannot download {url}: {reason}.",
            "Check the internet connection, or download the file on another machine and pass its folder "
            "with --data-dir.",
        ) from None
    with response:
        yield response


def _bar(label: str, enabled: bool) -> Progress:
    return Progress(TextColumn("downloading {task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), transient=True, disable=not enabled)
