"""Where nn2hw finds data and keeps downloads.

One environment variable each, documented in the README:
- ``NN2HW_DATA``: a folder of local datasets and checkpoints (layout: ``cifar10/``,
  ``fashion-mnist/``, ``zoo/<dataset>/``, ``hw-nas-bench/``), e.g. the project's ``../shared/data``;
- ``NN2HW_CACHE``: where downloads go (default ``~/.cache/nn2hw``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "NN2HW_DATA"
CACHE_ENV = "NN2HW_CACHE"


def data_root() -> Path | None:
    """The local data folder named by ``NN2HW_DATA``, or ``None`` when unset."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_root() -> Path:
    """The download cache (``NN2HW_CACHE`` or ``~/.cache/nn2hw``); created on demand by callers."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else Path.home() / ".cache" / "nn2hw"


def search_dirs(*parts: str) -> list[Path]:
    """Candidate folders for ``parts`` under the data root, then the cache, in that order."""
    roots = [r for r in (data_root(), cache_root()) if r is not None]
    return [root.joinpath(*parts) for root in roots]
