"""Importing the search is cheap: no torch until something trains (or a strategy is built)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["nn2hw.search", "nn2hw.search.settings"])
def test_importing_the_search_does_not_import_torch(module):
    code = (f"import sys, {module}\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('nn2hw'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
