"""Test helpers for datasets: generated IDX/CIFAR files, the real Fashion-MNIST."""

from __future__ import annotations

import functools
import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from nn2hw.data import Dataset, load_dataset
from nn2hw.errors import DatasetError


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (uint8) for ``array``: magic 0x08 << 8 | ndim, big-endian dims, data."""
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_fmnist(count: int, seed: int = 0) -> dict[str, bytes]:
    """Raw IDX bytes of a small fake Fashion-MNIST (both splits with ``count`` images)."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix in ("train", "t10k"):
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (count, 28, 28)))
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(rng.integers(0, 10, (count,)))
    return files


def install_fake_fmnist(monkeypatch: pytest.MonkeyPatch, root: Path, count: int) -> dict[str, bytes]:
    """Make a ``count``-image fake Fashion-MNIST the official one (sizes, MD5s, split sizes) and search
    only folders under ``root`` (NN2HW_DATA=root/data, NN2HW_CACHE=root/cache, system root/system)."""
    from nn2hw.data import fashion_mnist

    files = fake_fmnist(count)
    for name, raw in files.items():
        monkeypatch.setitem(fashion_mnist._FILES, name, (len(raw), md5(raw), md5(gz(raw))))
    monkeypatch.setattr(fashion_mnist, "SPLIT_SIZE", {"train": count, "test": count})
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (root / "system",))
    monkeypatch.setenv("NN2HW_DATA", str(root / "data"))
    monkeypatch.setenv("NN2HW_CACHE", str(root / "cache"))
    return files


def write_files(folder: Path, files: dict[str, bytes], compress: bool = True, only: tuple[str, ...] = ()) -> Path:
    """Write IDX ``files`` into ``folder`` (gzip-compressed or raw; ``only`` a subset)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        if not only or name in only:
            (folder / (name + ".gz" if compress else name)).write_bytes(gz(raw) if compress else raw)
    return folder


def cifar_batch_bytes(count: int, seed: int = 0) -> bytes:
    """A python batch in the official layout (pickled dict with bytes keys)."""
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": rng.integers(0, 10, count).tolist(),
             b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * count}
    return pickle.dumps(batch, protocol=2)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@functools.cache
def _fmnist(split: str) -> Dataset | str:
    try:
        return load_dataset("fashion-mnist", split)
    except DatasetError as exc:
        return str(exc)


def real_fmnist(split: str) -> Dataset:
    """The real Fashion-MNIST split (Debian package or NN2HW_DATA); skips with the reason when absent."""
    data = _fmnist(split)
    if isinstance(data, str):
        pytest.skip(f"Fashion-MNIST is not installed: {data}")
    return data
