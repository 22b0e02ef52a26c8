"""Seeded, deterministic, thread-bounded execution for the training and test loops.

``run_context(seed, threads)`` seeds torch and NumPy, turns on
``torch.use_deterministic_algorithms`` (warn-only, so a user model with an op lacking a
deterministic CPU kernel still runs) and sets the intra-op thread count (default 2: both cores of
the target machines), restoring every global setting on exit so that library calls do not leak
state into the caller's process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from nn2hw.errors import ConfigError

DEFAULT_THREADS = 2
THREADS_ENV = "NN2HW_THREADS"


def default_threads() -> int:
    """``NN2HW_THREADS`` when set, else 2."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{THREADS_ENV}={value!r} is not a positive integer.", f"Set e.g. {THREADS_ENV}=2.")
    return int(value)


@contextmanager
def run_context(seed: int | None, threads: int | None = None) -> Iterator[torch.Generator]:
    """Seed everything (when ``seed`` is given), bound the threads; yields a generator for data order."""
    threads = default_threads() if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads={threads!r} is not a positive integer.", "Use e.g. threads=2.")
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    generator = torch.Generator()
    if seed is not None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        generator.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield generator
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_det, warn_only=previous_warn)
