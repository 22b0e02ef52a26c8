"""Shared fixtures: the local data folder (NN2HW_DATA), skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from nn2hw.paths import DATA_ENV, data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder named by NN2HW_DATA (the project's ../shared/data in CI)."""
    root = data_root()
    if root is None or not root.is_dir():
        pytest.skip(f"{DATA_ENV} is not set to an existing folder; set it to the shared data folder "
                    f"(e.g. {DATA_ENV}=../shared/data) to run the tests that need real data")
    return root
