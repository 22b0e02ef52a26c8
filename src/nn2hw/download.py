"""Streamed, checked, resumable and atomic downloads, shared by the dataset loaders and the zoo.

Data goes to ``<target>.part`` while its digest is computed on the fly; a later call continues a
partial file with an HTTP range request (starting over when the server ignores the range). Only
a complete file whose digest matches is renamed onto ``target`` (``os.replace`` is atomic on one
file system), so an interrupted or corrupted transfer never leaves a file a later run would
trust. A wrong digest deletes the partial file; a cut transfer keeps it for the next try.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nn2hw.errors import Nn2hwError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``hashlib`` algorithm name), read in chunks."""
    return _digest_of(path, algorithm).hexdigest()


def fetch(url: str, target: Path, expected: str, *, algorithm: str = "sha256",
          error: type[Nn2hwError] = Nn2hwError, by_hand: str = "", progress: bool = True,
          timeout_s: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``target`` and check that its digest starts with ``expected`` (a full
    digest, or the prefix a file name embeds).

    Failures raise ``error`` naming the URL and the cause; ``by_hand`` (how to get the file
    without this download) ends every fix.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    digest = _digest_of(part, algorithm) if have else hashlib.new(algorithm)
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if have and response.status != 206:  # the server ignored the range: start over
                have, digest = 0, hashlib.new(algorithm)
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            received = _stream(response, part, "ab" if have else "wb", digest, have, total, target.name, progress)
    except urllib.error.HTTPError as exc:
        if not (exc.code == 416 and have):  # 416 with a partial file: it is already complete
            raise error(f"Cannot download {url}: HTTP {exc.code} {exc.reason}.", by_hand) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        cut = part.is_file() and part.stat().st_size > 0
        raise error(f"Cannot download {url}: {reason}.",
                    ("Run the command again to continue the partial file. " if cut else
                     "Check the internet connection. ") + by_hand) from None
    else:
        if total is not None and received != total:
            raise error(f"The download of {url} stopped after {received} of {total} bytes.",
                        "Run the command again to continue the partial file. " + by_hand)
    got = digest.hexdigest()
    if not got.startswith(expected):
        part.unlink(missing_ok=True)
        raise error(f"The file downloaded from {url} has {algorithm.upper()} {got}, not the published {expected}. "
                    "The partial file was deleted.",
                    "The server sent something else (a proxy or error page?) or the file there changed. " + by_hand)
    os.replace(part, target)
    return target


def _digest_of(path: Path, algorithm: str) -> Any:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest


def _stream(response: Any, part: Path, mode: str, digest: Any, have: int, total: int | None, label: str,
            progress: bool) -> int:
    """Copy the response body to ``part`` chunk by chunk, updating ``digest`` and a Rich progress
    bar on stderr; returns the bytes ``part`` now holds."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not progress) as bar, \
            open(part, mode) as out:
        task = bar.add_task(f"downloading {label}", total=total, completed=have)
        for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
            out.write(chunk)
            digest.update(chunk)
            have += len(chunk)
            bar.advance(task, len(chunk))
    return have
